// CpuBackend: BLAS (cblas, row-major) and LAPACK (LAPACKE, column-major on row-major buffers).
//
// A row-major m×n buffer with leading dimension ld is, to column-major LAPACK, the n×m matrix Aᵀ
// with the same ld. Each routine below states how it uses that.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "linalg/cpu/cpu_backend.h"
#include "linalg/cpu/cpu_views.h"

namespace caldera::linalg {
namespace {

CBLAS_TRANSPOSE to_cblas(Op op) { return op == Op::kTrans ? CblasTrans : CblasNoTrans; }

int64_t op_rows(MatrixView<const float> a, Op op) { return op == Op::kTrans ? a.cols : a.rows; }
int64_t op_cols(MatrixView<const float> a, Op op) { return op == Op::kTrans ? a.rows : a.cols; }
int64_t op_rows(MatrixView<const double> a, Op op) { return op == Op::kTrans ? a.cols : a.rows; }
int64_t op_cols(MatrixView<const double> a, Op op) { return op == Op::kTrans ? a.rows : a.cols; }

int lda_of(int64_t ld, int64_t cols) { return static_cast<int>(std::max<int64_t>({ld, cols, 1})); }

// Type-dispatched vendor entry points.
struct F32 {
  using T = float;
  static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a, int lda,
                   const float* b, int ldb, float beta, float* c, int ldc) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  static void syrk(int n, int k, float alpha, const float* a, int lda, float beta, float* c, int ldc) {
    cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, n, k, alpha, a, lda, beta, c, ldc);
  }
  static void trsm(CBLAS_SIDE s, CBLAS_UPLO u, CBLAS_TRANSPOSE t, CBLAS_DIAG d, int m, int n, float alpha,
                   const float* a, int lda, float* b, int ldb) {
    cblas_strsm(CblasRowMajor, s, u, t, d, m, n, alpha, a, lda, b, ldb);
  }
  static int potrf(int n, float* a, int lda) { return LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', n, a, lda); }
  static int potri(int n, float* a, int lda) { return LAPACKE_spotri(LAPACK_COL_MAJOR, 'U', n, a, lda); }
  static int syevd(int n, float* a, int lda, float* w) { return LAPACKE_ssyevd(LAPACK_COL_MAJOR, 'V', 'U', n, a, lda, w); }
  static int gesdd(int m, int n, float* a, int lda, float* s, float* u, int ldu, float* vt, int ldvt) {
    return LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', m, n, a, lda, s, u, ldu, vt, ldvt);
  }
  static int gelqf(int m, int n, float* a, int lda, float* tau) { return LAPACKE_sgelqf(LAPACK_COL_MAJOR, m, n, a, lda, tau); }
  static int orglq(int m, int n, int k, float* a, int lda, const float* tau) {
    return LAPACKE_sorglq(LAPACK_COL_MAJOR, m, n, k, a, lda, tau);
  }
};
struct F64 {
  using T = double;
  static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a, int lda,
                   const double* b, int ldb, double beta, double* c, int ldc) {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  static void syrk(int n, int k, double alpha, const double* a, int lda, double beta, double* c, int ldc) {
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, k, alpha, a, lda, beta, c, ldc);
  }
  static void trsm(CBLAS_SIDE s, CBLAS_UPLO u, CBLAS_TRANSPOSE t, CBLAS_DIAG d, int m, int n, double alpha,
                   const double* a, int lda, double* b, int ldb) {
    cblas_dtrsm(CblasRowMajor, s, u, t, d, m, n, alpha, a, lda, b, ldb);
  }
  static int potrf(int n, double* a, int lda) { return LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', n, a, lda); }
  static int potri(int n, double* a, int lda) { return LAPACKE_dpotri(LAPACK_COL_MAJOR, 'U', n, a, lda); }
  static int syevd(int n, double* a, int lda, double* w) {
    return LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', n, a, lda, w);
  }
  static int gesdd(int m, int n, double* a, int lda, double* s, double* u, int ldu, double* vt, int ldvt) {
    return LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', m, n, a, lda, s, u, ldu, vt, ldvt);
  }
  static int gelqf(int m, int n, double* a, int lda, double* tau) {
    return LAPACKE_dgelqf(LAPACK_COL_MAJOR, m, n, a, lda, tau);
  }
  static int orglq(int m, int n, int k, double* a, int lda, const double* tau) {
    return LAPACKE_dorglq(LAPACK_COL_MAJOR, m, n, k, a, lda, tau);
  }
};

template <class V>
void gemm_t(Op op_a, Op op_b, typename V::T alpha, MatrixView<const typename V::T> a,
            MatrixView<const typename V::T> b, typename V::T beta, MatrixView<typename V::T> c) {
  using T = typename V::T;
  const int64_t m = op_rows(a, op_a), k = op_cols(a, op_a);
  CALDERA_CHECK(op_rows(b, op_b) == k && op_cols(b, op_b) == c.cols && c.rows == m, "gemm: op(a) ", m, "x", k,
                ", op(b) ", op_rows(b, op_b), "x", op_cols(b, op_b), ", c ", c.rows, "x", c.cols);
  if (c.empty()) return;
  if (k == 0) {  // BLAS may leave c untouched for k == 0; the contract says c = beta * c
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < c.cols; ++j) c(i, j) = beta == T(0) ? T(0) : beta * c(i, j);
    return;
  }
  V::gemm(to_cblas(op_a), to_cblas(op_b), static_cast<int>(m), static_cast<int>(c.cols), static_cast<int>(k), alpha,
          a.data, lda_of(a.ld, a.cols), b.data, lda_of(b.ld, b.cols), beta, c.data, lda_of(c.ld, c.cols));
}

/// Copies the lower triangle onto the upper one.
template <class T>
void mirror_lower(MatrixView<T> a) {
#pragma omp parallel for schedule(dynamic, 64) if (a.rows > 256)
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = i + 1; j < a.cols; ++j) a(i, j) = a(j, i);
}

template <class T>
void check_square(MatrixView<T> a, const char* op) {
  CALDERA_CHECK(a.rows == a.cols, op, ": square matrix expected, got ", a.rows, "x", a.cols);
}

// Row-major lower L (a = L Lᵀ) is column-major upper U = Lᵀ with a = Uᵀ U: potrf('U') on the buffer.
template <class V>
void cholesky_t(MatrixView<typename V::T> a) {
  check_square(a, "cholesky");
  const int64_t n = a.rows;
  if (n == 0) return;
  const int info = V::potrf(static_cast<int>(n), a.data, lda_of(a.ld, a.cols));
  if (info > 0)
    raise<NumericError>("cholesky: matrix of order ", n, " is not positive definite (leading minor ", info,
                        " fails, pivot index ", info - 1, ")");
  if (info < 0) raise<BlasError>("cholesky: LAPACK potrf argument ", -info, " invalid");
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) a(i, j) = 0;
}

template <class V>
void triangular_solve_t(Side side, Uplo uplo, Op op, Diag diag, typename V::T alpha, MatrixView<const typename V::T> a,
                        MatrixView<typename V::T> b) {
  check_square(a, "triangular_solve");
  const int64_t need = side == Side::kLeft ? b.rows : b.cols;
  CALDERA_CHECK(a.rows == need, "triangular_solve: a is ", a.rows, "x", a.cols, ", b is ", b.rows, "x", b.cols);
  if (b.empty()) return;
  V::trsm(side == Side::kLeft ? CblasLeft : CblasRight, uplo == Uplo::kLower ? CblasLower : CblasUpper, to_cblas(op),
          diag == Diag::kUnit ? CblasUnit : CblasNonUnit, static_cast<int>(b.rows), static_cast<int>(b.cols), alpha,
          a.data, lda_of(a.ld, a.cols), b.data, lda_of(b.ld, b.cols));
}

// Same reading as cholesky: potri('U') on the column-major view inverts Uᵀ U = L Lᵀ and writes the
// column-major upper triangle = the row-major lower triangle; then mirror.
template <class V>
void cholesky_inverse_t(MatrixView<typename V::T> a) {
  check_square(a, "cholesky_inverse");
  const int64_t n = a.rows;
  if (n == 0) return;
  const int info = V::potri(static_cast<int>(n), a.data, lda_of(a.ld, a.cols));
  if (info > 0) raise<NumericError>("cholesky_inverse: factor has a zero diagonal entry at ", info - 1);
  if (info < 0) raise<BlasError>("cholesky_inverse: LAPACK potri argument ", -info, " invalid");
  mirror_lower(a);
}

// Symmetric input: the column-major view is the same matrix. Eigenvectors come back in the columns
// of the column-major buffer, i.e. in the rows of the row-major one, as the contract says.
template <class V>
void eigh_t(MatrixView<typename V::T> a, MatrixView<typename V::T> w) {
  check_square(a, "eigh");
  const int64_t n = a.rows;
  auto* pw = cpu::vector_data(w, n, "eigh");
  if (n == 0) return;
  const int info = V::syevd(static_cast<int>(n), a.data, lda_of(a.ld, a.cols), pw);
  if (info > 0) raise<NumericError>("eigh: eigensolver failed to converge (", info, " off-diagonal elements)");
  if (info < 0) raise<BlasError>("eigh: LAPACK syevd argument ", -info, " invalid");
}

// Row-major a (m×n) is column-major aᵀ (n×m) = U' S V'ᵀ, so a = V' S U'ᵀ: LAPACK's U' (n×k,
// column-major) is our vt (k×n, row-major) and LAPACK's V'ᵀ (k×m, column-major) is our u (m×k).
template <class V>
void svd_t(MatrixView<const typename V::T> a, MatrixView<typename V::T> u, MatrixView<typename V::T> s,
           MatrixView<typename V::T> vt) {
  using T = typename V::T;
  const int64_t m = a.rows, n = a.cols, k = std::min(m, n);
  CALDERA_CHECK(u.rows == m && u.cols == k && vt.rows == k && vt.cols == n, "svd: a ", m, "x", n, " needs u ", m, "x",
                k, " and vt ", k, "x", n, ", got u ", u.rows, "x", u.cols, ", vt ", vt.rows, "x", vt.cols);
  T* ps = cpu::vector_data(s, k, "svd");
  if (k == 0) return;
  std::vector<T> work(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) std::copy(a.row(i), a.row(i) + n, work.data() + i * n);
  const int info = V::gesdd(static_cast<int>(n), static_cast<int>(m), work.data(), static_cast<int>(std::max<int64_t>(n, 1)),
                            ps, vt.data, lda_of(vt.ld, vt.cols), u.data, lda_of(u.ld, u.cols));
  if (info > 0) raise<NumericError>("svd: LAPACK gesdd did not converge (info ", info, ") on a ", m, "x", n, " matrix");
  if (info < 0) raise<BlasError>("svd: LAPACK gesdd argument ", -info, " invalid");
}

// Row-major a (m×k) is column-major aᵀ (k×m). Its LQ factorisation aᵀ = L Q' gives a = Q'ᵀ Lᵀ with
// Q'ᵀ (m×k) orthonormal columns; orglq leaves Q' (k×m column-major) = Q'ᵀ row-major in the buffer.
template <class V>
void qr_orthonormalize_t(MatrixView<typename V::T> a) {
  using T = typename V::T;
  const int64_t m = a.rows, k = a.cols;
  CALDERA_CHECK(m >= k, "qr_orthonormalize: needs rows >= cols, got ", m, "x", k);
  if (k == 0) return;
  std::vector<T> tau(static_cast<size_t>(k));
  const int lda = lda_of(a.ld, a.cols);
  int info = V::gelqf(static_cast<int>(k), static_cast<int>(m), a.data, lda, tau.data());
  if (info != 0) raise<BlasError>("qr_orthonormalize: LAPACK gelqf info ", info);
  info = V::orglq(static_cast<int>(k), static_cast<int>(m), static_cast<int>(k), a.data, lda, tau.data());
  if (info != 0) raise<BlasError>("qr_orthonormalize: LAPACK orglq info ", info);
}

}  // namespace

void CpuBackend::gemm(Op op_a, Op op_b, float alpha, MatrixView<const float> a, MatrixView<const float> b, float beta,
                      MatrixView<float> c) {
  gemm_t<F32>(op_a, op_b, alpha, a, b, beta, c);
}
void CpuBackend::gemm(Op op_a, Op op_b, double alpha, MatrixView<const double> a, MatrixView<const double> b,
                      double beta, MatrixView<double> c) {
  gemm_t<F64>(op_a, op_b, alpha, a, b, beta, c);
}

// h += xᵀx. fp64: rows of x are widened to double in chunks and passed to dsyrk, so every product
// of two fp32 inputs is exact and only the summation rounds (in fp64).
void CpuBackend::gram_accumulate(MatrixView<const float> x, MatrixView<double> h) {
  check_square(h, "gram_accumulate");
  CALDERA_CHECK(h.rows == x.cols, "gram_accumulate: x has ", x.cols, " columns, h is ", h.rows, "x", h.cols);
  if (x.empty()) return;
  const int64_t n = x.cols;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(x.rows, (int64_t{1} << 24) / std::max<int64_t>(n, 1)));
  std::vector<double> wide(static_cast<size_t>(chunk * n));
  for (int64_t r0 = 0; r0 < x.rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, x.rows - r0);
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t j = 0; j < n; ++j) wide[static_cast<size_t>(i * n + j)] = x(r0 + i, j);
    F64::syrk(static_cast<int>(n), static_cast<int>(nr), 1.0, wide.data(), static_cast<int>(n), 1.0, h.data,
              lda_of(h.ld, h.cols));
  }
  mirror_lower(h);
}

void CpuBackend::gram_accumulate(MatrixView<const float> x, MatrixView<float> h) {
  check_square(h, "gram_accumulate");
  CALDERA_CHECK(h.rows == x.cols, "gram_accumulate: x has ", x.cols, " columns, h is ", h.rows, "x", h.cols);
  if (x.empty()) return;
  F32::syrk(static_cast<int>(x.cols), static_cast<int>(x.rows), 1.0f, x.data, lda_of(x.ld, x.cols), 1.0f, h.data,
            lda_of(h.ld, h.cols));
  mirror_lower(h);
}

void CpuBackend::cholesky(MatrixView<float> a) { cholesky_t<F32>(a); }
void CpuBackend::cholesky(MatrixView<double> a) { cholesky_t<F64>(a); }
void CpuBackend::triangular_solve(Side side, Uplo uplo, Op op, Diag diag, float alpha, MatrixView<const float> a,
                                  MatrixView<float> b) {
  triangular_solve_t<F32>(side, uplo, op, diag, alpha, a, b);
}
void CpuBackend::triangular_solve(Side side, Uplo uplo, Op op, Diag diag, double alpha, MatrixView<const double> a,
                                  MatrixView<double> b) {
  triangular_solve_t<F64>(side, uplo, op, diag, alpha, a, b);
}
void CpuBackend::cholesky_inverse(MatrixView<float> a) { cholesky_inverse_t<F32>(a); }
void CpuBackend::cholesky_inverse(MatrixView<double> a) { cholesky_inverse_t<F64>(a); }
void CpuBackend::eigh(MatrixView<float> a, MatrixView<float> w) { eigh_t<F32>(a, w); }
void CpuBackend::eigh(MatrixView<double> a, MatrixView<double> w) { eigh_t<F64>(a, w); }
void CpuBackend::svd(MatrixView<const float> a, MatrixView<float> u, MatrixView<float> s, MatrixView<float> vt) {
  svd_t<F32>(a, u, s, vt);
}
void CpuBackend::svd(MatrixView<const double> a, MatrixView<double> u, MatrixView<double> s, MatrixView<double> vt) {
  svd_t<F64>(a, u, s, vt);
}
void CpuBackend::qr_orthonormalize(MatrixView<float> a) { qr_orthonormalize_t<F32>(a); }
void CpuBackend::qr_orthonormalize(MatrixView<double> a) { qr_orthonormalize_t<F64>(a); }

}  // namespace caldera::linalg
