// CudaBackend: cuBLAS operations (gemm, gram_accumulate, triangular_solve) on row-major views.
// The operand swaps that turn row-major into cuBLAS's column-major are explained in cuda_backend.h.
#include <cublas_v2.h>

#include <algorithm>

#include "linalg/cuda/cuda_backend.h"
#include "linalg/cuda/cuda_check.h"
#include "linalg/cuda/cuda_internal.h"

namespace caldera::linalg {
namespace {

using cuda_detail::blas_ld;
using cuda_detail::check_square;
using cuda_detail::run_elementwise;
using cuda_detail::to_int;

/// Rows of x widened to double per DSYRK call in gram_accumulate(fp64): at most 256 MiB of scratch.
constexpr int64_t kGramChunkBytes = int64_t{256} << 20;

cublasOperation_t to_cublas(Op op) { return op == Op::kTrans ? CUBLAS_OP_T : CUBLAS_OP_N; }

// Type-dispatched cuBLAS entry points.
template <class T>
struct Blas;
template <>
struct Blas<float> {
  static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                             float* c, int ldc) {
    return cublasSgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  static cublasStatus_t syrk(cublasHandle_t h, cublasFillMode_t uplo, cublasOperation_t t, int n, int k,
                             const float* alpha, const float* a, int lda, const float* beta, float* c, int ldc) {
    return cublasSsyrk(h, uplo, t, n, k, alpha, a, lda, beta, c, ldc);
  }
  static cublasStatus_t trsm(cublasHandle_t h, cublasSideMode_t side, cublasFillMode_t uplo, cublasOperation_t t,
                             cublasDiagType_t diag, int m, int n, const float* alpha, const float* a, int lda,
                             float* b, int ldb) {
    return cublasStrsm(h, side, uplo, t, diag, m, n, alpha, a, lda, b, ldb);
  }
};
template <>
struct Blas<double> {
  static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const double* alpha, const double* a, int lda, const double* b, int ldb,
                             const double* beta, double* c, int ldc) {
    return cublasDgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  static cublasStatus_t syrk(cublasHandle_t h, cublasFillMode_t uplo, cublasOperation_t t, int n, int k,
                             const double* alpha, const double* a, int lda, const double* beta, double* c, int ldc) {
    return cublasDsyrk(h, uplo, t, n, k, alpha, a, lda, beta, c, ldc);
  }
  static cublasStatus_t trsm(cublasHandle_t h, cublasSideMode_t side, cublasFillMode_t uplo, cublasOperation_t t,
                             cublasDiagType_t diag, int m, int n, const double* alpha, const double* a, int lda,
                             double* b, int ldb) {
    return cublasDtrsm(h, side, uplo, t, diag, m, n, alpha, a, lda, b, ldb);
  }
};

template <class T>
int64_t op_rows(const MatrixView<const T>& a, Op op) {
  return op == Op::kTrans ? a.cols : a.rows;
}
template <class T>
int64_t op_cols(const MatrixView<const T>& a, Op op) {
  return op == Op::kTrans ? a.rows : a.cols;
}

// Row-major c (m×n) = column-major cᵀ (n×m) = op(b)ᵀ op(a)ᵀ: cuBLAS gets b first, then a.
template <class T>
void gemm_t(CudaBackend& be, Op op_a, Op op_b, T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta,
            MatrixView<T> c) {
  const int64_t m = op_rows(a, op_a), k = op_cols(a, op_a);
  CALDERA_CHECK(op_rows(b, op_b) == k && op_cols(b, op_b) == c.cols && c.rows == m, "gemm: op(a) ", m, "x", k,
                ", op(b) ", op_rows(b, op_b), "x", op_cols(b, op_b), ", c ", c.rows, "x", c.cols);
  if (c.empty()) return;
  if (k == 0) {  // c = beta * c; with beta == 0, c is not read
    if (beta == T(0))
      be.fill(c, T(0));
    else
      be.scale(c, beta);
    return;
  }
  be.make_current();
  CALDERA_CUBLAS_CHECK(Blas<T>::gemm(be.cublas(), to_cublas(op_b), to_cublas(op_a), to_int(c.cols, "n", "gemm"),
                                     to_int(m, "m", "gemm"), to_int(k, "k", "gemm"), &alpha, b.data,
                                     blas_ld(b, "gemm"), a.data, blas_ld(a, "gemm"), &beta, c.data,
                                     blas_ld(c, "gemm")));
}

template <class T>
void check_gram(const MatrixView<const float>& x, const MatrixView<T>& h) {
  check_square(h, "gram_accumulate");
  CALDERA_CHECK(h.rows == x.cols, "gram_accumulate: x has ", x.cols, " columns, h is ", h.rows, "x", h.cols);
}

template <class T>
void mirror_lower(CudaBackend& be, MatrixView<T> a, const char* op) {
  run_elementwise(be, kernels::TriangleArgs<T>{.op = kernels::TriangleOp::kMirrorLowerToUpper, .a = a}, op);
}

// op(a) x = alpha b (row-major) is xᵀ op(a)ᵀ = alpha bᵀ (column-major): side and uplo flip.
template <class T>
void triangular_solve_t(CudaBackend& be, Side side, Uplo uplo, Op op, Diag diag, T alpha, MatrixView<const T> a,
                        MatrixView<T> b) {
  check_square(a, "triangular_solve");
  const int64_t need = side == Side::kLeft ? b.rows : b.cols;
  CALDERA_CHECK(a.rows == need, "triangular_solve: a is ", a.rows, "x", a.cols, ", b is ", b.rows, "x", b.cols);
  if (b.empty()) return;
  be.make_current();
  CALDERA_CUBLAS_CHECK(Blas<T>::trsm(
      be.cublas(), side == Side::kLeft ? CUBLAS_SIDE_RIGHT : CUBLAS_SIDE_LEFT,
      uplo == Uplo::kLower ? CUBLAS_FILL_MODE_UPPER : CUBLAS_FILL_MODE_LOWER, to_cublas(op),
      diag == Diag::kUnit ? CUBLAS_DIAG_UNIT : CUBLAS_DIAG_NON_UNIT, to_int(b.cols, "b.cols", "triangular_solve"),
      to_int(b.rows, "b.rows", "triangular_solve"), &alpha, a.data, blas_ld(a, "triangular_solve"), b.data,
      blas_ld(b, "triangular_solve")));
}

}  // namespace

void CudaBackend::gemm(Op op_a, Op op_b, float alpha, MatrixView<const float> a, MatrixView<const float> b,
                       float beta, MatrixView<float> c) {
  gemm_t(*this, op_a, op_b, alpha, a, b, beta, c);
}
void CudaBackend::gemm(Op op_a, Op op_b, double alpha, MatrixView<const double> a, MatrixView<const double> b,
                       double beta, MatrixView<double> c) {
  gemm_t(*this, op_a, op_b, alpha, a, b, beta, c);
}

// h += xᵀx in fp64: chunks of rows are widened to double (exact) and passed to DSYRK, so every
// product of two fp32 inputs is exact and only the fp64 summation rounds. Column-major, the widened
// chunk (rows×n row-major) is xᵀ (n×rows), so DSYRK with CUBLAS_OP_N computes xᵀx into the
// column-major upper = row-major lower triangle, which is mirrored at the end.
void CudaBackend::gram_accumulate(MatrixView<const float> x, MatrixView<double> h) {
  check_gram(x, h);
  if (x.empty()) return;
  const int64_t n = x.cols;
  const int64_t chunk = std::clamp<int64_t>(kGramChunkBytes / (n * static_cast<int64_t>(sizeof(double))), 1, x.rows);
  DeviceBuffer<double> wide(*this, static_cast<size_t>(chunk * n), "gram_accumulate widened rows");
  const double one = 1.0;
  for (int64_t r0 = 0; r0 < x.rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, x.rows - r0);
    const MatrixView<double> w = wide.view(nr, n);
    convert(x.rows_range(r0, nr), w);
    make_current();
    const int n32 = to_int(n, "n", "gram_accumulate");
    CALDERA_CUBLAS_CHECK(cublasDsyrk(cublas(), CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n32,
                                     to_int(nr, "rows", "gram_accumulate"), &one, w.data, n32, &one, h.data,
                                     blas_ld(h, "gram_accumulate")));
  }
  mirror_lower(*this, h, "gram_accumulate");
}

void CudaBackend::gram_accumulate(MatrixView<const float> x, MatrixView<float> h) {
  check_gram(x, h);
  if (x.empty()) return;
  const float one = 1.0f;
  make_current();
  CALDERA_CUBLAS_CHECK(cublasSsyrk(cublas(), CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N,
                                   to_int(x.cols, "n", "gram_accumulate"), to_int(x.rows, "rows", "gram_accumulate"),
                                   &one, x.data, blas_ld(x, "gram_accumulate"), &one, h.data,
                                   blas_ld(h, "gram_accumulate")));
  mirror_lower(*this, h, "gram_accumulate");
}

void CudaBackend::triangular_solve(Side side, Uplo uplo, Op op, Diag diag, float alpha, MatrixView<const float> a,
                                   MatrixView<float> b) {
  triangular_solve_t(*this, side, uplo, op, diag, alpha, a, b);
}
void CudaBackend::triangular_solve(Side side, Uplo uplo, Op op, Diag diag, double alpha, MatrixView<const double> a,
                                   MatrixView<double> b) {
  triangular_solve_t(*this, side, uplo, op, diag, alpha, a, b);
}

}  // namespace caldera::linalg
