#include "algo/downdate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace caldera::algo {

using linalg::Backend;
using linalg::Op;

std::string_view to_string(DowndateRidge r) noexcept { return r == DowndateRidge::kPsd ? "psd" : "exact"; }

DowndateInfo hessian_downdate(Backend& backend, MatrixView<const float> h, MatrixView<const float> chol,
                              MatrixView<const float> r, double weight, double sigma2, DowndateRidge ridge,
                              MatrixView<float> h_out) {
  const int64_t n = h.rows, k = r.rows;
  CALDERA_CHECK(h.cols == n && same_shape(h, chol) && same_shape(h, h_out) && r.cols == n,
                "hessian_downdate: H ", h.rows, "x", h.cols, ", C ", chol.rows, "x", chol.cols, ", R ", r.rows, "x",
                r.cols, ", H' ", h_out.rows, "x", h_out.cols);
  CALDERA_CHECK(k >= 1 && k < n, "hessian_downdate: rank ", k, " must be in [1, ", n, ")");
  CALDERA_CHECK(sigma2 >= 0, "hessian_downdate: ridge σ₂ must be >= 0, got ", sigma2);
  CALDERA_CHECK(weight >= 0 && weight <= 1, "hessian_downdate: weight must be in [0, 1], got ", weight);

  // Q = orth((R C)ᵀ) (n×k); P = C Q; H' = H − P Pᵀ.
  auto r_white = backend.make<float>(k, n, "downdate.rc");
  backend.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, r, chol, 0.0f, r_white.view());
  auto basis = backend.make<float>(n, k, "downdate.q");
  backend.transpose(r_white.cview(), basis.view());
  backend.qr_orthonormalize(basis.view());
  auto p = backend.make<float>(n, k, "downdate.p");
  backend.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, chol, basis.cview(), 0.0f, p.view());
  backend.copy(h, h_out);
  backend.gemm(Op::kNoTrans, Op::kTrans, static_cast<float>(-weight), p.cview(), p.cview(), 1.0f, h_out);

  DowndateInfo info;
  if (ridge == DowndateRidge::kExact) {
    auto work = backend.clone(MatrixView<const float>(h_out), "downdate.eig");
    auto w = backend.make<float>(1, n, "downdate.eigvals");
    backend.eigh(work.view(), w.view());
    const auto w_host = backend.download(w.cview().block(0, 0, 1, 1));
    info.lambda_min = w_host(0, 0);
  }
  const double first = sigma2 + std::max(-info.lambda_min, 0.0);
  backend.add_diagonal(h_out, static_cast<float>(first));
  auto diag = backend.make<float>(1, n, "downdate.diag");
  backend.diagonal(MatrixView<const float>(h_out), diag.view());
  const auto d = backend.download(diag);
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += d(0, i);
  mean /= static_cast<double>(n);
  const double second = std::abs(mean) * sigma2;
  backend.add_diagonal(h_out, static_cast<float>(second));
  info.ridge_total = first + second;
  return info;
}

}  // namespace caldera::algo
