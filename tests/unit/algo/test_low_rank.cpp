// Spec §2.1 LR initialisation (exact rank-k minimiser) and the §2.3 LPLR loop bookkeeping.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/low_rank.h"
#include "lr_test_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using linalg::Op;
using test::cpu_backend;
using test_lr::make_problem;
using test_lr::Problem;

// The rank-k minimiser of ‖(A − X)H½‖_F by the spec's own formula, in fp64 on the host:
// X* = (A H½)_k H^{-½} with H½ = V diag(√λ) Vᵀ from the eigendecomposition of H.
HostMatrix<double> brute_force_minimizer(const Problem& p, int64_t k) {
  auto& be = cpu_backend();
  const int64_t m = p.a64.rows(), n = p.a64.cols();
  auto ev = be.upload(p.h64.cview(), "ev");
  auto w = be.make<double>(1, n, "w");
  be.eigh(ev.view(), w.view());
  const auto e = be.download(ev);  // rows: eigenvectors
  const auto lam = be.download(w);
  HostMatrix<double> sq(n, n), isq(n, n);  // Eᵀ diag(f(λ)) E
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s1 = 0, s2 = 0;
      for (int64_t t = 0; t < n; ++t) {
        s1 += e(t, i) * std::sqrt(lam(0, t)) * e(t, j);
        s2 += e(t, i) / std::sqrt(lam(0, t)) * e(t, j);
      }
      sq(i, j) = s1;
      isq(i, j) = s2;
    }
  const auto y = test::matmul(p.a64.cview(), sq.cview());
  const int64_t r = std::min(m, n);
  auto du = be.make<double>(m, r, "u");
  auto ds = be.make<double>(1, r, "s");
  auto dvt = be.make<double>(r, n, "vt");
  auto dy = be.upload(y.cview(), "y");
  be.svd(dy.cview(), du.view(), ds.view(), dvt.view());
  const auto u = be.download(du);
  const auto s = be.download(ds);
  const auto vt = be.download(dvt);
  HostMatrix<double> yk(m, n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < k; ++t) yk(i, j) += u(i, t) * s(0, t) * vt(t, j);
  return test::matmul(yk.cview(), isq.cview());
}

HostMatrix<double> product(const LowRankPair& pair) {
  auto& be = cpu_backend();
  const auto l = be.download(pair.l);
  const auto r = be.download(pair.r);
  return test::host_matmul(l.cview(), r.cview());
}

void check_exact_init(int64_t m, int64_t n, int64_t k) {
  const auto p = make_problem(m, n, 100 + static_cast<uint64_t>(m));
  const auto pair = lr_init(cpu_backend(), p.view(), k, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const auto x = product(pair);
  const auto ref = brute_force_minimizer(p, k);
  EXPECT_LT(test::rel_diff(x, ref), 2e-4) << m << "x" << n << " rank " << k;
}

TEST(LrInit, ExactMatchesBruteForceRankKMinimizerWide) { check_exact_init(24, 40, 5); }
TEST(LrInit, ExactMatchesBruteForceRankKMinimizerTall) { check_exact_init(40, 24, 5); }
TEST(LrInit, ExactMatchesBruteForceFullRank) { check_exact_init(16, 24, 16); }

TEST(LrInit, LeftFactorIsOrthonormalAndBeatsOtherRankKCandidates) {
  const auto p = make_problem(32, 48, 7);
  const int64_t k = 6;
  auto& be = cpu_backend();
  const auto pair = lr_init(be, p.view(), k, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const auto l = be.download(pair.l);
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) {
      double d = 0;
      for (int64_t i = 0; i < l.rows(); ++i) d += static_cast<double>(l(i, a)) * l(i, b);
      EXPECT_NEAR(d, a == b ? 1.0 : 0.0, 1e-5);
    }
  const double e_init = test_lr::whitened_rel_error(p, l, be.download(pair.r));
  // The plain (not data-aware) truncated SVD of A is a rank-k candidate too; it must not be better.
  auto du = be.make<float>(32, 32, "u");
  auto ds = be.make<float>(1, 32, "s");
  auto dvt = be.make<float>(32, 48, "vt");
  be.svd(p.a.cview(), du.view(), ds.view(), dvt.view());
  auto u = be.download(du), s = be.download(ds), vt = be.download(dvt);
  HostMatrix<float> lu(32, k), rv(k, 48);
  for (int64_t i = 0; i < 32; ++i)
    for (int64_t t = 0; t < k; ++t) lu(i, t) = u(i, t) * s(0, t);
  for (int64_t t = 0; t < k; ++t)
    for (int64_t j = 0; j < 48; ++j) rv(t, j) = vt(t, j);
  EXPECT_LT(e_init, test_lr::whitened_rel_error(p, lu, rv));
}

TEST(LrInit, BalancedSplitKeepsProductAndEqualisesNorms) {
  const auto p = make_problem(32, 64, 9);
  auto& be = cpu_backend();
  const auto a = lr_init(be, p.view(), 8, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const auto b = lr_init(be, p.view(), 8, LrSvdSolver::kExact, LrSplit::kBalanced, Rng(1));
  EXPECT_LT(test::rel_diff(product(b), product(a)), 1e-5);
  const auto l = be.download(b.l);
  const auto r = be.download(b.r);
  for (int64_t t = 0; t < 8; ++t) {
    double nl = 0, nr = 0;
    for (int64_t i = 0; i < l.rows(); ++i) nl += static_cast<double>(l(i, t)) * l(i, t);
    for (int64_t j = 0; j < r.cols(); ++j) nr += static_cast<double>(r(t, j)) * r(t, j);
    EXPECT_NEAR(std::sqrt(nl), std::sqrt(nr), 1e-4 * std::sqrt(nr)) << "component " << t;
  }
}

TEST(LrInit, RandomizedIsNearExactAndDeterministic) {
  const auto p = make_problem(64, 96, 21, 0.7);
  auto& be = cpu_backend();
  const int64_t k = 8;
  const auto exact = lr_init(be, p.view(), k, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const auto r1 = lr_init(be, p.view(), k, LrSvdSolver::kRandomized, LrSplit::kUnbalanced, Rng(5));
  const auto r2 = lr_init(be, p.view(), k, LrSvdSolver::kRandomized, LrSplit::kUnbalanced, Rng(5));
  const double e_exact = test_lr::whitened_rel_error(p, be.download(exact.l), be.download(exact.r));
  const double e_rand = test_lr::whitened_rel_error(p, be.download(r1.l), be.download(r1.r));
  EXPECT_GE(e_rand, e_exact - 1e-6);
  EXPECT_LT(e_rand, e_exact * 1.01);
  const auto l1 = be.download(r1.l), l2 = be.download(r2.l);
  EXPECT_EQ(l1.storage(), l2.storage());
}

TEST(LrInit, RejectsRankOutOfRange) {
  const auto p = make_problem(16, 24, 3);
  EXPECT_THROW((void)lr_init(cpu_backend(), p.view(), 0, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1)), Error);
  EXPECT_THROW((void)lr_init(cpu_backend(), p.view(), 17, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1)), Error);
}

TEST(SpdSolve, MatchesInverseAndSurvivesSingularGram) {
  auto& be = cpu_backend();
  const auto g64 = test::random_spd(6, 1e3, 4);
  const auto b = test::random_normal(5, 6, 5);
  auto db = be.upload(b.cview(), "b");
  auto dg = be.upload(g64.cview(), "g");
  solve_spd_right(be, dg.cview(), db.view());
  const auto x = be.download(db);
  // x·G should give b back.
  HostMatrix<double> x64(5, 6);
  for (int64_t i = 0; i < x.size(); ++i) x64.data()[i] = x.data()[i];
  const auto back = test::matmul(x64.cview(), g64.cview());
  EXPECT_LT(test::rel_diff(back, b), 1e-5);
  // A rank-deficient Gram (a zero row/column) is solved with jitter instead of failing.
  HostMatrix<double> sing(2, 2, {1, 0, 0, 0});
  HostMatrix<float> rhs(1, 2, {3, 0});
  auto ds = be.upload(sing.cview(), "s");
  auto dr = be.upload(rhs.cview(), "r");
  solve_spd_left(be, ds.cview(), MatrixView<float>(dr.data(), 2, 1, 1));
  const auto sol = be.download(dr);
  EXPECT_NEAR(sol(0, 0), 3.0f, 1e-5);
  EXPECT_TRUE(std::isfinite(sol(0, 1)));
}

}  // namespace
}  // namespace caldera::algo
