// Spec §6.5 Hessian processing on hand examples, and the §1.3 REL_ERR identities.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/hessian.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;

InputStats stats_from(const HostMatrix<double>& sum, int64_t count) {
  InputStats s;
  s.sum_xxt = sum;
  s.count = count;
  s.sum_x.assign(static_cast<size_t>(sum.rows()), 0.0);
  return s;
}

TEST(ProcessHessian, HandExampleUncentredNormalisedRidged) {
  // Tokens x = (2, 0), (0, 2), (2, 2): Σxxᵀ = [[8, 4], [4, 8]], count 3, E[xxᵀ] = [[8/3, 4/3], [4/3, 8/3]],
  // mean diagonal 8/3, normalised [[1, 1/2], [1/2, 1]], plus 0.01·I.
  HostMatrix<double> s(2, 2, {8, 4, 4, 8});
  const auto h = process_hessian(stats_from(s, 3), 2, 0.01, "unit");
  EXPECT_DOUBLE_EQ(h(0, 0), 1.01);
  EXPECT_DOUBLE_EQ(h(1, 1), 1.01);
  EXPECT_DOUBLE_EQ(h(0, 1), 0.5);
  EXPECT_DOUBLE_EQ(h(1, 0), 0.5);
}

TEST(ProcessHessian, UnevenDiagonalMeanBecomesOne) {
  // Σxxᵀ / count = [[4, 1, 0], [1, 1, 0], [0, 0, 1]]: mean diagonal 2.
  HostMatrix<double> s(3, 3, {8, 2, 0, 2, 2, 0, 0, 0, 2});
  const auto h = process_hessian(stats_from(s, 2), 3, 0.0, "unit");
  EXPECT_DOUBLE_EQ(h(0, 0), 2.0);
  EXPECT_DOUBLE_EQ(h(1, 1), 0.5);
  EXPECT_DOUBLE_EQ(h(2, 2), 0.5);
  EXPECT_DOUBLE_EQ(h(0, 1), 0.5);
  EXPECT_DOUBLE_EQ(h(2, 0), 0.0);
  double trace = 0;
  for (int i = 0; i < 3; ++i) trace += h(i, i);
  EXPECT_DOUBLE_EQ(trace / 3, 1.0);
}

TEST(ProcessHessian, RejectsBadInputsWithTypedErrors) {
  HostMatrix<double> s(2, 2, {1, 0, 0, 1});
  EXPECT_THROW((void)process_hessian(stats_from(s, 0), 2, 0.01, "L000.mlp.up_proj"), ConfigError);
  EXPECT_THROW((void)process_hessian(stats_from(s, 1), 3, 0.01, "L000.mlp.up_proj"), ConfigError);
  EXPECT_THROW((void)process_hessian(stats_from(HostMatrix<double>(2, 2), 5), 2, 0.01, "unit"), NumericError);
  HostMatrix<double> bad(2, 2, {1, NAN, NAN, 1});
  EXPECT_THROW((void)process_hessian(stats_from(bad, 5), 2, 0.01, "unit"), NumericError);
  try {
    (void)process_hessian(stats_from(s, 1), 3, 0.01, "L004.mlp.down_proj");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("L004.mlp.down_proj"), std::string::npos) << e.what();
  }
}

class RelErr : public ::testing::Test {
 protected:
  static constexpr int64_t kM = 12, kN = 20;
  void SetUp() override {
    w_host_ = test::random_normal(kM, kN, 11);
    h_host_ = test::cast_matrix<float>(test::random_spd(kN, 50.0, 12));
  }
  double rel(const HostMatrix<float>& w, const HostMatrix<float>& h, const HostMatrix<float>& w_hat) {
    auto& be = cpu_backend();
    auto dw = be.upload(w.cview(), "w");
    auto dh = be.upload(h.cview(), "h");
    auto dwh = be.upload(w_hat.cview(), "w_hat");
    ActivationErrorMeter meter(be, dw.cview(), dh.cview());
    return meter.rel_error(dwh.cview());
  }
  HostMatrix<float> scaled(const HostMatrix<float>& a, float s) {
    HostMatrix<float> b = a;
    for (int64_t i = 0; i < b.size(); ++i) b.data()[i] *= s;
    return b;
  }
  HostMatrix<float> w_host_, h_host_;
};

TEST_F(RelErr, Identities) {
  EXPECT_NEAR(rel(w_host_, h_host_, w_host_), 0.0, 1e-12);
  EXPECT_NEAR(rel(w_host_, h_host_, HostMatrix<float>(kM, kN)), 1.0, 1e-6);
  EXPECT_NEAR(rel(w_host_, h_host_, scaled(w_host_, 1.25f)), 0.25, 1e-6);
  EXPECT_NEAR(rel(w_host_, h_host_, scaled(w_host_, 0.5f)), 0.5, 1e-6);
}

TEST_F(RelErr, ScaleInvariantInWAndH) {
  const auto w_hat = test::random_normal(kM, kN, 13);
  const double base = rel(w_host_, h_host_, w_hat);
  EXPECT_GT(base, 0.5);
  EXPECT_NEAR(rel(scaled(w_host_, 3.0f), h_host_, scaled(w_hat, 3.0f)), base, 1e-5 * base);
  EXPECT_NEAR(rel(w_host_, scaled(h_host_, 7.0f), w_hat), base, 1e-5 * base);
}

TEST_F(RelErr, IdentityHessianIsFrobeniusAndMetricDependsOnH) {
  HostMatrix<float> eye(kN, kN);
  for (int64_t i = 0; i < kN; ++i) eye(i, i) = 1.0f;
  const auto w_hat = test::random_normal(kM, kN, 14);
  EXPECT_NEAR(rel(w_host_, eye, w_hat), test::rel_diff(w_hat, w_host_), 1e-6);
  EXPECT_GT(std::abs(rel(w_host_, h_host_, w_hat) - rel(w_host_, eye, w_hat)), 1e-3);
}

TEST_F(RelErr, InvariantUnderOrthogonalChangeOfBasis) {
  // (W U, Uᵀ H U) describes the same layer: tr(E H Eᵀ) is unchanged (spec §4.3).
  // An orthogonal matrix: QR of a Gaussian on the reference backend.
  auto& be = cpu_backend();
  auto q = be.upload(test::random_normal(kN, kN, 16).cview(), "q");
  be.qr_orthonormalize(q.view());
  const auto qh = be.download(q);
  auto mm = [&](const HostMatrix<float>& a, const HostMatrix<float>& b, linalg::Op ta) {
    auto da = be.upload(a.cview(), "a");
    auto db = be.upload(b.cview(), "b");
    auto dc = be.make<float>(ta == linalg::Op::kTrans ? a.cols() : a.rows(), b.cols(), "c");
    be.gemm(ta, linalg::Op::kNoTrans, 1.0f, da.cview(), db.cview(), 0.0f, dc.view());
    return be.download(dc);
  };
  const auto w_hat = test::random_normal(kM, kN, 17);
  const auto w_r = mm(w_host_, qh, linalg::Op::kNoTrans);
  const auto w_hat_r = mm(w_hat, qh, linalg::Op::kNoTrans);
  const auto h_r = mm(mm(qh, h_host_, linalg::Op::kTrans), qh, linalg::Op::kNoTrans);
  EXPECT_NEAR(rel(w_r, h_r, w_hat_r), rel(w_host_, h_host_, w_hat), 1e-5);
}

}  // namespace
}  // namespace caldera::algo
