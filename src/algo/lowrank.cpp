#include "algo/lowrank.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <type_traits>

#include "core/error.h"

namespace caldera::algo {
namespace {

/// Smallest Cholesky pivot L_ii² accepted, relative to mean(diag G): below it G is treated as
/// singular and damped (cond(L) would exceed ~10⁶).
constexpr double kMinRelativePivot = 1e-12;

std::string normalized(std::string_view text) {
  std::string s(text);
  for (char& c : s) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Checks stats.sum_xxt is n×n with a positive token count.
void check_gram(const InputStats& stats, int64_t n, const std::string& context) {
  CALDERA_CHECK_AS(ConfigError, stats.sum_xxt.rows() == n && stats.sum_xxt.cols() == n, context,
                   ": Gram matrix Σxxᵀ of ", n, "×", n, " expected (input dimension of the weight), found ",
                   stats.sum_xxt.rows(), "×", stats.sum_xxt.cols());
  CALDERA_CHECK_AS(ConfigError, stats.count > 0, context, ": input statistics with a positive token count expected, found ",
                   stats.count);
}

template <class T>
linalg::Matrix<T> upload_vector(linalg::Backend& backend, const std::vector<T>& v, std::string_view label) {
  return backend.upload(MatrixView<const T>(v.data(), 1, static_cast<int64_t>(v.size())), label);
}

/// W·S on the backend in precision T (spec §3.2 "W' = W S"). The Cholesky product is formed in
/// fp64 and rounded once when T is float.
template <class T>
linalg::Matrix<T> transformed_weight(linalg::Backend& backend, MatrixView<const float> w, const InputTransform& s) {
  const int64_t m = w.rows, n = w.cols;
  auto w32 = backend.upload(w, "lowrank.w");
  if (s.kind == TransformKind::kCholesky) {
    auto w64 = backend.make<double>(m, n, "lowrank.w64");
    backend.convert(w32.cview(), w64.view());
    auto l = backend.upload(s.lower.view(), "lowrank.chol_l");
    auto ws = backend.make<double>(m, n, "lowrank.ws64");
    backend.gemm(linalg::Op::kNoTrans, linalg::Op::kNoTrans, 1.0, w64.cview(), l.cview(), 0.0, ws.view());
    if constexpr (std::is_same_v<T, double>) {
      return ws;
    } else {
      auto out = backend.make<float>(m, n, "lowrank.ws32");
      backend.convert(ws.cview(), out.view());
      return out;
    }
  }
  linalg::Matrix<T> out;
  if constexpr (std::is_same_v<T, double>) {
    out = backend.make<double>(m, n, "lowrank.w64");
    backend.convert(w32.cview(), out.view());
  } else {
    out = std::move(w32);
  }
  if (s.kind == TransformKind::kDiagonal) {
    std::vector<T> d(s.diagonal.begin(), s.diagonal.end());
    auto dv = upload_vector(backend, d, "lowrank.scale");
    backend.mul_cols(out.view(), dv.cview());
  }
  return out;
}

template <class T>
HostMatrix<double> to_f64(const HostMatrix<T>& h) {
  if constexpr (std::is_same_v<T, double>) {
    return h;
  } else {
    HostMatrix<double> out(h.rows(), h.cols());
    for (int64_t i = 0; i < h.size(); ++i) out.data()[i] = h.data()[i];
    return out;
  }
}

/// L with L Lᵀ = G + δ·mean_diag·I, factorized on `backend` in fp64 (g: n×n backend, symmetric):
/// the undamped G first, then δ = first_damping, 10δ, ... up to 1 (spec pitfall 2). A factorization
/// whose smallest pivot L_ii² is below kMinRelativePivot·mean_diag counts as failed: a numerically
/// singular G passes with round-off-sized pivots, and such an L would blow L⁻¹ up. Sets `damping`
/// to the δ used. Throws NumericError starting with `what` when even δ = 1 fails.
HostMatrix<double> damped_cholesky(linalg::Backend& backend, MatrixView<const double> g, double mean_diag,
                                   double first_damping, const std::string& what, double& damping) {
  const int64_t n = g.rows;
  double delta = 0.0;
  for (;;) {
    auto l = backend.clone(g, "cholesky.damped");
    if (delta > 0.0) backend.add_diagonal(l.view(), delta * mean_diag);
    try {
      backend.cholesky(l.view());
      HostMatrix<double> lower = backend.download(l);
      double min_pivot = INFINITY;
      for (int64_t i = 0; i < n; ++i) min_pivot = std::min(min_pivot, lower(i, i) * lower(i, i));
      if (!(min_pivot >= kMinRelativePivot * mean_diag))
        raise<NumericError>("pivot ", min_pivot, " below ", kMinRelativePivot, " · mean(diag)");
      damping = delta;
      return lower;
    } catch (const NumericError&) {
      if (delta >= 1.0)
        raise<NumericError>(what, " not positive definite even with relative damping δ = ", delta, " · mean(diag)");
      delta = delta == 0.0 ? first_damping : std::min(1.0, delta * 10.0);
    }
  }
}

}  // namespace

int64_t rank_for_param_ratio(int64_t m, int64_t n, double ratio) {
  CALDERA_CHECK(m > 0 && n > 0, "rank_for_param_ratio: positive dimensions expected, got ", m, "x", n);
  CALDERA_CHECK(ratio >= 0.0 && std::isfinite(ratio), "rank_for_param_ratio: ratio >= 0 expected, got ", ratio);
  // Same double arithmetic as the reference's int(m*n*ratio) // (m+n).
  const double budget = std::floor(static_cast<double>(m) * static_cast<double>(n) * ratio);
  const int64_t r = static_cast<int64_t>(budget) / (m + n);
  return std::min<int64_t>(r, std::min(m, n));
}

double full_rank_param_ratio(int64_t m, int64_t n) {
  CALDERA_CHECK(m > 0 && n > 0, "full_rank_param_ratio: positive dimensions expected, got ", m, "x", n);
  return static_cast<double>(m + n) / static_cast<double>(std::max(m, n));
}

std::string_view to_string(ActivationScaling scaling) noexcept {
  return scaling == ActivationScaling::kAbsMax ? "abs-max" : "abs-mean";
}

ActivationScaling parse_activation_scaling(std::string_view text) {
  const std::string s = normalized(text);
  if (s == "abs-mean") return ActivationScaling::kAbsMean;
  if (s == "abs-max") return ActivationScaling::kAbsMax;
  raise<ConfigError>("--scaling: expected abs-mean or abs-max, found '", text, "'");
}

std::string_view to_string(TransformKind kind) noexcept {
  switch (kind) {
    case TransformKind::kIdentity: return "identity";
    case TransformKind::kDiagonal: return "diagonal";
    case TransformKind::kCholesky: return "cholesky";
  }
  return "?";
}

std::string_view to_string(SigmaFuse fuse) noexcept {
  switch (fuse) {
    case SigmaFuse::kUV: return "UV";
    case SigmaFuse::kU: return "U";
    case SigmaFuse::kV: return "V";
  }
  return "?";
}

SigmaFuse parse_sigma_fuse(std::string_view text) {
  const std::string s = normalized(text);
  if (s == "uv") return SigmaFuse::kUV;
  if (s == "u") return SigmaFuse::kU;
  if (s == "v") return SigmaFuse::kV;
  raise<ConfigError>("--sigma-fuse: expected UV, U or V, found '", text, "'");
}

std::string_view to_string(SvdPrecision precision) noexcept {
  return precision == SvdPrecision::kF64 ? "f64" : "f32";
}

SvdPrecision parse_svd_precision(std::string_view text) {
  const std::string s = normalized(text);
  if (s == "f32" || s == "fp32") return SvdPrecision::kF32;
  if (s == "f64" || s == "fp64") return SvdPrecision::kF64;
  raise<ConfigError>("--svd-precision: expected f32 or f64, found '", text, "'");
}

int64_t InputTransform::dim() const {
  switch (kind) {
    case TransformKind::kIdentity: return 0;
    case TransformKind::kDiagonal: return static_cast<int64_t>(diagonal.size());
    case TransformKind::kCholesky: return lower.rows();
  }
  return 0;
}

InputTransform diagonal_scaling(const InputStats& stats, int64_t n, const DiagonalScalingOptions& options,
                                const std::string& context) {
  CALDERA_CHECK_AS(ConfigError, options.alpha >= 0.0 && std::isfinite(options.alpha), context,
                   ": --alpha >= 0 expected, found ", options.alpha);
  CALDERA_CHECK_AS(ConfigError, options.relative_floor > 0.0 && options.relative_floor < 1.0, context,
                   ": relative scaling floor in (0, 1) expected, found ", options.relative_floor);
  const bool abs_mean = options.scaling == ActivationScaling::kAbsMean;
  const std::vector<double>& raw = abs_mean ? stats.sum_abs_x : stats.max_abs_x;
  CALDERA_CHECK_AS(ConfigError, static_cast<int64_t>(raw.size()) == n, context, ": ASVD ", to_string(options.scaling),
                   " scaling needs the per-channel statistic ", abs_mean ? "Σ|x|" : "max|x|", " of ", n,
                   " input channels, found ", raw.size(),
                   " entries (were the Hessians collected by a build that records it?)");
  double per_token = 1.0;
  if (abs_mean) {
    CALDERA_CHECK_AS(ConfigError, stats.count > 0, context, ": abs-mean scaling needs a positive token count, found ",
                     stats.count);
    // Σ_seq mean_t |x| = Σ|x| · n_seq / count for equal-length sequences (spec §2.1).
    per_token = static_cast<double>(std::max<int64_t>(stats.n_sequences, 1)) / static_cast<double>(stats.count);
  }
  InputTransform t;
  t.kind = TransformKind::kDiagonal;
  t.diagonal.resize(static_cast<size_t>(n));
  double mean = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const double s = raw[static_cast<size_t>(j)] * per_token;
    if (!std::isfinite(s) || s < 0.0)
      raise<NumericError>(context, ": activation statistic of channel ", j, " must be finite and >= 0, found ", s);
    t.diagonal[static_cast<size_t>(j)] = std::pow(s, options.alpha);
    mean += t.diagonal[static_cast<size_t>(j)];
  }
  mean /= static_cast<double>(n);
  if (!(mean > 0.0)) raise<NumericError>(context, ": every input channel has zero activation; ASVD scaling undefined");
  const double floor = options.relative_floor * mean;
  for (double& d : t.diagonal) {
    if (d < floor) {
      d = floor;
      ++t.floored_channels;
    }
  }
  t.damping = 0.0;
  return t;
}

InputTransform cholesky_whitening(linalg::Backend& backend, const InputStats& stats, int64_t n,
                                  const WhiteningOptions& options, const std::string& context) {
  check_gram(stats, n, context);
  CALDERA_CHECK_AS(ConfigError, options.first_damping > 0.0 && options.first_damping < 1.0, context,
                   ": first whitening damping in (0, 1) expected, found ", options.first_damping);
  double trace = 0.0;
  for (int64_t i = 0; i < n; ++i) trace += stats.sum_xxt(i, i);
  if (!std::isfinite(trace)) raise<NumericError>(context, ": Gram matrix has non-finite diagonal");
  if (!(trace > 0.0)) raise<NumericError>(context, ": Gram matrix has an all-zero diagonal (input always zero)");
  const double mean_diag = trace / static_cast<double>(n);
  auto g = backend.upload(stats.sum_xxt.view(), "whitening.gram");
  if (!backend.all_finite(g.cview())) raise<NumericError>(context, ": Gram matrix has non-finite entries");

  InputTransform t;
  t.kind = TransformKind::kCholesky;
  t.lower = damped_cholesky(backend, g.cview(), mean_diag, options.first_damping,
                            detail::concat(context, ": Gram matrix Σxxᵀ (", n, "×", n, ")"), t.damping);
  return t;
}

HostMatrix<double> refit_left_factor(linalg::Backend& backend, MatrixView<const float> w, const HostMatrix<double>& b,
                                     const HostMatrix<double>& gram, double first_damping, const std::string& context,
                                     double& damping) {
  const int64_t m = w.rows, n = w.cols, r = b.rows();
  CALDERA_CHECK(b.cols() == n && r >= 1, context, ": refit needs B of r×", n, " with r ≥ 1, found ", b.rows(), "×",
                b.cols());
  CALDERA_CHECK_AS(ConfigError, gram.rows() == n && gram.cols() == n, context, ": Gram matrix of ", n, "×", n,
                   " expected for the refit, found ", gram.rows(), "×", gram.cols());
  auto g = backend.upload(gram.view(), "refit.gram");
  if (!backend.all_finite(g.cview())) raise<NumericError>(context, ": refit Gram matrix has non-finite entries");
  auto b64 = backend.upload(b.view(), "refit.b");
  auto bg = backend.make<double>(r, n, "refit.bg");
  backend.gemm(linalg::Op::kNoTrans, linalg::Op::kNoTrans, 1.0, b64.cview(), g.cview(), 0.0, bg.view());
  g = linalg::Matrix<double>();
  auto normal = backend.make<double>(r, r, "refit.bgbt");  // B G' Bᵀ
  backend.gemm(linalg::Op::kNoTrans, linalg::Op::kTrans, 1.0, bg.cview(), b64.cview(), 0.0, normal.view());
  auto w32 = backend.upload(w, "refit.w");
  auto w64 = backend.make<double>(m, n, "refit.w64");
  backend.convert(w32.cview(), w64.view());
  w32 = linalg::Matrix<float>();
  auto x = backend.make<double>(r, m, "refit.at");  // B G' Wᵀ, then Aᵀ in place
  backend.gemm(linalg::Op::kNoTrans, linalg::Op::kTrans, 1.0, bg.cview(), w64.cview(), 0.0, x.view());
  auto diag = backend.make<double>(1, r, "refit.diag");
  backend.diagonal(normal.cview(), diag.view());
  const HostMatrix<double> diag_host = backend.download(diag);
  double trace = 0.0;
  for (int64_t i = 0; i < r; ++i) trace += diag_host.data()[i];
  if (!(std::isfinite(trace) && trace > 0.0))
    raise<NumericError>(context, ": B G' Bᵀ has a non-positive or non-finite trace (", trace, "): inputs all zero?");
  const HostMatrix<double> lower = damped_cholesky(backend, normal.cview(), trace / static_cast<double>(r),
                                                   first_damping, detail::concat(context, ": B G' Bᵀ (", r, "×", r, ")"),
                                                   damping);
  auto l = backend.upload(lower.view(), "refit.chol");
  // (B G' Bᵀ) Aᵀ = B G' Wᵀ: L Y = rhs, then Lᵀ Aᵀ = Y.
  backend.triangular_solve(linalg::Side::kLeft, linalg::Uplo::kLower, linalg::Op::kNoTrans, linalg::Diag::kNonUnit,
                           1.0, l.cview(), x.view());
  backend.triangular_solve(linalg::Side::kLeft, linalg::Uplo::kLower, linalg::Op::kTrans, linalg::Diag::kNonUnit, 1.0,
                           l.cview(), x.view());
  if (!backend.all_finite(x.cview())) raise<NumericError>(context, ": refitted A has non-finite entries");
  auto a = backend.make<double>(m, r, "refit.a");
  backend.transpose(x.cview(), a.view());
  return backend.download(a);
}

namespace {

template <class T>
void compute_svd(linalg::Backend& backend, MatrixView<const float> w, const InputTransform& transform, int64_t keep,
                 HostMatrix<double>& u_out, HostMatrix<double>& vt_out, std::vector<double>& sigma_out) {
  const int64_t m = w.rows, n = w.cols, k = std::min(m, n);
  auto ws = transformed_weight<T>(backend, w, transform);
  if (!backend.all_finite(ws.cview())) raise<NumericError>("W·S has non-finite entries (", m, "×", n, ")");
  auto u = backend.make<T>(m, k, "lowrank.u");
  auto s = backend.make<T>(1, k, "lowrank.sigma");
  auto vt = backend.make<T>(k, n, "lowrank.vt");
  backend.svd(ws.cview(), u.view(), s.view(), vt.view());
  ws = linalg::Matrix<T>();

  // Back-mapping V_keepᵀ S⁻¹ in fp64 (pitfall 3).
  auto vt64 = backend.make<double>(keep, n, "lowrank.vt_back");
  if (keep > 0) {
    if constexpr (std::is_same_v<T, double>) {
      backend.copy(MatrixView<const double>(vt.view().rows_range(0, keep)), vt64.view());
    } else {
      backend.convert(MatrixView<const float>(vt.view().rows_range(0, keep)), vt64.view());
    }
    if (transform.kind == TransformKind::kDiagonal) {
      std::vector<double> inv(transform.diagonal.size());
      for (size_t j = 0; j < inv.size(); ++j) inv[j] = 1.0 / transform.diagonal[j];
      auto dv = upload_vector(backend, inv, "lowrank.inv_scale");
      backend.mul_cols(vt64.view(), dv.cview());
    } else if (transform.kind == TransformKind::kCholesky) {
      auto l = backend.upload(transform.lower.view(), "lowrank.chol_l");
      backend.triangular_solve(linalg::Side::kRight, linalg::Uplo::kLower, linalg::Op::kNoTrans,
                               linalg::Diag::kNonUnit, 1.0, l.cview(), vt64.view());
    }
  }
  const HostMatrix<T> s_host = backend.download(s);
  HostMatrix<T> u_host(m, keep);
  if (keep > 0) backend.download(MatrixView<const T>(u.view().cols_range(0, keep)), u_host.view());
  vt_out = backend.download(vt64);
  u_out = to_f64(u_host);
  sigma_out.assign(s_host.data(), s_host.data() + k);
  for (double v : sigma_out)
    if (!std::isfinite(v)) raise<NumericError>("SVD of W·S (", m, "×", n, ") returned non-finite singular values");
  for (int64_t i = 0; i < vt_out.size(); ++i)
    if (!std::isfinite(vt_out.data()[i]))
      raise<NumericError>("back-mapped right factor Vᵀ S⁻¹ (", keep, "×", n, ") has non-finite entries");
}

}  // namespace

TruncatableSvd TruncatableSvd::compute(linalg::Backend& backend, MatrixView<const float> w,
                                       const InputTransform& transform, int64_t kept_rank, SvdPrecision precision) {
  CALDERA_CHECK(w.rows > 0 && w.cols > 0, "TruncatableSvd: empty weight ", w.rows, "x", w.cols);
  CALDERA_CHECK(transform.kind == TransformKind::kIdentity || transform.dim() == w.cols,
                "TruncatableSvd: transform of dimension ", transform.dim(), " for a weight with ", w.cols,
                " input channels");
  CALDERA_CHECK(kept_rank >= 0, "TruncatableSvd: kept rank >= 0 expected, got ", kept_rank);
  const int64_t keep = std::min(kept_rank, std::min(w.rows, w.cols));
  TruncatableSvd out;
  if (precision == SvdPrecision::kF64) {
    compute_svd<double>(backend, w, transform, keep, out.u_, out.vt_back_, out.sigma_all_);
  } else {
    compute_svd<float>(backend, w, transform, keep, out.u_, out.vt_back_, out.sigma_all_);
  }
  return out;
}

double TruncatableSvd::truncation_loss(int64_t rank) const {
  CALDERA_CHECK(rank >= 0, "truncation_loss: rank >= 0 expected, got ", rank);
  double loss = 0.0;
  for (size_t i = static_cast<size_t>(rank); i < sigma_all_.size(); ++i) loss += sigma_all_[i] * sigma_all_[i];
  return loss;
}

LowRankFactors TruncatableSvd::factors(int64_t rank, SigmaFuse fuse) const {
  CALDERA_CHECK(rank >= 0 && rank <= kept_rank(), "TruncatableSvd::factors: rank ", rank, " outside [0, ",
                kept_rank(), "] (kept triplets)");
  const double pa = fuse == SigmaFuse::kUV ? 0.5 : (fuse == SigmaFuse::kU ? 1.0 : 0.0);
  const double pb = 1.0 - pa;
  const int64_t m = rows(), n = cols();
  LowRankFactors f{HostMatrix<double>(m, rank), HostMatrix<double>(rank, n)};
  for (int64_t j = 0; j < rank; ++j) {
    const double sa = std::pow(sigma_all_[static_cast<size_t>(j)], pa);
    const double sb = std::pow(sigma_all_[static_cast<size_t>(j)], pb);
    for (int64_t i = 0; i < m; ++i) f.a(i, j) = u_(i, j) * sa;
    for (int64_t c = 0; c < n; ++c) f.b(j, c) = vt_back_(j, c) * sb;
  }
  return f;
}

}  // namespace caldera::algo
