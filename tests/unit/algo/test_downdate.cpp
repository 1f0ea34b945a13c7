// Spec §3.2 Hessian downdate: PSD by construction, equal to the SVD-based definition.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/downdate.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using linalg::Op;
using test::cpu_backend;

struct Case {
  linalg::Matrix<float> h, chol, l, r;
};

Case make_case(int64_t m, int64_t n, int64_t k, uint64_t seed) {
  auto& be = cpu_backend();
  Case c;
  c.h = be.upload(test::cast_matrix<float>(test::random_spd(n, 100.0, seed)).cview(), "h");
  c.chol = be.clone(c.h.cview(), "c");
  be.cholesky(c.chol.view());
  c.l = be.upload(test::random_normal(m, k, seed + 1).cview(), "l");
  c.r = be.upload(test::random_normal(k, n, seed + 2).cview(), "r");
  return c;
}

// The spec's definition: H − C V_k V_kᵀ Cᵀ with V_k the top-k right singular vectors of L·R·C.
HostMatrix<float> svd_downdate(const Case& c, int64_t m, int64_t n, int64_t k) {
  auto& be = cpu_backend();
  auto lr = be.make<float>(m, n, "lr");
  be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, c.l.cview(), c.r.cview(), 0.0f, lr.view());
  auto b = be.make<float>(m, n, "b");
  be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, lr.cview(), c.chol.cview(), 0.0f, b.view());
  const int64_t r = std::min(m, n);
  auto u = be.make<float>(m, r, "u");
  auto s = be.make<float>(1, r, "s");
  auto vt = be.make<float>(r, n, "vt");
  be.svd(b.cview(), u.view(), s.view(), vt.view());
  auto cv = be.make<float>(n, k, "cv");  // C V_k
  be.gemm(Op::kNoTrans, Op::kTrans, 1.0f, c.chol.cview(), vt.cview().rows_range(0, k), 0.0f, cv.view());
  auto out = be.clone(c.h.cview(), "ref");
  be.gemm(Op::kNoTrans, Op::kTrans, -1.0f, cv.cview(), cv.cview(), 1.0f, out.view());
  return be.download(out);
}

TEST(HessianDowndate, EqualsSvdDefinitionWhenLHasFullColumnRank) {
  const int64_t m = 48, n = 32, k = 4;
  const auto c = make_case(m, n, k, 31);
  auto& be = cpu_backend();
  auto out = be.make<float>(n, n, "h'");
  const auto info = hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 1.0, 0.0, DowndateRidge::kPsd, out.view());
  EXPECT_EQ(info.ridge_total, 0.0);
  const auto ref = svd_downdate(c, m, n, k);
  EXPECT_LT(test::rel_diff(be.download(out), ref), 1e-4);
}

TEST(HessianDowndate, PartialWeightRemovesAFractionOfTheLowRankTerm) {
  const int64_t m = 40, n = 24, k = 5;
  const auto c = make_case(m, n, k, 61);
  auto& be = cpu_backend();
  auto full = be.make<float>(n, n, "full");
  auto half = be.make<float>(n, n, "half");
  auto none = be.make<float>(n, n, "none");
  (void)hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 1.0, 0.0, DowndateRidge::kPsd, full.view());
  (void)hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 0.5, 0.0, DowndateRidge::kPsd, half.view());
  (void)hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 0.0, 0.0, DowndateRidge::kPsd, none.view());
  const auto f = be.download(full), hh = be.download(half), z = be.download(none), h = be.download(c.h);
  EXPECT_EQ(z.storage(), h.storage());
  for (int64_t i = 0; i < n * n; ++i) EXPECT_NEAR(hh.data()[i], 0.5 * (f.data()[i] + h.data()[i]), 1e-4);
}

TEST(HessianDowndate, IsPsdWithExactlyKNullDirectionsBeforeTheRidge) {
  const int64_t m = 40, n = 24, k = 5;
  const auto c = make_case(m, n, k, 41);
  auto& be = cpu_backend();
  auto out = be.make<float>(n, n, "h'");
  const auto info = hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 1.0, 0.0, DowndateRidge::kExact,
                                     out.view());
  auto w = be.make<float>(1, n, "w");
  auto work = be.clone(out.cview(), "work");
  be.eigh(work.view(), w.view());
  const auto ev = be.download(w);
  const double top = ev(0, n - 1);
  for (int64_t i = 0; i < k; ++i) EXPECT_LT(std::abs(ev(0, i)), 1e-5 * top) << "eigenvalue " << i;
  EXPECT_GT(ev(0, k), 1e-4 * top);
  EXPECT_NEAR(info.lambda_min, ev(0, 0), 1e-5 * top);
}

TEST(HessianDowndate, RidgesFollowTheSpecAndPsdModeOnlyDropsRoundoff) {
  const int64_t m = 40, n = 24, k = 5;
  const auto c = make_case(m, n, k, 51);
  auto& be = cpu_backend();
  auto bare = be.make<float>(n, n, "bare");
  auto psd = be.make<float>(n, n, "psd");
  auto exact = be.make<float>(n, n, "exact");
  (void)hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 1.0, 0.0, DowndateRidge::kPsd, bare.view());
  const auto ip = hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 1.0, 0.01, DowndateRidge::kPsd, psd.view());
  const auto ie = hessian_downdate(be, c.h.cview(), c.chol.cview(), c.r.cview(), 1.0, 0.01, DowndateRidge::kExact,
                                   exact.view());
  const auto b = be.download(bare), p = be.download(psd);
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += b(i, i) + 0.01;
  mean /= static_cast<double>(n);
  const double expected = 0.01 + mean * 0.01;
  EXPECT_NEAR(ip.ridge_total, expected, 1e-6);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) EXPECT_NEAR(p(i, j), b(i, j) + (i == j ? expected : 0.0), 1e-5);
  EXPECT_NEAR(ie.ridge_total, ip.ridge_total, 1e-5 * mean);
  EXPECT_LT(test::rel_diff(be.download(exact), p), 1e-5);
  // The ridged matrix is positive definite: its Cholesky succeeds.
  EXPECT_NO_THROW(be.cholesky(psd.view()));
}

}  // namespace
}  // namespace caldera::algo
