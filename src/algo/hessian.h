// Hessian processing (spec caldera-quipsharp.md §6.5) and the activation-aware error metric
// (spec §1.3) shared by every method in algo/.
#pragma once

#include <cstdint>
#include <string>

#include "algo/method.h"
#include "core/matrix.h"
#include "linalg/backend.h"

namespace caldera::algo {

/// Ridge of spec §6.5 (`sigma_reg`): H += σ_reg·I after trace normalisation.
inline constexpr double kDefaultHessianRidge = 0.01;

/// The processed proxy Hessian of spec §6.5, on the host in fp64:
///   H = Σxxᵀ / count            (= H_c + μμᵀ: the uncentred second moment E[xxᵀ])
///   H = H / mean(diag H)        (trace normalisation, mean diagonal 1)
///   H = H + ridge·I
/// `stats.sum_xxt` must be a symmetric n×n matrix (n = `expected_n` when > 0); stats.count > 0.
/// Throws ConfigError (naming `context`, e.g. the unit) for a wrong shape or an empty count, and
/// NumericError for non-finite entries or an all-zero diagonal (inputs that are always zero).
/// The result is exactly symmetric.
[[nodiscard]] HostMatrix<double> process_hessian(const InputStats& stats, int64_t expected_n, double ridge,
                                                 const std::string& context);

/// Spec §1.3 REL_ERR against a fixed (W, H):
///   rel_error(Ŵ) = sqrt( tr((Ŵ−W) H (Ŵ−W)ᵀ) / tr(W H Wᵀ) ),
/// with each trace computed as Σ((E·H) ⊙ E) by one fp32 GEMM and an fp64-accumulated dot.
/// W (m×n) and H (n×n, symmetric) are backend views that must outlive the meter; the meter owns two
/// m×n fp32 work buffers. All work is enqueued on `backend`; rel_error() synchronises (returns a
/// scalar). When tr(WHWᵀ) is 0 (W = 0) the error is 0 for Ŵ = W and +∞ otherwise.
class ActivationErrorMeter {
 public:
  ActivationErrorMeter(linalg::Backend& backend, MatrixView<const float> w, MatrixView<const float> h);

  /// REL_ERR(W, H, w_hat); w_hat is m×n in backend memory.
  [[nodiscard]] double rel_error(MatrixView<const float> w_hat);
  /// tr((Ŵ−W) H (Ŵ−W)ᵀ), the unnormalised numerator.
  [[nodiscard]] double weighted_sq_error(MatrixView<const float> w_hat);
  /// tr(W H Wᵀ).
  [[nodiscard]] double denominator() const noexcept { return denominator_; }

 private:
  linalg::Backend& backend_;
  MatrixView<const float> w_;
  MatrixView<const float> h_;
  linalg::Matrix<float> diff_;
  linalg::Matrix<float> diff_h_;
  double denominator_ = 0.0;
};

}  // namespace caldera::algo
