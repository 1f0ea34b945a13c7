#include "algo/hessian.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace caldera::algo {

using linalg::Op;

HostMatrix<double> process_hessian(const InputStats& stats, int64_t expected_n, double ridge,
                                   const std::string& context) {
  const auto& s = stats.sum_xxt;
  const int64_t n = s.rows();
  CALDERA_CHECK_AS(ConfigError, n > 0 && s.cols() == n, context, ": Hessian sum must be a non-empty square matrix, found ",
                   s.rows(), "x", s.cols());
  CALDERA_CHECK_AS(ConfigError, expected_n <= 0 || n == expected_n, context, ": Hessian is ", n, "x", n,
                   " but the weight has ", expected_n, " input features");
  CALDERA_CHECK_AS(ConfigError, stats.count > 0, context, ": Hessian token count must be positive, found ",
                   stats.count);
  CALDERA_CHECK_AS(ConfigError, ridge >= 0 && std::isfinite(ridge), context, ": Hessian ridge must be >= 0, found ",
                   ridge);

  HostMatrix<double> h(n, n);
  const double inv_count = 1.0 / static_cast<double>(stats.count);
  double trace = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      // Average the two triangles so the result is exactly symmetric even if the input is not.
      const double v = 0.5 * (s(i, j) + s(j, i)) * inv_count;
      if (!std::isfinite(v))
        raise<NumericError>(context, ": Hessian entry (", i, ", ", j, ") is not finite (", v, ")");
      h(i, j) = v;
      h(j, i) = v;
    }
    trace += h(i, i);
  }
  const double mean_diag = trace / static_cast<double>(n);
  if (!(mean_diag > 0.0))
    raise<NumericError>(context, ": Hessian has mean diagonal ", mean_diag,
                        " (expected > 0: the layer's calibration inputs are all zero)");
  const double inv_mean = 1.0 / mean_diag;
  for (int64_t i = 0; i < n * n; ++i) h.data()[i] *= inv_mean;
  for (int64_t i = 0; i < n; ++i) h(i, i) += ridge;
  return h;
}

ActivationErrorMeter::ActivationErrorMeter(linalg::Backend& backend, MatrixView<const float> w,
                                           MatrixView<const float> h)
    : backend_(backend),
      w_(w),
      h_(h),
      diff_(backend, w.rows, w.cols, "rel_err.diff"),
      diff_h_(backend, w.rows, w.cols, "rel_err.diff_h") {
  CALDERA_CHECK(h.rows == h.cols && h.rows == w.cols, "ActivationErrorMeter: W is ", w.rows, "x", w.cols, ", H is ",
                h.rows, "x", h.cols);
  backend_.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, w_, h_, 0.0f, diff_h_.view());
  denominator_ = backend_.dot(diff_h_.cview(), w_);
}

double ActivationErrorMeter::weighted_sq_error(MatrixView<const float> w_hat) {
  CALDERA_CHECK(same_shape(w_hat, w_), "ActivationErrorMeter: Ŵ is ", w_hat.rows, "x", w_hat.cols, ", W is ",
                w_.rows, "x", w_.cols);
  backend_.copy(w_hat, diff_.view());
  backend_.axpby(-1.0f, w_, 1.0f, diff_.view());
  backend_.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, diff_.cview(), h_, 0.0f, diff_h_.view());
  return backend_.dot(diff_h_.cview(), diff_.cview());
}

double ActivationErrorMeter::rel_error(MatrixView<const float> w_hat) {
  const double num = weighted_sq_error(w_hat);
  if (denominator_ > 0.0) return std::sqrt(std::max(num, 0.0) / denominator_);
  return num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
}

}  // namespace caldera::algo
