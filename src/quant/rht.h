// Randomized Hadamard transform (incoherence processing) of a weight and its Hessian, and its
// exact inverse (spec caldera-quipsharp.md §4.2-§4.3).
//
// With U = D_SU Had_n (n = in_features) and V = D_SV Had_m (m = out_features):
//   W_r = Vᵀ W U = Had_mᵀ D_SV W D_SU Had_n,   H_r = Uᵀ H U = Had_nᵀ D_SU H D_SU Had_n,
//   W   = V W_r Uᵀ = D_SV Had_m W_r Had_nᵀ D_SU,
// which preserves tr((Ŵ − W) H (Ŵ − W)ᵀ), Frobenius norms and traces. Inference then computes
// y = ((x ⊙ SU) Had_n) Ŵ_rᵀ Had_mᵀ ⊙ SV.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "linalg/backend.h"
#include "quant/hadamard.h"

namespace caldera::quant {

/// The two sign vectors of one matrix's RHT (host memory; stored with the compressed layer).
struct RhtSigns {
  std::vector<float> su;  ///< n entries ±1: input (column) side
  std::vector<float> sv;  ///< m entries ±1: output (row) side
};

/// SU from unit_stream.stream({RngPurpose::kSignsIn}) and SV from .stream({kSignsOut}); pass the
/// unit's stream Rng(seed).stream({layer, matrix}) so the signs depend only on (seed, layer, matrix).
[[nodiscard]] RhtSigns make_rht_signs(const Rng& unit_stream, int64_t m, int64_t n);

/// W_r = Had_mᵀ D_SV W D_SU Had_n for w (m × n, backend memory); returns a new m × n matrix.
/// Throws ConfigError when m or n has no Hadamard construction, Error on sign-length mismatch.
[[nodiscard]] linalg::Matrix<float> rht_weight(linalg::Backend& backend, MatrixView<const float> w,
                                               const RhtSigns& signs);
/// W = D_SV Had_m W_r Had_nᵀ D_SU, the exact inverse of rht_weight (up to fp32 rounding).
[[nodiscard]] linalg::Matrix<float> rht_weight_inverse(linalg::Backend& backend, MatrixView<const float> w_r,
                                                       const RhtSigns& signs);
/// H_r = Had_nᵀ D_SU H D_SU Had_n for a symmetric h (n × n, backend memory), with su = signs.su;
/// the result is symmetrized exactly ((X + Xᵀ)/2). Returns a new n × n matrix.
[[nodiscard]] linalg::Matrix<float> rht_hessian(linalg::Backend& backend, MatrixView<const float> h,
                                                const RhtSigns& signs);

}  // namespace caldera::quant
