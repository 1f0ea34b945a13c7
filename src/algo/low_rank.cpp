#include "algo/low_rank.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/log.h"
#include "quant/ldl.h"

namespace caldera::algo {

using linalg::Backend;
using linalg::Diag;
using linalg::Matrix;
using linalg::Op;
using linalg::Side;
using linalg::Uplo;

std::string_view to_string(LrSvdSolver s) noexcept {
  return s == LrSvdSolver::kExact ? "exact" : "randomized";
}
std::string_view to_string(LrSplit s) noexcept { return s == LrSplit::kUnbalanced ? "unbalanced" : "balanced"; }

void gram_cols_f64(Backend& backend, MatrixView<const float> x, MatrixView<double> g) {
  CALDERA_CHECK(g.rows == x.cols && g.cols == x.cols, "gram_cols_f64: x ", x.rows, "x", x.cols, ", g ", g.rows, "x",
                g.cols);
  backend.fill(g, 0.0);
  backend.gram_accumulate(x, g);
}

void gram_rows_f64(Backend& backend, MatrixView<const float> x, MatrixView<double> g) {
  auto xt = backend.make<float>(x.cols, x.rows, "gram_rows.xt");
  backend.transpose(x, xt.view());
  gram_cols_f64(backend, xt.cview(), g);
}

namespace {

double mean_diagonal(Backend& backend, MatrixView<const double> g) {
  if (g.rows == 0) return 0.0;
  auto d = backend.make<double>(1, g.rows, "spd.diag");
  backend.diagonal(g, d.view());
  const auto h = backend.download(d);
  double s = 0.0;
  for (int64_t i = 0; i < g.rows; ++i) s += h(0, i);
  return s / static_cast<double>(g.rows);
}

// Lower Cholesky factor of g (+ jitter on failure), fp64 backend matrix.
Matrix<double> robust_cholesky(Backend& backend, MatrixView<const double> g) {
  auto c = backend.clone(g, "spd.chol");
  try {
    backend.cholesky(c.view());
    return c;
  } catch (const NumericError&) {
  }
  const double base = std::max(std::abs(mean_diagonal(backend, g)), std::numeric_limits<double>::min());
  for (double rel = 1e-12; rel <= 1e-2; rel *= 100.0) {
    backend.copy(g, c.view());
    backend.add_diagonal(c.view(), rel * base);
    try {
      backend.cholesky(c.view());
      log_debug("LPLR: k×k Gram matrix not positive definite; solved with jitter ", rel, "·mean(diag)");
      return c;
    } catch (const NumericError&) {
    }
  }
  raise<NumericError>("LPLR: ", g.rows, "x", g.rows,
                      " Gram matrix is not positive definite even with a jitter of 1e-2·mean(diag) (non-finite factors?)");
}

}  // namespace

void solve_spd_right(Backend& backend, MatrixView<const double> g, MatrixView<float> b) {
  CALDERA_CHECK(g.rows == g.cols && g.rows == b.cols, "solve_spd_right: G ", g.rows, "x", g.cols, ", b ", b.rows, "x",
                b.cols);
  if (b.empty()) return;
  const auto c = robust_cholesky(backend, g);
  auto x = backend.make<double>(b.rows, b.cols, "spd.rhs");
  backend.convert(MatrixView<const float>(b), x.view());
  // x G = b with G = C Cᵀ:  y Cᵀ = b, then x C = y.
  backend.triangular_solve(Side::kRight, Uplo::kLower, Op::kTrans, Diag::kNonUnit, 1.0, c.cview(), x.view());
  backend.triangular_solve(Side::kRight, Uplo::kLower, Op::kNoTrans, Diag::kNonUnit, 1.0, c.cview(), x.view());
  backend.convert(x.cview(), b);
}

void solve_spd_left(Backend& backend, MatrixView<const double> g, MatrixView<float> b) {
  CALDERA_CHECK(g.rows == g.cols && g.rows == b.rows, "solve_spd_left: G ", g.rows, "x", g.cols, ", b ", b.rows, "x",
                b.cols);
  if (b.empty()) return;
  const auto c = robust_cholesky(backend, g);
  auto x = backend.make<double>(b.rows, b.cols, "spd.rhs");
  backend.convert(MatrixView<const float>(b), x.view());
  // G x = b with G = C Cᵀ:  C y = b, then Cᵀ x = y.
  backend.triangular_solve(Side::kLeft, Uplo::kLower, Op::kNoTrans, Diag::kNonUnit, 1.0, c.cview(), x.view());
  backend.triangular_solve(Side::kLeft, Uplo::kLower, Op::kTrans, Diag::kNonUnit, 1.0, c.cview(), x.view());
  backend.convert(x.cview(), b);
}

namespace {

// Top-k eigenvectors (descending eigenvalue) of the symmetric fp64 matrix g, as the rows of a k×n
// fp64 matrix. eigh returns eigenvectors as rows in ascending order.
Matrix<double> top_eigenvectors(Backend& backend, Matrix<double>& g, int64_t k) {
  const int64_t n = g.rows();
  auto w = backend.make<double>(1, n, "lr_init.eigvals");
  backend.eigh(g.view(), w.view());
  auto top = backend.make<double>(k, n, "lr_init.top");
  for (int64_t i = 0; i < k; ++i) backend.copy(g.cview().rows_range(n - 1 - i, 1), top.view().rows_range(i, 1));
  return top;
}

// Orthonormal m×k basis of the dominant left singular subspace of Ã (exact, via the Gram matrix).
Matrix<float> left_basis_exact(Backend& backend, MatrixView<const float> a_white, int64_t k) {
  const int64_t m = a_white.rows, n = a_white.cols;
  auto basis = backend.make<float>(m, k, "lr_init.basis");
  if (m <= n) {
    // Eigenvectors of ÃÃᵀ (m×m) are the left singular vectors.
    auto g = backend.make<double>(m, m, "lr_init.gram");
    gram_rows_f64(backend, a_white, g.view());
    const auto top = top_eigenvectors(backend, g, k);  // k×m = U_kᵀ
    auto top32 = backend.make<float>(k, m, "lr_init.top32");
    backend.convert(top.cview(), top32.view());
    backend.transpose(top32.cview(), basis.view());
  } else {
    // Right singular vectors Z_k from ÃᵀÃ (n×n); U_k spans Ã Z_k, whose columns are mutually
    // orthogonal, so a QR normalises them (and completes zero columns orthonormally).
    auto g = backend.make<double>(n, n, "lr_init.gram");
    gram_cols_f64(backend, a_white, g.view());
    const auto top = top_eigenvectors(backend, g, k);  // k×n = Z_kᵀ
    auto top32 = backend.make<float>(k, n, "lr_init.top32");
    backend.convert(top.cview(), top32.view());
    backend.gemm(Op::kNoTrans, Op::kTrans, 1.0f, a_white, top32.cview(), 0.0f, basis.view());
    backend.qr_orthonormalize(basis.view());
  }
  return basis;
}

// Halko-Martinsson-Tropp range finder with power iterations, then Rayleigh-Ritz on the sketch.
Matrix<float> left_basis_randomized(Backend& backend, MatrixView<const float> a_white, int64_t k, const Rng& sketch) {
  const int64_t m = a_white.rows, n = a_white.cols;
  const int64_t q = std::min<int64_t>(2 * k, std::min(m, n));
  auto omega = backend.make<float>(n, q, "lr_init.omega");
  backend.fill_normal(omega.view(), sketch.key());
  auto y = backend.make<float>(m, q, "lr_init.y");
  auto z = backend.make<float>(n, q, "lr_init.z");
  backend.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, a_white, omega.cview(), 0.0f, y.view());
  for (int it = 0; it < kRandomizedPowerIters; ++it) {
    backend.qr_orthonormalize(y.view());
    backend.gemm(Op::kTrans, Op::kNoTrans, 1.0f, a_white, y.cview(), 0.0f, z.view());
    backend.qr_orthonormalize(z.view());
    backend.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, a_white, z.cview(), 0.0f, y.view());
  }
  backend.qr_orthonormalize(y.view());
  // B = Yᵀ Ã (q×n); the top-k eigenvectors of B Bᵀ rotate Y onto the dominant subspace.
  auto b = backend.make<float>(q, n, "lr_init.b");
  backend.gemm(Op::kTrans, Op::kNoTrans, 1.0f, y.cview(), a_white, 0.0f, b.view());
  auto g = backend.make<double>(q, q, "lr_init.gram");
  gram_rows_f64(backend, b.cview(), g.view());
  const auto top = top_eigenvectors(backend, g, k);  // k×q
  auto top32 = backend.make<float>(k, q, "lr_init.top32");
  backend.convert(top.cview(), top32.view());
  auto basis = backend.make<float>(m, k, "lr_init.basis");
  backend.gemm(Op::kNoTrans, Op::kTrans, 1.0f, y.cview(), top32.cview(), 0.0f, basis.view());
  return basis;
}

}  // namespace

LowRankPair lr_init(Backend& backend, const LrProblem& problem, int64_t rank, LrSvdSolver solver, LrSplit split,
                    const Rng& sketch) {
  const int64_t m = problem.a.rows, n = problem.a.cols;
  CALDERA_CHECK(same_shape(problem.a, problem.a_white) && problem.chol.rows == n && problem.chol.cols == n,
                "lr_init: A ", m, "x", n, ", Ã ", problem.a_white.rows, "x", problem.a_white.cols, ", C ",
                problem.chol.rows, "x", problem.chol.cols);
  CALDERA_CHECK(rank >= 1 && rank <= std::min(m, n), "lr_init: rank ", rank, " outside [1, ", std::min(m, n), "]");
  LowRankPair out;
  out.l = solver == LrSvdSolver::kExact ? left_basis_exact(backend, problem.a_white, rank)
                                        : left_basis_randomized(backend, problem.a_white, rank, sketch);
  out.r = backend.make<float>(rank, n, "lr_init.r");
  // With orthonormal L₀ the optimal R for ‖(A − L₀R)C‖ is L₀ᵀA (spec §2.1: R₀ = Σ_k Z_kᵀ Λ^{-½} Vᵀ).
  backend.gemm(Op::kTrans, Op::kNoTrans, 1.0f, out.l.cview(), problem.a, 0.0f, out.r.view());
  if (split == LrSplit::kBalanced) {
    // d_i = sqrt(‖R₀ row i‖): column i of L₀ gets norm d_i, row i of R₀ norm ‖row i‖/d_i = d_i.
    auto g = backend.make<double>(rank, rank, "lr_init.rrt");
    gram_rows_f64(backend, out.r.cview(), g.view());
    auto diag = backend.make<double>(1, rank, "lr_init.rdiag");
    backend.diagonal(g.cview(), diag.view());
    const auto norms_sq = backend.download(diag);
    HostMatrix<float> d(1, rank), d_inv(1, rank);
    for (int64_t i = 0; i < rank; ++i) {
      const double norm = std::sqrt(std::max(norms_sq(0, i), 0.0));
      const double di = norm > 0.0 ? std::sqrt(norm) : 1.0;
      d(0, i) = static_cast<float>(di);
      d_inv(0, i) = static_cast<float>(1.0 / di);
    }
    const auto dd = backend.upload(d.cview(), "lr_init.d");
    const auto dd_inv = backend.upload(d_inv.cview(), "lr_init.d_inv");
    backend.mul_cols(out.l.view(), dd.cview());
    backend.mul_rows(out.r.view(), dd_inv.cview());
  }
  return out;
}

namespace {

// Work buffers and cached products of the whitened error for one R (spec §2.3 hoisting).
struct RSide {
  Matrix<float> r_white;   // k×n  R̃ = R·C
  Matrix<float> ar_t;      // m×k  Ã·R̃ᵀ
  Matrix<double> gram;     // k×k  R̃·R̃ᵀ (fp64)

  RSide(Backend& be, int64_t m, int64_t n, int64_t k)
      : r_white(be, k, n, "lplr.r_white"), ar_t(be, m, k, "lplr.ar_t"), gram(be, k, k, "lplr.rrt") {}

  void update(Backend& be, const LrProblem& p, MatrixView<const float> r) {
    be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, r, p.chol, 0.0f, r_white.view());
    be.gemm(Op::kNoTrans, Op::kTrans, 1.0f, p.a_white, r_white.cview(), 0.0f, ar_t.view());
    gram_rows_f64(be, r_white.cview(), gram.view());
  }
};

}  // namespace

LplrResult lplr(Backend& backend, const LrProblem& problem, const LowRankPair& init, const FactorQuantizer& quant_l,
                const FactorQuantizer& quant_r, const LplrOptions& options) {
  const int iters = options.iters;
  const int64_t m = problem.a.rows, n = problem.a.cols, k = init.l.cols();
  CALDERA_CHECK(init.l.rows() == m && init.r.rows() == k && init.r.cols() == n && k >= 1, "lplr: L₀ ",
                init.l.rows(), "x", init.l.cols(), ", R₀ ", init.r.rows(), "x", init.r.cols(), " for A ", m, "x", n);
  CALDERA_CHECK(iters >= 0, "lplr: iterations must be >= 0, got ", iters);
  CALDERA_CHECK(options.h_ldl == nullptr || (options.h.rows == n && options.h.cols == n), "lplr: Hessian for LDLQ "
                "rounding of R must be ", n, "x", n, ", got ", options.h.rows, "x", options.h.cols);
  auto quantize_r = [&](MatrixView<const float> x, QuantizedFactor& out) {
    if (options.h_ldl != nullptr)
      quant_r.quantize_ldlq(backend, x, options.h, *options.h_ldl, options.tune_iters, out);
    else
      quant_r.quantize(backend, x, out);
  };
  const double a_white_sq = backend.sum_squares(problem.a_white);
  const double norm = std::sqrt(a_white_sq);

  LplrResult best;
  best.l = backend.make<float>(m, k, "lplr.best_l");
  QuantizedFactor l_t, r;                         // current quantized Lᵀ, R
  auto l = backend.make<float>(m, k, "lplr.l");   // current L (dequantized, m×k)
  auto l_t_raw = backend.make<float>(k, m, "lplr.l_t_raw");
  auto r_raw = backend.make<float>(k, n, "lplr.r_raw");
  auto l_gram = backend.make<double>(k, k, "lplr.ltl");
  RSide rside(backend, m, n, k);
  double e_best = std::numeric_limits<double>::infinity();

  // Error of (L̂, R̂) given l_gram = L̂ᵀL̂ and rside updated for R̂.
  auto evaluate = [&](int candidate) {
    rside.update(backend, problem, r.values.cview());
    gram_cols_f64(backend, l.cview(), l_gram.view());
    const double cross = backend.dot(l.cview(), rside.ar_t.cview());
    const double quad = backend.dot(l_gram.cview(), rside.gram.cview());
    const double e_sq = std::max(a_white_sq - 2.0 * cross + quad, 0.0);
    const double rel = norm > 0.0 ? std::sqrt(e_sq) / norm : std::sqrt(e_sq);
    best.errors.push_back(rel);
    if (std::isfinite(rel) && rel < e_best) {
      e_best = rel;
      best.best_candidate = candidate;
      copy_factor(backend, l_t, best.l_t);
      copy_factor(backend, r, best.r);
      backend.copy(l.cview(), best.l.view());
    }
  };

  // Candidate 0: the initialisation, quantized as it is.
  backend.transpose(init.l.cview(), l_t_raw.view());
  quant_l.quantize(backend, l_t_raw.cview(), l_t);
  backend.transpose(l_t.values.cview(), l.view());
  quantize_r(init.r.cview(), r);
  evaluate(0);

  // The first L step uses the unquantized R₀ (spec §2.3: L, R := L₀, R₀, then the L step).
  rside.update(backend, problem, init.r.cview());
  for (int it = 1; it <= iters; ++it) {
    // L step: L = Ã R̃ᵀ (R̃ R̃ᵀ)⁻¹, then quantize Lᵀ.
    backend.copy(rside.ar_t.cview(), l.view());
    solve_spd_right(backend, rside.gram.cview(), l.view());
    backend.transpose(l.cview(), l_t_raw.view());
    quant_l.quantize(backend, l_t_raw.cview(), l_t);
    backend.transpose(l_t.values.cview(), l.view());
    // R step: R = (L̂ᵀL̂)⁻¹ L̂ᵀ A, then quantize R.
    gram_cols_f64(backend, l.cview(), l_gram.view());
    backend.gemm(Op::kTrans, Op::kNoTrans, 1.0f, l.cview(), problem.a, 0.0f, r_raw.view());
    solve_spd_left(backend, l_gram.cview(), r_raw.view());
    quantize_r(r_raw.cview(), r);
    evaluate(it);  // leaves rside updated for R̂, as the next L step needs
  }
  if (best.best_candidate < 0)
    raise<NumericError>("LPLR: every candidate (", best.errors.size(), ") has a non-finite error");
  return best;
}

}  // namespace caldera::algo
