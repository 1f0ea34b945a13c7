// Storage accounting of compressed matrices (spec caldera-quipsharp.md §7.3).
#pragma once

#include <cstdint>

namespace caldera::algo {

/// Spec §7.3 "Avg Bits" numerator for one m×n matrix with a rank-k factorisation:
///   bits = B_Q·m·n + k·(B_L·m + B_R·n).
/// Excluded, as in the paper: sign vectors, scalar scales, codebooks. Rank 0 gives QuIP#'s B_Q·m·n.
/// Average bits per weight = paper_bits(...) / (m·n); a model's average is Σbits / Σ(m·n).
[[nodiscard]] constexpr double paper_bits(int64_t m, int64_t n, int64_t rank, int bits_q, int bits_l,
                                          int bits_r) noexcept {
  return static_cast<double>(bits_q) * static_cast<double>(m) * static_cast<double>(n) +
         static_cast<double>(rank) * (static_cast<double>(bits_l) * static_cast<double>(m) +
                                      static_cast<double>(bits_r) * static_cast<double>(n));
}

/// Bits of per-group scalar quantization (RTN): `bits` per weight plus, per group of `group_size`
/// weights, one fp16 scale and one fp16 zero point (`group_size` = n for per-channel).
[[nodiscard]] constexpr double scalar_group_bits(int64_t m, int64_t n, int bits, int64_t group_size) noexcept {
  const int64_t groups_per_row = (n + group_size - 1) / group_size;
  return static_cast<double>(bits) * static_cast<double>(m) * static_cast<double>(n) +
         32.0 * static_cast<double>(m) * static_cast<double>(groups_per_row);
}

}  // namespace caldera::algo
