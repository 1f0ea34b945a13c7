// Hessian downdate before the Q update (spec caldera-quipsharp.md §3.2).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/matrix.h"
#include "linalg/backend.h"

namespace caldera::algo {

/// Downdate ridge σ₂ of spec §3.2 (`sigma_reg2`).
inline constexpr double kDefaultDowndateRidge = 0.01;

/// How λ_min(H') is obtained for the ridge H' += (σ₂ + max(−λ_min, 0))·I (`--downdate-ridge`).
enum class DowndateRidge : uint8_t {
  kPsd,    ///< λ_min := 0: H' = C(I − QQᵀ)Cᵀ is PSD by construction, so the reference's eigensolve
           ///< only ever adds max(−λ_min, 0) = O(roundoff); skipping it removes an n³ eigensolve per
           ///< outer iteration and changes the ridge by that roundoff only (pitfall P3)
  kExact,  ///< the reference: full symmetric eigensolve of H' for λ_min
};
std::string_view to_string(DowndateRidge r) noexcept;

/// What the downdate did (for the metrics extras).
struct DowndateInfo {
  double lambda_min = 0.0;     ///< λ_min(H' before ridges): computed (kExact) or 0 (kPsd)
  double ridge_total = 0.0;    ///< total added to the diagonal
};

/// Spec §3.2 with the "cheaper exact alternative": with R̃ = R·C and Q an orthonormal basis of
/// span(R̃ᵀ) (thin QR, n×k), H' = H − (CQ)(CQ)ᵀ, which equals the spec's H − C V_k V_kᵀ Cᵀ (V_k the
/// top-k right singular vectors of L·R·C) whenever L has full column rank (otherwise it removes the
/// superset span(R̃ᵀ) ⊇ span(V_k)). Then the two ridges of the spec:
///   H' += (σ₂ + max(−λ_min, 0))·I ;  H' += |mean(diag H')|·σ₂·I.
/// `weight` w in [0, 1] scales the removed term, H' = H − w·(CQ)(CQ)ᵀ = C(I − w·QQᵀ)Cᵀ: 1 is the
/// spec's downdate; w < 1 keeps a fraction 1 − w of the metric in the low-rank directions (useful
/// when L·R is quantized and cannot represent those directions exactly).
/// h (n×n, symmetric), chol (n×n lower, H = C Cᵀ) and r (k×n, 1 <= k < n) are backend fp32 views;
/// h_out (n×n) receives H' and may not alias h. Enqueued on `backend` (synchronises for the mean).
DowndateInfo hessian_downdate(linalg::Backend& backend, MatrixView<const float> h, MatrixView<const float> chol,
                              MatrixView<const float> r, double weight, double sigma2, DowndateRidge ridge,
                              MatrixView<float> h_out);

}  // namespace caldera::algo
