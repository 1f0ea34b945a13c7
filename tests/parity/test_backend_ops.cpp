// Every Backend operation, checked on the backend selected at compile time (CALDERA_TEST_BACKEND_CUDA
// 0 or 1) against the CPU reference and against its mathematical definition. The same source is
// built as test_backend_ops_cpu (label unit) and test_backend_ops_cuda (labels parity;gpu), so both
// backends meet one contract (style C13).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>

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

// ---- strided views, empty shapes and edge cases (every op must honour ld and leave the rest of
// the parent buffer untouched) -----------------------------------------------------------------------

/// The entries of `got` outside block [r0, r0+nr) x [c0, c0+nc) equal those of `before`.
template <class T>
void expect_outside_block_unchanged(const HostMatrix<T>& got, const HostMatrix<T>& before, int64_t r0, int64_t c0,
                                    int64_t nr, int64_t nc) {
  for (int64_t i = 0; i < got.rows(); ++i)
    for (int64_t j = 0; j < got.cols(); ++j) {
      const bool inside = i >= r0 && i < r0 + nr && j >= c0 && j < c0 + nc;
      if (!inside) {
        ASSERT_EQ(got(i, j), before(i, j)) << "outside the block at " << i << "," << j;
      }
    }
}

template <class T>
void check_strided_elementwise(Backend& be, Backend& cpu) {
  const int64_t r0 = 3, c0 = 5, nr = 10, nc = 17;
  const auto parent = test::cast_matrix<T>(test::random_normal_f64(20, 30, 21));
  const auto other = test::cast_matrix<T>(test::random_normal_f64(20, 30, 22));
  auto dp = be.upload(parent.cview(), "parent");
  auto dother = be.upload(other.cview(), "other");
  const MatrixView<T> blk = dp.view().block(r0, c0, nr, nc);
  const MatrixView<const T> oblk = dother.cview().block(r0, c0, nr, nc);

  double ss = 0, dt = 0;
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < nc; ++j) {
      ss += double(parent(r0 + i, c0 + j)) * double(parent(r0 + i, c0 + j));
      dt += double(parent(r0 + i, c0 + j)) * double(other(r0 + i, c0 + j));
    }
  EXPECT_NEAR(be.sum_squares(MatrixView<const T>(blk)), ss, 1e-12 * ss);
  EXPECT_NEAR(be.dot(MatrixView<const T>(blk), oblk), dt, 1e-12 * ss);
  EXPECT_TRUE(be.all_finite(MatrixView<const T>(blk)));

  // transpose into a strided block of a zeroed 30×20 buffer
  auto dtr = be.template make<T>(30, 20, "tr");
  be.fill(dtr.view(), T(0));
  be.transpose(MatrixView<const T>(blk), dtr.view().block(1, 2, nc, nr));
  const auto tr = be.download(dtr);
  for (int64_t i = 0; i < 30; ++i)
    for (int64_t j = 0; j < 20; ++j) {
      const bool inside = i >= 1 && i < 1 + nc && j >= 2 && j < 2 + nr;
      ASSERT_EQ(tr(i, j), inside ? parent(r0 + j - 2, c0 + i - 1) : T(0)) << i << "," << j;
    }

  // maps with scalars that make every result a single rounding (exact equality on any backend)
  auto rows = test::cast_matrix<T>(test::random_normal_f64(1, nr, 23));
  auto cols = test::cast_matrix<T>(test::random_normal_f64(nc, 1, 24));
  auto drows = be.upload(rows.cview(), "rows");
  auto dcols = be.upload(cols.cview(), "cols");
  be.axpby(T(2), oblk, T(0.5), blk);
  be.mul_rows(blk, drows.cview());
  be.mul_cols(blk, dcols.cview());
  be.add_diagonal(blk, T(1.5));
  const auto expected = [&](int64_t i, int64_t j) {
    T e = T(2) * other(r0 + i, c0 + j) + T(0.5) * parent(r0 + i, c0 + j);
    e = e * rows(0, i);
    e = e * cols(j, 0);
    return i == j ? T(e + T(1.5)) : e;
  };
  auto got = be.download(dp);
  expect_outside_block_unchanged(got, parent, r0, c0, nr, nc);
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < nc; ++j) ASSERT_EQ(got(r0 + i, c0 + j), expected(i, j)) << i << "," << j;
  auto ddiag = be.template make<T>(nr, 1, "diag");
  be.diagonal(MatrixView<const T>(blk), ddiag.view());
  const auto diag = be.download(ddiag);
  for (int64_t i = 0; i < nr; ++i) ASSERT_EQ(diag(i, 0), expected(i, i));

  // scale, copy with beta = 0 (y is not read: NaN there must not propagate), fill: block only
  be.fill(dother.view().block(r0, c0, nr, nc), std::numeric_limits<T>::quiet_NaN());
  be.scale(blk, T(-4));
  be.axpby(T(1), MatrixView<const T>(blk), T(0), dother.view().block(r0, c0, nr, nc));
  be.fill(blk, T(7));
  got = be.download(dp);
  const auto oth = be.download(dother);
  expect_outside_block_unchanged(got, parent, r0, c0, nr, nc);
  expect_outside_block_unchanged(oth, other, r0, c0, nr, nc);
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < nc; ++j) {
      ASSERT_EQ(got(r0 + i, c0 + j), T(7));
      ASSERT_EQ(oth(r0 + i, c0 + j), T(-4) * expected(i, j)) << i << "," << j;
    }

  // fill_normal on a strided block numbers elements by i * cols + j, like a contiguous matrix
  if constexpr (std::is_same_v<T, float>) {
    const RngKey key = Rng(9).stream({3}).key();
    be.fill_normal(blk, key);
    auto ref = cpu.make<float>(nr, nc, "ref");
    cpu.fill_normal(ref.view(), key);
    const auto r = cpu.download(ref);
    got = be.download(dp);
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t j = 0; j < nc; ++j) ASSERT_EQ(got(r0 + i, c0 + j), r(i, j));
  }
}

TEST_F(BackendOps, ElementwiseOnStridedViewsF32AndF64) {
  check_strided_elementwise<float>(*be_, *cpu_);
  check_strided_elementwise<double>(*be_, *cpu_);
}

TEST_F(BackendOps, ConvertOnStridedViews) {
  const auto src = test::random_normal_f64(9, 13, 25);
  auto dsrc = up(src);
  auto dst = be_->make<float>(12, 20, "dst");
  be_->fill(dst.view(), -1.0f);
  be_->convert(dsrc.cview().block(1, 2, 6, 8), dst.view().block(3, 4, 6, 8));
  const auto got = down(dst);
  for (int64_t i = 0; i < 12; ++i)
    for (int64_t j = 0; j < 20; ++j) {
      const bool inside = i >= 3 && i < 9 && j >= 4 && j < 12;
      ASSERT_EQ(got(i, j), inside ? static_cast<float>(src(i - 2, j - 2)) : -1.0f) << i << "," << j;
    }
}

TEST_F(BackendOps, FactorizationsOnStridedViewsMatchContiguous) {
  const int64_t n = 40, r0 = 3, c0 = 4;
  const auto spd = test::random_spd(n, 1e3, 26);
  HostMatrix<double> parent(n + 7, n + 9);
  for (int64_t i = 0; i < parent.size(); ++i) parent.data()[i] = 7.0;
  auto dp = up(parent);
  const MatrixView<double> blk = dp.view().block(r0, c0, n, n);
  be_->upload(spd.cview(), blk);

  // cholesky on the block vs on a contiguous copy
  auto dc = up(spd);
  be_->cholesky(dc.view());
  be_->cholesky(blk);
  auto got = down(dp);
  expect_outside_block_unchanged(got, parent, r0, c0, n, n);
  HostMatrix<double> l(MatrixView<const double>(got.view().block(r0, c0, n, n)));
  EXPECT_LT(rel_diff(l, down(dc)), 1e-13);

  // cholesky_inverse on the block
  be_->cholesky_inverse(blk);
  got = down(dp);
  expect_outside_block_unchanged(got, parent, r0, c0, n, n);
  HostMatrix<double> inv(MatrixView<const double>(got.view().block(r0, c0, n, n)));
  HostMatrix<double> eye(n, n);
  for (int64_t i = 0; i < n; ++i) eye(i, i) = 1.0;
  EXPECT_LT(rel_diff(test::host_matmul<double>(spd.view(), inv.view()), eye), 1e-10);

  // eigh on the block: a = vᵀ diag(w) v
  be_->upload(spd.cview(), blk);
  auto dw = be_->make<double>(1, n, "w");
  be_->eigh(blk, dw.view());
  got = down(dp);
  expect_outside_block_unchanged(got, parent, r0, c0, n, n);
  const auto w = down(dw);
  HostMatrix<double> vt(n, n), wv(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      vt(i, j) = got(r0 + j, c0 + i);
      wv(i, j) = w(0, i) * got(r0 + i, c0 + j);
    }
  EXPECT_LT(rel_diff(test::host_matmul<double>(vt.view(), wv.view()), spd), 1e-12);

  // svd of a strided 30×45 block into strided u and vt blocks
  const auto a = test::random_normal_f64(30, 45, 27);
  HostMatrix<double> big(50, 60);
  auto dbig = up(big);
  be_->upload(a.cview(), dbig.view().block(2, 3, 30, 45));
  auto du = be_->make<double>(40, 40, "u");
  auto ds = be_->make<double>(1, 30, "s");
  auto dvt = be_->make<double>(35, 50, "vt");
  be_->svd(dbig.cview().block(2, 3, 30, 45), du.view().block(1, 2, 30, 30), ds.view(), dvt.view().block(4, 5, 30, 45));
  HostMatrix<double> u(MatrixView<const double>(down(du).view().block(1, 2, 30, 30)));
  const auto s = down(ds);
  HostMatrix<double> v(MatrixView<const double>(down(dvt).view().block(4, 5, 30, 45)));
  for (int64_t i = 0; i < 30; ++i)
    for (int64_t j = 0; j < 30; ++j) u(i, j) *= s(0, j);
  EXPECT_LT(rel_diff(test::host_matmul<double>(u.view(), v.view()), a), 1e-12);

  // qr of a strided 30×8 block: orthonormal columns spanning the input
  const auto q0 = test::random_normal_f64(30, 8, 28);
  be_->upload(q0.cview(), dbig.view().block(10, 20, 30, 8));
  be_->qr_orthonormalize(dbig.view().block(10, 20, 30, 8));
  HostMatrix<double> q(MatrixView<const double>(down(dbig).view().block(10, 20, 30, 8)));
  HostMatrix<double> qt(8, 30);
  for (int64_t i = 0; i < 30; ++i)
    for (int64_t j = 0; j < 8; ++j) qt(j, i) = q(i, j);
  const auto proj = test::host_matmul<double>(q.view(), test::host_matmul<double>(qt.view(), q0.view()).view());
  EXPECT_LT(rel_diff(proj, q0), 1e-12);

  // triangular_solve with a strided factor and a strided right-hand side
  be_->upload(l.cview(), blk);
  const auto b = test::random_normal_f64(n, 6, 29);
  auto dbb = be_->make<double>(n + 2, 10, "b");
  be_->upload(b.cview(), dbb.view().block(2, 3, n, 6));
  be_->triangular_solve(Side::kLeft, Uplo::kLower, Op::kNoTrans, Diag::kNonUnit, 1.0, MatrixView<const double>(blk),
                        dbb.view().block(2, 3, n, 6));
  HostMatrix<double> x(MatrixView<const double>(down(dbb).view().block(2, 3, n, 6)));
  EXPECT_LT(rel_diff(test::host_matmul<double>(l.view(), x.view()), b), 1e-12);
}

TEST_F(BackendOps, GramAccumulateOnStridedViews) {
  const int64_t t = 50, n = 24;
  const auto x = test::random_normal(t + 5, n + 6, 30);
  auto dx = up(x);
  HostMatrix<double> h0(n + 3, n + 4);
  for (int64_t i = 0; i < h0.size(); ++i) h0.data()[i] = -3.0;
  auto dh = up(h0);
  const MatrixView<double> hb = dh.view().block(1, 2, n, n);
  be_->fill(hb, 0.0);
  be_->gram_accumulate(dx.cview().block(2, 3, t, n), hb);
  const auto h = down(dh);
  expect_outside_block_unchanged(h, h0, 1, 2, n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double e = 0;
      for (int64_t r = 0; r < t; ++r) e += double(x(2 + r, 3 + i)) * double(x(2 + r, 3 + j));
      ASSERT_NEAR(h(1 + i, 2 + j), e, 1e-12 * (std::abs(e) + 1)) << i << "," << j;
    }
}

TEST_F(BackendOps, GemmWithEmptyInnerDimensionScalesC) {
  auto a = be_->make<float>(5, 0, "a");
  auto b = be_->make<float>(0, 7, "b");
  auto c = be_->make<float>(5, 7, "c");
  be_->fill(c.view(), std::nanf(""));
  be_->gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, a.cview(), b.cview(), 0.0f, c.view());
  const auto zeros = down(c);
  for (float v : zeros.storage()) ASSERT_EQ(v, 0.0f);
  be_->fill(c.view(), 3.0f);
  be_->gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, a.cview(), b.cview(), 2.0f, c.view());
  const auto sixes = down(c);
  for (float v : sixes.storage()) ASSERT_EQ(v, 6.0f);
}

TEST_F(BackendOps, EmptyShapesAreNoOps) {
  auto e = be_->make<double>(0, 5, "e");
  be_->fill(e.view(), 1.0);
  be_->scale(e.view(), 2.0);
  EXPECT_EQ(be_->sum_squares(e.cview()), 0.0);
  EXPECT_TRUE(be_->all_finite(e.cview()));
  auto et = be_->make<double>(5, 0, "et");
  be_->transpose(e.cview(), et.view());
  auto sq = be_->make<double>(0, 0, "sq");
  be_->cholesky(sq.view());
  auto w = be_->make<double>(1, 0, "w");
  be_->eigh(sq.view(), w.view());
  auto x = be_->make<float>(0, 4, "x");
  auto h = be_->make<double>(4, 4, "h");
  be_->fill(h.view(), 1.0);
  be_->gram_accumulate(x.cview(), h.view());
  const auto ones = down(h);
  for (double v : ones.storage()) ASSERT_EQ(v, 1.0);
}

}  // namespace
}  // namespace caldera::linalg

namespace caldera::linalg {
namespace {

TEST_F(BackendOps, AccumulateFixedIsExactAndMatchesHostConversion) {
  auto g1 = test::random_normal_f64(37, 53, 21);
  auto g2 = test::random_normal_f64(37, 53, 22);
  for (int64_t i = 0; i < g1.size(); ++i) g1.data()[i] *= 1e6;
  HostMatrix<Fixed128> acc0(37, 53);
  auto dacc = up(acc0);
  auto d1 = up(g1), d2 = up(g2);
  be_->accumulate_fixed(d1.view(), dacc.view());
  be_->accumulate_fixed(d2.view(), dacc.view());
  auto acc = be_->download(dacc);
  for (int64_t i = 0; i < acc.size(); ++i)
    ASSERT_TRUE(acc.data()[i] == to_fixed(g1.data()[i]) + to_fixed(g2.data()[i])) << i;
  // Strided sub-views.
  be_->accumulate_fixed(d1.view().block(3, 4, 10, 11), dacc.view().block(3, 4, 10, 11));
  acc = be_->download(dacc);
  EXPECT_TRUE(acc(3, 4) == 2 * to_fixed(g1(3, 4)) + to_fixed(g2(3, 4)));
  EXPECT_TRUE(acc(0, 0) == to_fixed(g1(0, 0)) + to_fixed(g2(0, 0)));
  // Out-of-range and non-finite entries are rejected.
  g1(5, 5) = std::nan("");
  auto bad = up(g1);
  EXPECT_THROW(be_->accumulate_fixed(bad.view(), dacc.view()), NumericError);
  g1(5, 5) = 1e30;
  bad = up(g1);
  EXPECT_THROW(be_->accumulate_fixed(bad.view(), dacc.view()), NumericError);
}

}  // namespace
}  // namespace caldera::linalg

namespace caldera::linalg {
namespace {

TEST_F(BackendOps, FixedChunksRecombineExactly) {
  HostMatrix<Fixed128> acc(9, 13);
  for (int64_t i = 0; i < acc.size(); ++i)
    acc.data()[i] = (Fixed128{i * 7919 - 31} << (i % 80)) * ((i % 3 == 0) ? -1 : 1);
  auto dacc = up(acc);
  HostMatrix<double> c[3];
  for (int k = 0; k < 3; ++k) {
    auto d = be_->make<double>(9, 13, "chunk");
    be_->fixed_chunk(dacc.cview(), k, d.view());
    c[k] = be_->download(d);
  }
  for (int64_t i = 0; i < acc.size(); ++i) {
    const double parts[3] = {c[0].data()[i], c[1].data()[i], c[2].data()[i]};
    ASSERT_TRUE(chunks_to_fixed(parts) == acc.data()[i]) << i;
  }
}

}  // namespace
}  // namespace caldera::linalg
