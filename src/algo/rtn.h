// Round-to-nearest (RTN) with min-max scalar grids per group of consecutive input columns: the
// floor every other method must beat (DESIGN §1, the CALDERA issue's baseline rows).
//
// Stored tensors (reconstruct() rebuilds W from exactly these):
//   format_version I64 [] 1
//   shape          I64 [2]           {m, n}
//   bits           I64 []            bits per weight (2..8)
//   group_size     I64 []            columns per group (n when --group-size 0: per output channel)
//   codes          I32 [m, ⌈n·bits/32⌉]   LSB-first bit-packed grid codes, one row per output row
//   scales, zeros  F16 [m, ⌈n/group_size⌉] W[i, j] ≈ scale[i, g]·(code[i, j] − zero[i, g]), g = j / group_size
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "algo/method.h"

namespace caldera::algo {

/// How the (scale, zero) of a group follow from its values (`--rtn-grid`).
enum class RtnGrid : uint8_t {
  kMinMax,  ///< range [min, max] of the group, fractional zero point
  kGptq,    ///< range widened to contain 0, integer zero point (GPTQ's RTN quantizer)
};
std::string_view to_string(RtnGrid g) noexcept;

struct RtnParams {
  int bits = 2;                 ///< [--bits-q] bits per weight, 2..8
  int64_t group_size = 64;      ///< [--group-size] columns per group; 0 = one group per row
  RtnGrid grid = RtnGrid::kMinMax;  ///< [--rtn-grid minmax|gptq]

  [[nodiscard]] std::vector<std::string> problems() const;
  void validate() const;  ///< throws ConfigError listing every problem
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> key_values() const;
};

class RtnMethod final : public Method {
 public:
  explicit RtnMethod(RtnParams params);
  std::string name() const override { return "rtn"; }
  std::vector<std::pair<std::string, std::string>> parameters() const override { return params_.key_values(); }
  /// Quantizes w (m×n host fp32); `stats` only feed the spec §1.3 error metric (processed per §6.5).
  /// Scales and zero points are rounded to fp16 before the codes are chosen, so what is stored is
  /// what was measured. The last group of a row may be shorter when group_size does not divide n.
  CompressedUnit compress(const MethodContext& context, MatrixView<const float> w,
                          const InputStats& stats) const override;
  HostMatrix<float> reconstruct(linalg::Backend& backend, const TensorMap& tensors) const override;
  double cost_estimate(int64_t m, int64_t n) const override;
  /// Replay of compress()'s allocations and its operation counts (algo/rtn_estimate.cpp).
  UnitEstimate estimate(int64_t m, int64_t n, linalg::BackendKind kind) const override;

 private:
  RtnParams params_;
};

}  // namespace caldera::algo
