// The CUDA backend at Llama shapes (labels parity;gpu): widths 1408 (minillama-small MLP), 11008
// (Llama-2-7B MLP) and 14336 (Llama-3-8B / Mistral MLP) in GEMM, gram_accumulate, Cholesky, eigh,
// SVD and QR, fp32 and fp64.
//
// Inputs are synthetic and generated on the GPU: activations X with standard normal entries and
// column j scaled by 1 / (1 + j/1024) (a decaying spectrum), Hessians H = XᵀX / tokens with
// tokens = 2n (condition number ~1e4, like a damped calibration Hessian). Checks:
//  - against the CPU reference (OpenBLAS/LAPACK, all cores) where the CPU finishes in seconds:
//    GEMM, gram_accumulate, and every factorization at n = 1408;
//  - at 11008 / 14336 against mathematical residuals computed on the GPU (GEMM itself is checked
//    against the CPU above) and against residuals of sampled rows computed on the host in double,
//    which do not depend on any GPU routine.
// Tolerances (relative Frobenius unless stated):
//  - fp32 GEMM vs an fp64 reference of the same inputs: 3e-5 (rounding grows like sqrt(k)·eps32,
//    k up to 14336 gives ~1e-5); fp64 GEMM: 1e-12.
//  - gram_accumulate fp64 vs CPU: 1e-13 (products are exact, only summation order differs).
//  - fp64 factorization residuals at n <= 14336: 1e-11 (backward stable, ~n·eps64 = 2e-12 worst).
//  - fp32 factorization residuals: 5e-4 (~n·eps32 worst case; typical results are ~1e-5).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "linalg/backend.h"
#include "test_util.h"

namespace caldera::linalg {
namespace {

using test::rel_diff;

constexpr double kF32GemmTol = 3e-5;
constexpr double kF64GemmTol = 1e-12;
constexpr double kGramTol = 1e-13;
constexpr double kF64FactorTol = 1e-11;
constexpr double kF32FactorTol = 5e-4;

template <class T>
constexpr double factor_tol() {
  return std::is_same_v<T, float> ? kF32FactorTol : kF64FactorTol;
}

class LlamaShapes : public ::testing::Test {
 protected:
  void SetUp() override {
    CALDERA_REQUIRE_BACKEND(BackendKind::kCuda);
    gpu_ = make_backend(BackendKind::kCuda);
    BackendOptions cpu_options;
    cpu_options.cpu_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    cpu_ = make_backend(BackendKind::kCpu, cpu_options);
  }

  /// fp32 activations (tokens × n) on the GPU, columns scaled by 1 / (1 + j/1024).
  Matrix<float> activations(int64_t tokens, int64_t n, uint64_t seed) {
    auto x = gpu_->make<float>(tokens, n, "x");
    gpu_->fill_normal(x.view(), Rng(seed).stream({static_cast<uint64_t>(RngPurpose::kTestData)}).key());
    HostMatrix<float> d(1, n);
    for (int64_t j = 0; j < n; ++j) d(0, j) = 1.0f / (1.0f + static_cast<float>(j) / 1024.0f);
    auto dd = gpu_->upload(d.cview(), "scales");
    gpu_->mul_cols(x.view(), dd.cview());
    return x;
  }

  /// H = XᵀX / (2n) on the GPU, n × n symmetric positive definite, in T.
  template <class T>
  Matrix<T> hessian(int64_t n, uint64_t seed) {
    const int64_t tokens = 2 * n;
    auto x = activations(tokens, n, seed);
    auto h = gpu_->make<double>(n, n, "h");
    gpu_->fill(h.view(), 0.0);
    gpu_->gram_accumulate(x.cview(), h.view());
    gpu_->scale(h.view(), 1.0 / static_cast<double>(tokens));
    if constexpr (std::is_same_v<T, double>) {
      return h;
    } else {
      auto hf = gpu_->make<float>(n, n, "hf");
      gpu_->convert(h.cview(), hf.view());
      return hf;
    }
  }

  /// sqrt(Σ r² / Σ ref²) on the GPU.
  template <class T>
  double rel_norm(MatrixView<const T> r, MatrixView<const T> ref) {
    return std::sqrt(gpu_->sum_squares(r) / gpu_->sum_squares(ref));
  }

  /// ||op(Q) op(Q)ᵀ - I||_F / sqrt(k): orthonormal rows (Op::kNoTrans) or columns (Op::kTrans).
  template <class T>
  double orthonormality_error(MatrixView<const T> q, Op layout) {
    const int64_t k = layout == Op::kNoTrans ? q.rows : q.cols;
    auto g = gpu_->make<T>(k, k, "gram");
    if (layout == Op::kNoTrans)
      gpu_->gemm(Op::kNoTrans, Op::kTrans, T(1), q, q, T(0), g.view());
    else
      gpu_->gemm(Op::kTrans, Op::kNoTrans, T(1), q, q, T(0), g.view());
    gpu_->add_diagonal(g.view(), T(-1));
    return std::sqrt(gpu_->sum_squares(g.cview()) / static_cast<double>(k));
  }

  std::unique_ptr<Backend> gpu_;
  std::unique_ptr<Backend> cpu_;
};

/// Row indices spread over [0, n) for host-side spot checks.
std::vector<int64_t> sample_rows(int64_t n) { return {0, n / 3, (2 * n) / 3, n - 1}; }

TEST_F(LlamaShapes, GemmMatchesFp64Reference) {
  struct Case {
    int64_t m, k, n;
    Op op_a, op_b;
    bool fp64;
  };
  const Case cases[] = {{256, 4096, 11008, Op::kNoTrans, Op::kNoTrans, false},
                        {256, 14336, 4096, Op::kTrans, Op::kTrans, false},
                        {1408, 1408, 11008, Op::kTrans, Op::kNoTrans, true},
                        {128, 11008, 14336, Op::kNoTrans, Op::kTrans, true}};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const int64_t ar = c.op_a == Op::kTrans ? c.k : c.m, ac = c.op_a == Op::kTrans ? c.m : c.k;
    const int64_t br = c.op_b == Op::kTrans ? c.n : c.k, bc = c.op_b == Op::kTrans ? c.k : c.n;
    auto a = activations(ar, ac, ++seed);
    auto b = activations(br, bc, ++seed);
    auto c0 = activations(c.m, c.n, ++seed);
    // fp64 reference of the same (fp32-representable) inputs on the CPU
    auto ra = cpu_->make<double>(ar, ac, "a"), rb = cpu_->make<double>(br, bc, "b");
    auto rc = cpu_->make<double>(c.m, c.n, "c");
    cpu_->convert(cpu_->upload(gpu_->download(a).cview(), "a32").cview(), ra.view());
    cpu_->convert(cpu_->upload(gpu_->download(b).cview(), "b32").cview(), rb.view());
    cpu_->convert(cpu_->upload(gpu_->download(c0).cview(), "c32").cview(), rc.view());
    cpu_->gemm(c.op_a, c.op_b, 0.5, ra.cview(), rb.cview(), -1.5, rc.view());
    const auto ref = cpu_->download(rc);
    const std::string what = std::to_string(c.m) + "x" + std::to_string(c.k) + "x" + std::to_string(c.n);
    if (c.fp64) {
      auto a64 = gpu_->make<double>(ar, ac, "a64"), b64 = gpu_->make<double>(br, bc, "b64");
      auto c64 = gpu_->make<double>(c.m, c.n, "c64");
      gpu_->convert(a.cview(), a64.view());
      gpu_->convert(b.cview(), b64.view());
      gpu_->convert(c0.cview(), c64.view());
      gpu_->gemm(c.op_a, c.op_b, 0.5, a64.cview(), b64.cview(), -1.5, c64.view());
      EXPECT_LT(rel_diff(gpu_->download(c64), ref), kF64GemmTol) << what;
    } else {
      gpu_->gemm(c.op_a, c.op_b, 0.5f, a.cview(), b.cview(), -1.5f, c0.view());
      EXPECT_LT(rel_diff(gpu_->download(c0), ref), kF32GemmTol) << what;
    }
  }
}

TEST_F(LlamaShapes, GramAccumulateMatchesCpuAtLlamaWidths) {
  // (n, tokens): 4000 tokens at 11008 span two widened chunks of the fp64 path.
  const std::pair<int64_t, int64_t> cases[] = {{1408, 512}, {11008, 4000}, {14336, 512}};
  for (const auto& [n, tokens] : cases) {
    auto x = activations(tokens, n, 200 + static_cast<uint64_t>(n));
    auto h = gpu_->make<double>(n, n, "h");
    gpu_->fill(h.view(), 0.0);
    const int64_t split = tokens / 3;  // two calls accumulate
    gpu_->gram_accumulate(x.cview().rows_range(0, split), h.view());
    gpu_->gram_accumulate(x.cview().rows_range(split, tokens - split), h.view());
    auto cx = cpu_->upload(gpu_->download(x).cview(), "x");
    auto ch = cpu_->make<double>(n, n, "h");
    cpu_->fill(ch.view(), 0.0);
    cpu_->gram_accumulate(cx.cview(), ch.view());
    const auto got = gpu_->download(h);
    EXPECT_LT(rel_diff(got, cpu_->download(ch)), kGramTol) << n;
    for (int64_t i : sample_rows(n))
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(got(i, j), got(j, i)) << n << ": " << i << "," << j;
    if (n == 11008) {  // fp32 accumulation (cublasSsyrk) against the CPU's ssyrk
      auto hf = gpu_->make<float>(n, n, "hf");
      gpu_->fill(hf.view(), 0.0f);
      gpu_->gram_accumulate(x.cview(), hf.view());
      EXPECT_LT(rel_diff(gpu_->download(hf), cpu_->download(ch)), kF32GemmTol) << n;
    }
  }
}

TEST_F(LlamaShapes, CholeskyMatchesCpuAt1408AndResidualsAtLlamaWidths) {
  {  // n = 1408, fp64: the CPU factor
    auto h = hessian<double>(1408, 300);
    auto l = gpu_->clone(h.cview(), "l");
    gpu_->cholesky(l.view());
    auto cl = cpu_->upload(gpu_->download(h).cview(), "cl");
    cpu_->cholesky(cl.view());
    EXPECT_LT(rel_diff(gpu_->download(l), cpu_->download(cl)), 1e-10);
  }
  auto check = [&](auto tag, int64_t n) {
    using T = decltype(tag);
    auto h = hessian<T>(n, 301 + static_cast<uint64_t>(n));
    auto l = gpu_->clone(h.cview(), "l");
    gpu_->cholesky(l.view());
    auto r = gpu_->clone(h.cview(), "r");
    gpu_->gemm(Op::kNoTrans, Op::kTrans, T(1), l.cview(), l.cview(), T(-1), r.view());
    EXPECT_LT(rel_norm<T>(r.cview(), h.cview()), factor_tol<T>()) << n;
    // host: the strict upper triangle is zero, and sampled rows of L Lᵀ reproduce H
    const auto hl = gpu_->download(l);
    const auto hh = gpu_->download(h);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) ASSERT_EQ(hl(i, j), T(0)) << i << "," << j;
    for (int64_t i : sample_rows(n)) {
      double num = 0, den = 0;
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p <= std::min(i, j); ++p) s += double(hl(i, p)) * double(hl(j, p));
        num += (s - hh(i, j)) * (s - hh(i, j));
        den += double(hh(i, j)) * hh(i, j);
      }
      EXPECT_LT(std::sqrt(num / den), factor_tol<T>()) << n << " row " << i;
    }
  };
  check(float{}, 11008);
  check(double{}, 14336);
}

TEST_F(LlamaShapes, CholeskyOfConditionOneE8AndNonSpdAtLlamaWidth) {
  const int64_t n = 1408;
  const auto a = test::random_spd(n, 1e8, 310);
  auto l = gpu_->upload(a.cview(), "l");
  gpu_->cholesky(l.view());
  auto r = gpu_->upload(a.cview(), "r");
  gpu_->gemm(Op::kNoTrans, Op::kTrans, 1.0, l.cview(), l.cview(), -1.0, r.view());
  auto da = gpu_->upload(a.cview(), "a");
  EXPECT_LT(rel_norm<double>(r.cview(), da.cview()), 1e-12);
  auto cl = cpu_->upload(a.cview(), "cl");
  cpu_->cholesky(cl.view());
  EXPECT_LT(rel_diff(gpu_->download(l), cpu_->download(cl)), 1e-6);  // forward error ~ cond · eps

  // identity of order 11008 with a(7000, 7000) = -1: the factorization stops at pivot 7000
  auto expect_pivot = [&](auto tag) {
    using T = decltype(tag);
    auto m = gpu_->make<T>(11008, 11008, "not spd");
    gpu_->fill(m.view(), T(0));
    gpu_->add_diagonal(m.view(), T(1));
    gpu_->fill(m.view().block(7000, 7000, 1, 1), T(-1));
    try {
      gpu_->cholesky(m.view());
      FAIL() << "cholesky of a matrix with a negative pivot succeeded";
    } catch (const NumericError& e) {
      EXPECT_NE(std::string(e.what()).find("pivot index 7000"), std::string::npos) << e.what();
    }
  };
  expect_pivot(double{});
  expect_pivot(float{});
}

TEST_F(LlamaShapes, EighMatchesCpuAt1408AndResidualsAtLlamaWidths) {
  {  // n = 1408: eigenvalues against the CPU's, fp64 and fp32
    auto h = hessian<double>(1408, 400);
    auto v = gpu_->clone(h.cview(), "v");
    auto w = gpu_->make<double>(1, 1408, "w");
    gpu_->eigh(v.view(), w.view());
    auto cv = cpu_->upload(gpu_->download(h).cview(), "cv");
    auto cw = cpu_->make<double>(1, 1408, "cw");
    cpu_->eigh(cv.view(), cw.view());
    const auto gw = gpu_->download(w), rw = cpu_->download(cw);
    auto hf = gpu_->make<float>(1408, 1408, "hf");
    gpu_->convert(h.cview(), hf.view());
    auto wf = gpu_->make<float>(1408, 1, "wf");
    gpu_->eigh(hf.view(), wf.view());
    const auto gwf = gpu_->download(wf);
    const double top = rw(0, 1407);
    for (int64_t i = 0; i < 1408; ++i) {
      ASSERT_NEAR(gw(0, i), rw(0, i), 1e-10 * top) << i;
      ASSERT_NEAR(gwf(i, 0), rw(0, i), 2e-4 * top) << i;
    }
  }
  auto check = [&](auto tag, int64_t n) {
    using T = decltype(tag);
    auto h = hessian<T>(n, 401 + static_cast<uint64_t>(n));
    auto v = gpu_->clone(h.cview(), "v");
    auto w = gpu_->make<T>(1, n, "w");
    gpu_->eigh(v.view(), w.view());
    // V H = diag(w) V, rows of V orthonormal
    auto r = gpu_->clone(v.cview(), "r");
    gpu_->mul_rows(r.view(), w.cview());
    gpu_->gemm(Op::kNoTrans, Op::kNoTrans, T(1), v.cview(), h.cview(), T(-1), r.view());
    EXPECT_LT(rel_norm<T>(r.cview(), h.cview()), factor_tol<T>()) << n;
    EXPECT_LT(orthonormality_error<T>(v.cview(), Op::kNoTrans), factor_tol<T>()) << n;
    // host: ascending, trace preserved, sampled eigenpairs satisfy H v = λ v in double
    const auto hw = gpu_->download(w);
    auto diag = gpu_->make<T>(1, n, "diag");
    gpu_->diagonal(h.cview(), diag.view());
    const auto hd = gpu_->download(diag);
    double trace = 0, sum_w = 0, sum_abs_w = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (i > 0) {
        ASSERT_LE(hw(0, i - 1), hw(0, i)) << i;
      }
      trace += hd(0, i);
      sum_w += hw(0, i);
      sum_abs_w += std::abs(double(hw(0, i)));
    }
    EXPECT_LT(std::abs(trace - sum_w) / sum_abs_w, factor_tol<T>()) << n;
    const auto hh = gpu_->download(h);
    const auto hv = gpu_->download(v);
    const double top = std::max(std::abs(double(hw(0, 0))), std::abs(double(hw(0, n - 1))));
    for (int64_t k : sample_rows(n)) {
      double num = 0;
      for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += double(hh(i, j)) * double(hv(k, j));
        const double d = s - double(hw(0, k)) * double(hv(k, i));
        num += d * d;
      }
      EXPECT_LT(std::sqrt(num) / top, factor_tol<T>()) << n << " eigenpair " << k;
    }
  };
  check(double{}, 11008);
  check(float{}, 14336);
}

TEST_F(LlamaShapes, SvdResidualsInBothOrientations) {
  auto check = [&](auto tag, int64_t m, int64_t n, bool compare_with_cpu) {
    using T = decltype(tag);
    const int64_t k = std::min(m, n);
    auto a32 = activations(m, n, 500 + static_cast<uint64_t>(m + n));
    auto a = gpu_->make<T>(m, n, "a");
    if constexpr (std::is_same_v<T, float>)
      gpu_->copy(a32.cview(), a.view());
    else
      gpu_->convert(a32.cview(), a.view());
    auto u = gpu_->make<T>(m, k, "u");
    auto s = gpu_->make<T>(1, k, "s");
    auto vt = gpu_->make<T>(k, n, "vt");
    gpu_->svd(a.cview(), u.view(), s.view(), vt.view());
    const std::string what = std::to_string(m) + "x" + std::to_string(n);
    auto us = gpu_->clone(u.cview(), "us");
    gpu_->mul_cols(us.view(), s.cview());
    auto r = gpu_->clone(a.cview(), "r");
    gpu_->gemm(Op::kNoTrans, Op::kNoTrans, T(1), us.cview(), vt.cview(), T(-1), r.view());
    EXPECT_LT(rel_norm<T>(r.cview(), a.cview()), factor_tol<T>()) << what;
    EXPECT_LT(orthonormality_error<T>(u.cview(), Op::kTrans), factor_tol<T>()) << what;
    EXPECT_LT(orthonormality_error<T>(vt.cview(), Op::kNoTrans), factor_tol<T>()) << what;
    const auto hs = gpu_->download(s);
    double sum_s2 = 0;
    for (int64_t i = 0; i < k; ++i) {
      if (i > 0) {
        ASSERT_GE(hs(0, i - 1), hs(0, i)) << what << " " << i;
      }
      sum_s2 += double(hs(0, i)) * hs(0, i);
    }
    const double norm2 = gpu_->sum_squares(a.cview());
    EXPECT_LT(std::abs(sum_s2 - norm2) / norm2, factor_tol<T>()) << what;
    if (compare_with_cpu) {
      auto ca = cpu_->upload(gpu_->download(a).cview(), "ca");
      auto cu = cpu_->make<T>(m, k, "cu"), cs = cpu_->make<T>(1, k, "cs"), cvt = cpu_->make<T>(k, n, "cvt");
      cpu_->svd(ca.cview(), cu.view(), cs.view(), cvt.view());
      const auto rs = cpu_->download(cs);
      for (int64_t i = 0; i < k; ++i) ASSERT_NEAR(hs(0, i), rs(0, i), 1e-4 * rs(0, 0)) << what << " " << i;
    }
  };
  check(float{}, 1408, 11008, true);    // m < n: gesvd on the column-major view directly
  check(double{}, 14336, 1408, false);  // m > n: transpose in, factors transposed back
  check(float{}, 11008, 1408, false);
}

TEST_F(LlamaShapes, QrOrthonormalizeAtLlamaHeights) {
  auto check = [&](auto tag, int64_t m, int64_t k) {
    using T = decltype(tag);
    auto a32 = activations(m, k, 600 + static_cast<uint64_t>(m));
    auto a = gpu_->make<T>(m, k, "a");
    if constexpr (std::is_same_v<T, float>)
      gpu_->copy(a32.cview(), a.view());
    else
      gpu_->convert(a32.cview(), a.view());
    auto q = gpu_->clone(a.cview(), "q");
    gpu_->qr_orthonormalize(q.view());
    EXPECT_LT(orthonormality_error<T>(q.cview(), Op::kTrans), factor_tol<T>()) << m;
    // the span is kept: Q (Qᵀ A) = A
    auto qta = gpu_->make<T>(k, k, "qta");
    gpu_->gemm(Op::kTrans, Op::kNoTrans, T(1), q.cview(), a.cview(), T(0), qta.view());
    auto r = gpu_->clone(a.cview(), "r");
    gpu_->gemm(Op::kNoTrans, Op::kNoTrans, T(1), q.cview(), qta.cview(), T(-1), r.view());
    EXPECT_LT(rel_norm<T>(r.cview(), a.cview()), factor_tol<T>()) << m;
  };
  check(double{}, 14336, 256);
  check(float{}, 11008, 128);
}

}  // namespace
}  // namespace caldera::linalg
