// Every Backend operation, checked on the backend selected at compile time (CALDERA_TEST_BACKEND_CUDA
// 0 or 1) against the CPU reference and against its mathematical definition. The same source is
// built as test_backend_ops_cpu (label unit) and test_backend_ops_cuda (labels parity;gpu), so both
// backends meet one contract (style C13).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "linalg/backend.h"
#include "test_util.h"

namespace caldera::linalg {
namespace {

using test::rel_diff;

constexpr BackendKind kKind = CALDERA_TEST_BACKEND_CUDA ? BackendKind::kCuda : BackendKind::kCpu;
// Tolerances, relative Frobenius: fp32 ops land near 1e-6; fp32 factorizations of matrices with
// condition ~1e3 near 1e-4; fp64 near 1e-12.
constexpr double kF32Tol = 2e-5;
constexpr double kF32FactorTol = 2e-3;
constexpr double kF64Tol = 1e-10;

class BackendOps : public ::testing::Test {
 protected:
  void SetUp() override {
    CALDERA_REQUIRE_BACKEND(kKind);
    be_ = make_backend(kKind);
    cpu_ = make_backend(BackendKind::kCpu);
  }
  template <class T>
  Matrix<T> up(const HostMatrix<T>& h) {
    return be_->upload(h.view(), "test");
  }
  template <class T>
  HostMatrix<T> down(const Matrix<T>& m) {
    return be_->download(m);
  }
  std::unique_ptr<Backend> be_;
  std::unique_ptr<Backend> cpu_;
};

struct GemmCase {
  int64_t m, k, n;
};

TEST_F(BackendOps, GemmAllTransposesF32AndF64) {
  const GemmCase cases[] = {{1, 1, 1}, {7, 13, 5}, {64, 1408, 33}, {130, 256, 704}};
  for (const auto& c : cases)
    for (Op ta : {Op::kNoTrans, Op::kTrans})
      for (Op tb : {Op::kNoTrans, Op::kTrans}) {
        auto a = test::random_normal(ta == Op::kTrans ? c.k : c.m, ta == Op::kTrans ? c.m : c.k, 1);
        auto b = test::random_normal(tb == Op::kTrans ? c.n : c.k, tb == Op::kTrans ? c.k : c.n, 2);
        auto c0 = test::random_normal(c.m, c.n, 3);
        // reference in double on the host
        HostMatrix<float> at(c.m, c.k), bt(c.k, c.n);
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t p = 0; p < c.k; ++p) at(i, p) = ta == Op::kTrans ? a(p, i) : a(i, p);
        for (int64_t p = 0; p < c.k; ++p)
          for (int64_t j = 0; j < c.n; ++j) bt(p, j) = tb == Op::kTrans ? b(j, p) : b(p, j);
        auto ref = test::host_matmul<float>(at.view(), bt.view());
        for (int64_t i = 0; i < ref.size(); ++i) ref.data()[i] = 0.5 * ref.data()[i] - 2.0 * c0.data()[i];

        auto da = up(a), db = up(b), dc = up(c0);
        be_->gemm(ta, tb, 0.5f, da.view(), db.view(), -2.0f, dc.view());
        EXPECT_LT(rel_diff(down(dc), ref), kF32Tol) << c.m << "x" << c.k << "x" << c.n;

        auto a64 = test::cast_matrix<double>(HostMatrix<double>(a.rows(), a.cols(), std::vector<double>(a.storage().begin(), a.storage().end())));
        auto b64 = HostMatrix<double>(b.rows(), b.cols(), std::vector<double>(b.storage().begin(), b.storage().end()));
        auto c64 = HostMatrix<double>(c0.rows(), c0.cols(), std::vector<double>(c0.storage().begin(), c0.storage().end()));
        auto da64 = up(a64), db64 = up(b64), dc64 = up(c64);
        be_->gemm(ta, tb, 0.5, da64.view(), db64.view(), -2.0, dc64.view());
        EXPECT_LT(rel_diff(down(dc64), ref), kF64Tol);
      }
}

TEST_F(BackendOps, GemmOnStridedSubviews) {
  auto a = test::random_normal(40, 50, 4);
  auto b = test::random_normal(50, 60, 5);
  auto da = up(a), db = up(b);
  auto dc = be_->make<float>(40, 60, "c");
  be_->fill(dc.view(), 7.0f);
  // c[5:25, 10:30] = a[5:25, 0:17] * b[3:20, 10:30]
  be_->gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, da.view().block(5, 0, 20, 17), db.view().block(3, 10, 17, 20), 0.0f,
            dc.view().block(5, 10, 20, 20));
  auto c = down(dc);
  auto ref = test::host_matmul<float>(a.view().block(5, 0, 20, 17), b.view().block(3, 10, 17, 20));
  HostMatrix<float> got(MatrixView<const float>(c.view().block(5, 10, 20, 20)));
  EXPECT_LT(rel_diff(got, ref), kF32Tol);
  EXPECT_EQ(c(0, 0), 7.0f);
  EXPECT_EQ(c(39, 59), 7.0f);
  EXPECT_EQ(c(5, 9), 7.0f);
}

TEST_F(BackendOps, GramAccumulateIsExactProductSumInF64) {
  for (int64_t n : {8, 100, 1408}) {
    auto x = test::random_normal(300, n, 6);
    auto h0 = test::random_normal_f64(n, n, 7);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) h0(j, i) = h0(i, j);
    auto dx = up(x);
    auto dh = up(h0);
    be_->gram_accumulate(dx.view(), dh.view());
    be_->gram_accumulate(dx.view().rows_range(0, 100), dh.view());
    auto h = down(dh);
    // reference: exact products in double
    HostMatrix<double> ref = h0;
    for (int64_t t = 0; t < 300; ++t)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          ref(i, j) += static_cast<double>(x(t, i)) * x(t, j) * (t < 100 ? 2.0 : 1.0);
    EXPECT_LT(rel_diff(h, ref), 1e-13) << n;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) ASSERT_EQ(h(i, j), h(j, i));

    auto hf = be_->make<float>(n, n, "hf");
    be_->fill(hf.view(), 0.0f);
    be_->gram_accumulate(dx.view(), hf.view());
    HostMatrix<float> xt(n, 300);
    for (int64_t t = 0; t < 300; ++t)
      for (int64_t i = 0; i < n; ++i) xt(i, t) = x(t, i);
    auto ref2 = test::host_matmul<float>(xt.view(), x.view());
    EXPECT_LT(rel_diff(down(hf), ref2), kF32Tol);
  }
}

TEST_F(BackendOps, CholeskyReconstructsAndMatchesCpu) {
  for (int64_t n : {1, 17, 256, 1408}) {
    auto a = test::random_spd(n, 1e3, 8);
    auto da = up(a);
    be_->cholesky(da.view());
    auto l = down(da);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) ASSERT_EQ(l(i, j), 0.0);
    EXPECT_LT(rel_diff(test::matmul(l.cview(), l.cview(), Op::kNoTrans, Op::kTrans), a), kF64Tol) << n;

    auto af = test::cast_matrix<float>(a);
    auto daf = up(af);
    be_->cholesky(daf.view());
    EXPECT_LT(rel_diff(down(daf), l), kF32FactorTol) << n;
  }
}

TEST_F(BackendOps, CholeskyOfIllConditionedSpdInF64) {
  const int64_t n = 300;
  auto a = test::random_spd(n, 1e8, 9);
  auto da = up(a);
  be_->cholesky(da.view());
  auto l = down(da);
  HostMatrix<double> lt(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) lt(i, j) = l(j, i);
  EXPECT_LT(rel_diff(test::host_matmul<double>(l.view(), lt.view()), a), 1e-12);
}

TEST_F(BackendOps, CholeskyOfNonSpdThrowsNumericErrorNamingPivot) {
  HostMatrix<double> a(4, 4);
  for (int i = 0; i < 4; ++i) a(i, i) = 1.0;
  a(2, 2) = -1.0;
  auto da = up(a);
  try {
    be_->cholesky(da.view());
    FAIL() << "no throw";
  } catch (const NumericError& e) {
    EXPECT_NE(std::string(e.what()).find("pivot index 2"), std::string::npos) << e.what();
  }
  auto af = test::cast_matrix<float>(a);
  auto daf = up(af);
  EXPECT_THROW(be_->cholesky(daf.view()), NumericError);
}

TEST_F(BackendOps, TriangularSolveAllVariants) {
  const int64_t n = 37, r = 11;
  auto spd = test::random_spd(n, 10.0, 10);
  auto dl = up(spd);
  be_->cholesky(dl.view());
  auto l = down(dl);  // lower
  HostMatrix<double> u(n, n);  // upper = lᵀ
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) u(i, j) = l(j, i);
  for (Side side : {Side::kLeft, Side::kRight})
    for (Uplo uplo : {Uplo::kLower, Uplo::kUpper})
      for (Op op : {Op::kNoTrans, Op::kTrans}) {
        const HostMatrix<double>& tri = uplo == Uplo::kLower ? l : u;
        HostMatrix<double> opa(n, n);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j) opa(i, j) = op == Op::kTrans ? tri(j, i) : tri(i, j);
        auto b = side == Side::kLeft ? test::random_normal_f64(n, r, 11) : test::random_normal_f64(r, n, 11);
        auto dt = up(tri), db = up(b);
        be_->triangular_solve(side, uplo, op, Diag::kNonUnit, 2.0, dt.view(), db.view());
        auto x = down(db);
        auto back = side == Side::kLeft ? test::host_matmul<double>(opa.view(), x.view())
                                        : test::host_matmul<double>(x.view(), opa.view());
        for (int64_t i = 0; i < b.size(); ++i) b.data()[i] *= 2.0;
        EXPECT_LT(rel_diff(back, b), kF64Tol);
      }
}

TEST_F(BackendOps, CholeskyInverse) {
  for (int64_t n : {5, 200}) {
    auto a = test::random_spd(n, 100.0, 12);
    auto da = up(a);
    be_->cholesky(da.view());
    be_->cholesky_inverse(da.view());
    auto inv = down(da);
    auto prod = test::host_matmul<double>(a.view(), inv.view());
    HostMatrix<double> eye(n, n);
    for (int64_t i = 0; i < n; ++i) eye(i, i) = 1.0;
    EXPECT_LT(rel_diff(prod, eye), 1e-10);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) ASSERT_EQ(inv(i, j), inv(j, i));
  }
}

TEST_F(BackendOps, EighReconstructsWithAscendingEigenvalues) {
  for (int64_t n : {1, 33, 512}) {
    auto a = test::random_spd(n, 1e4, 13);
    auto da = up(a);
    auto dw = be_->make<double>(1, n, "w");
    be_->eigh(da.view(), dw.view());
    auto v = down(da);
    auto w = down(dw);
    for (int64_t i = 1; i < n; ++i) ASSERT_LE(w(0, i - 1), w(0, i));
    // a = vᵀ diag(w) v
    HostMatrix<double> vt(n, n), wv(n, n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        vt(i, j) = v(j, i);
        wv(i, j) = w(0, i) * v(i, j);
      }
    EXPECT_LT(rel_diff(test::host_matmul<double>(vt.view(), wv.view()), a), 1e-11) << n;
    EXPECT_NEAR(w(0, 0), 1.0, 1e-9);
    EXPECT_NEAR(w(0, n - 1), n == 1 ? 1.0 : 1e4, 1e-6);

    auto af = test::cast_matrix<float>(a);
    auto daf = up(af);
    auto dwf = be_->make<float>(n, 1, "wf");
    be_->eigh(daf.view(), dwf.view());
    auto wf = down(dwf);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(wf(i, 0), w(0, i), 2e-3 * w(0, n - 1)) << i;
  }
}

TEST_F(BackendOps, SvdThinBothOrientations) {
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {50, 20}, {20, 50}, {128, 704}};
  for (auto [m, n] : shapes) {
    const int64_t k = std::min(m, n);
    auto a = test::random_normal_f64(m, n, 14);
    auto da = up(a);
    auto du = be_->make<double>(m, k, "u");
    auto ds = be_->make<double>(1, k, "s");
    auto dvt = be_->make<double>(k, n, "vt");
    be_->svd(da.view(), du.view(), ds.view(), dvt.view());
    auto u = down(du), s = down(ds), vt = down(dvt);
    for (int64_t i = 1; i < k; ++i) ASSERT_GE(s(0, i - 1), s(0, i));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) u(i, j) *= s(0, j);
    EXPECT_LT(rel_diff(test::host_matmul<double>(u.view(), vt.view()), a), 1e-11) << m << "x" << n;
    EXPECT_LT(rel_diff(down(da), a), 0.0 + 1e-300) << "input must be unchanged";

    auto af = test::cast_matrix<float>(a);
    auto daf = up(af);
    auto duf = be_->make<float>(m, k, "u");
    auto dsf = be_->make<float>(k, 1, "s");
    auto dvtf = be_->make<float>(k, n, "vt");
    be_->svd(daf.view(), duf.view(), dsf.view(), dvtf.view());
    auto sf = down(dsf);
    for (int64_t i = 0; i < k; ++i) EXPECT_NEAR(sf(i, 0), s(0, i), 1e-4 * s(0, 0));
  }
}

TEST_F(BackendOps, QrOrthonormalizeKeepsSpan) {
  const int64_t m = 300, k = 40;
  auto a = test::random_normal_f64(m, k, 15);
  auto da = up(a);
  be_->qr_orthonormalize(da.view());
  auto q = down(da);
  HostMatrix<double> qt(k, m);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) qt(j, i) = q(i, j);
  auto qtq = test::host_matmul<double>(qt.view(), q.view());
  HostMatrix<double> eye(k, k);
  for (int64_t i = 0; i < k; ++i) eye(i, i) = 1;
  EXPECT_LT(rel_diff(qtq, eye), 1e-12);
  // a = q (qᵀ a): projection onto span(q) leaves a unchanged
  auto proj = test::host_matmul<double>(q.view(), test::host_matmul<double>(qt.view(), a.view()).view());
  EXPECT_LT(rel_diff(proj, a), 1e-12);
}

TEST_F(BackendOps, ElementwiseAndReductions) {
  auto a = test::random_normal(33, 47, 16);
  auto b = test::random_normal(33, 47, 17);
  auto da = up(a), db = up(b);
  double ss = 0, dt = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    ss += double(a.data()[i]) * a.data()[i];
    dt += double(a.data()[i]) * b.data()[i];
  }
  EXPECT_NEAR(be_->sum_squares(da.view()), ss, 1e-9 * ss);
  EXPECT_NEAR(be_->dot(da.view(), db.view()), dt, 1e-9 * std::abs(ss));
  EXPECT_TRUE(be_->all_finite(da.view()));

  be_->axpby(2.0f, da.view(), -1.0f, db.view());  // b = 2a - b
  auto got = down(db);
  for (int64_t i = 0; i < a.size(); ++i) ASSERT_FLOAT_EQ(got.data()[i], 2 * a.data()[i] - b.data()[i]);

  auto rows = test::random_normal(33, 1, 18), cols = test::random_normal(1, 47, 19);
  auto dr = up(rows), dc = up(cols);
  auto dm = up(a);
  be_->mul_rows(dm.view(), dr.view());
  be_->mul_cols(dm.view(), dc.view());
  be_->scale(dm.view(), 3.0f);
  auto m = down(dm);
  for (int64_t i = 0; i < 33; ++i)
    for (int64_t j = 0; j < 47; ++j) ASSERT_NEAR(m(i, j), 3 * a(i, j) * rows(i, 0) * cols(0, j), 1e-5);

  auto dtr = be_->make<float>(47, 33, "t");
  be_->transpose(da.view(), dtr.view());
  auto tr = down(dtr);
  for (int64_t i = 0; i < 33; ++i)
    for (int64_t j = 0; j < 47; ++j) ASSERT_EQ(tr(j, i), a(i, j));

  auto dd = be_->make<double>(33, 47, "d");
  be_->convert(da.view(), dd.view());
  be_->add_diagonal(dd.view(), 1.5);
  auto ddiag = be_->make<double>(1, 33, "diag");
  be_->diagonal(dd.view(), ddiag.view());
  auto diag = down(ddiag);
  for (int64_t i = 0; i < 33; ++i) ASSERT_EQ(diag(0, i), double(a(i, i)) + 1.5);
  auto back = be_->make<float>(33, 47, "back");
  be_->convert(dd.view(), back.view());
  EXPECT_EQ(down(back)(0, 1), a(0, 1));

  be_->fill(dm.view(), std::nanf(""));
  EXPECT_FALSE(be_->all_finite(dm.view()));
}

TEST_F(BackendOps, FillNormalMatchesCpuBitForBit) {
  auto d = be_->make<float>(17, 29, "n");
  const RngKey key = Rng(5).stream({1, 2}).key();
  be_->fill_normal(d.view(), key);
  auto c = cpu_->make<float>(17, 29, "n");
  cpu_->fill_normal(c.view(), key);
  auto got = down(d);
  auto ref = cpu_->download(c);
  for (int64_t i = 0; i < got.size(); ++i) ASSERT_EQ(got.data()[i], ref.data()[i]) << i;
}

TEST_F(BackendOps, ShapeMismatchThrows) {
  auto a = be_->make<float>(3, 4, "a");
  auto b = be_->make<float>(5, 6, "b");
  auto c = be_->make<float>(3, 6, "c");
  EXPECT_THROW(be_->gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, a.view(), b.view(), 0.0f, c.view()), Error);
  EXPECT_THROW(be_->cholesky(a.view()), Error);
}

TEST_F(BackendOps, MemoryStatsTrackAllocations) {
  be_->reset_peak_memory();
  const size_t before = be_->memory_stats().current_bytes;
  {
    auto m = be_->make<double>(1000, 1000, "big");
    EXPECT_GE(be_->memory_stats().current_bytes, before + 8000000);
  }
  EXPECT_EQ(be_->memory_stats().current_bytes, before);
  EXPECT_GE(be_->memory_stats().peak_bytes, before + 8000000);
}

}  // namespace
}  // namespace caldera::linalg
