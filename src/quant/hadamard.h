// Orthonormal Hadamard operators Had_n for every dimension a Llama-family model uses (spec
// caldera-quipsharp.md §4.1, Appendix A).
//
// Had_n = (1/√n)·(H_K ⊗ S_p), n = K·p, p a power of two, S_p the natural-order Sylvester matrix.
// K is chosen as the reference does: the first K of 172, 156, 140, 124, 116, 108, 60, 52, 36, 28,
// 20, 12 that divides n with a power-of-two cofactor; K = 1 when n is a power of two. Beyond the
// reference's list, K = o·2^a (o the odd part of n, the smallest a ≥ 2 that works) when a Paley
// construction exists: Paley I for K = q+1 (q prime ≡ 3 mod 4), else Paley II for K = 2(q+1)
// (q prime ≡ 1 mod 4). So 1408 = 44·32 and 704 = 44·16 use K = 44 (q = 43), 18944 = 148·128 uses
// K = 148 (Paley II, q = 73). The list's K use Appendix A's matrices entry for entry (Paley I for
// 12, 20, 60, 108, 140; Paley II for 28, 36; Williamson arrays for 52, 116, 124, 156, 172).
#pragma once

#include <cstdint>
#include <vector>

#include "linalg/backend.h"
#include "linalg/quant_kernels.h"

namespace caldera::quant {

using linalg::HadamardFactor;

/// Largest transform length the factor construction accepts (2^31).
inline constexpr int64_t kMaxHadamardDim = int64_t{1} << 31;

/// The factorization of Had_n (K, p and the K×K ±1 matrix H_K). Pure host computation.
/// Throws ConfigError naming n when n < 1, n > kMaxHadamardDim or no rule covers n.
[[nodiscard]] HadamardFactor hadamard_factor(int64_t n);

/// H_K of order k from the rules above (k in the reference list, or a Paley order), row-major
/// k·k entries ±1. Throws ConfigError when no rule builds order k.
[[nodiscard]] std::vector<int8_t> hadamard_matrix(int32_t k);

/// Applies hadU (op = kNoTrans, x_r ← Had_n x_r) or hadUt (op = kTrans, x_r ← Had_nᵀ x_r) to every
/// row of x (rows × n, backend memory) in place; see QuantKernels::hadamard_rows for optional
/// sign vectors. Enqueued on the backend's stream.
void had_rows(linalg::Backend& backend, MatrixView<float> x, const HadamardFactor& factor, linalg::Op op);

}  // namespace caldera::quant
