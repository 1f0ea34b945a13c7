// CudaBackend: cuSOLVER operations (cholesky, cholesky_inverse, eigh, svd, qr_orthonormalize).
// Row-major readings of the column-major routines are explained in cuda_backend.h. Every routine
// reads cuSOLVER's devInfo, so it synchronizes; workspaces come from the backend's pool.
// 64-bit API (cusolverDnX*) where cuSOLVER has one (potrf, syevd, gesvd, geqrf); the 32-bit legacy
// API for potri and orgqr, which have none (sizes are checked against INT_MAX).
#include <cusolverDn.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "linalg/cuda/cuda_backend.h"
#include "linalg/cuda/cuda_check.h"
#include "linalg/cuda/cuda_internal.h"

namespace caldera::linalg {
namespace {

using cuda_detail::blas_ld;
using cuda_detail::check_square;
using cuda_detail::device_vector;
using cuda_detail::kCudaType;
using cuda_detail::read_info;
using cuda_detail::run_elementwise;
using cuda_detail::to_int;

// Type-dispatched legacy entry points.
template <class T>
struct Legacy;
template <>
struct Legacy<float> {
  static cusolverStatus_t potri_buffer_size(cusolverDnHandle_t h, int n, float* a, int lda, int* lwork) {
    return cusolverDnSpotri_bufferSize(h, CUBLAS_FILL_MODE_UPPER, n, a, lda, lwork);
  }
  static cusolverStatus_t potri(cusolverDnHandle_t h, int n, float* a, int lda, float* work, int lwork, int* info) {
    return cusolverDnSpotri(h, CUBLAS_FILL_MODE_UPPER, n, a, lda, work, lwork, info);
  }
  static cusolverStatus_t orgqr_buffer_size(cusolverDnHandle_t h, int m, int n, const float* a, int lda,
                                            const float* tau, int* lwork) {
    return cusolverDnSorgqr_bufferSize(h, m, n, n, a, lda, tau, lwork);
  }
  static cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int n, float* a, int lda, const float* tau, float* work,
                                int lwork, int* info) {
    return cusolverDnSorgqr(h, m, n, n, a, lda, tau, work, lwork, info);
  }
};
template <>
struct Legacy<double> {
  static cusolverStatus_t potri_buffer_size(cusolverDnHandle_t h, int n, double* a, int lda, int* lwork) {
    return cusolverDnDpotri_bufferSize(h, CUBLAS_FILL_MODE_UPPER, n, a, lda, lwork);
  }
  static cusolverStatus_t potri(cusolverDnHandle_t h, int n, double* a, int lda, double* work, int lwork, int* info) {
    return cusolverDnDpotri(h, CUBLAS_FILL_MODE_UPPER, n, a, lda, work, lwork, info);
  }
  static cusolverStatus_t orgqr_buffer_size(cusolverDnHandle_t h, int m, int n, const double* a, int lda,
                                            const double* tau, int* lwork) {
    return cusolverDnDorgqr_bufferSize(h, m, n, n, a, lda, tau, lwork);
  }
  static cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int n, double* a, int lda, const double* tau,
                                double* work, int lwork, int* info) {
    return cusolverDnDorgqr(h, m, n, n, a, lda, tau, work, lwork, info);
  }
};

/// Device and host workspaces of one cuSOLVER 64-bit call. The host part is only released after the
/// caller has synchronized (read_info), so routines that use it asynchronously stay safe.
struct SolverWorkspace {
  SolverWorkspace(CudaBackend& be, size_t device_bytes, size_t host_bytes, const char* label)
      : device(be, device_bytes, label), host(host_bytes) {}
  DeviceBuffer<std::byte> device;
  std::vector<std::byte> host;
};

template <class T>
void zero_strict_upper(CudaBackend& be, MatrixView<T> a, const char* op) {
  run_elementwise(be, kernels::TriangleArgs<T>{.op = kernels::TriangleOp::kZeroStrictUpper, .a = a}, op);
}

// Row-major lower L (a = L Lᵀ) is column-major upper U = Lᵀ with a = Uᵀ U: potrf('U') on the buffer.
template <class T>
void cholesky_t(CudaBackend& be, MatrixView<T> a) {
  check_square(a, "cholesky");
  const int64_t n = a.rows;
  if (n == 0) return;
  const int64_t lda = blas_ld(a, "cholesky");
  be.make_current();
  size_t device_bytes = 0, host_bytes = 0;
  CALDERA_CUSOLVER_CHECK(cusolverDnXpotrf_bufferSize(be.cusolver(), be.cusolver_params(), CUBLAS_FILL_MODE_UPPER, n,
                                                     kCudaType<T>, a.data, lda, kCudaType<T>, &device_bytes,
                                                     &host_bytes));
  SolverWorkspace ws(be, device_bytes, host_bytes, "cholesky workspace");
  DeviceBuffer<int> info(be, 1, "cholesky info");
  CALDERA_CUSOLVER_CHECK(cusolverDnXpotrf(be.cusolver(), be.cusolver_params(), CUBLAS_FILL_MODE_UPPER, n,
                                         kCudaType<T>, a.data, lda, kCudaType<T>, ws.device.data(), device_bytes,
                                         ws.host.data(), host_bytes, info.data()));
  const int status = read_info(be, info.data());
  if (status > 0)
    raise<NumericError>("cholesky: matrix of order ", n, " is not positive definite (leading minor ", status,
                        " fails, pivot index ", status - 1, ")");
  if (status < 0) raise<BlasError>("cholesky: cuSOLVER potrf argument ", -status, " invalid");
  zero_strict_upper(be, a, "cholesky");
}

// potri('U') on the column-major view inverts Uᵀ U = L Lᵀ and writes the column-major upper
// triangle = the row-major lower triangle; then mirror.
template <class T>
void cholesky_inverse_t(CudaBackend& be, MatrixView<T> a) {
  check_square(a, "cholesky_inverse");
  const int64_t n = a.rows;
  if (n == 0) return;
  const int n32 = to_int(n, "n", "cholesky_inverse");
  const int lda = blas_ld(a, "cholesky_inverse");
  be.make_current();
  int lwork = 0;
  CALDERA_CUSOLVER_CHECK(Legacy<T>::potri_buffer_size(be.cusolver(), n32, a.data, lda, &lwork));
  DeviceBuffer<T> work(be, static_cast<size_t>(lwork), "cholesky_inverse workspace");
  DeviceBuffer<int> info(be, 1, "cholesky_inverse info");
  CALDERA_CUSOLVER_CHECK(Legacy<T>::potri(be.cusolver(), n32, a.data, lda, work.data(), lwork, info.data()));
  const int status = read_info(be, info.data());
  if (status > 0) raise<NumericError>("cholesky_inverse: factor has a zero diagonal entry at ", status - 1);
  if (status < 0) raise<BlasError>("cholesky_inverse: cuSOLVER potri argument ", -status, " invalid");
  run_elementwise(be, kernels::TriangleArgs<T>{.op = kernels::TriangleOp::kMirrorLowerToUpper, .a = a},
                  "cholesky_inverse");
}

// Symmetric input: the column-major view is the same matrix. Eigenvectors come back in the columns
// of the column-major buffer, i.e. in the rows of the row-major one, as the contract says.
template <class T>
void eigh_t(CudaBackend& be, MatrixView<T> a, MatrixView<T> w) {
  check_square(a, "eigh");
  const int64_t n = a.rows;
  T* pw = device_vector(w, n, "eigh");
  if (n == 0) return;
  const int64_t lda = blas_ld(a, "eigh");
  be.make_current();
  size_t device_bytes = 0, host_bytes = 0;
  CALDERA_CUSOLVER_CHECK(cusolverDnXsyevd_bufferSize(be.cusolver(), be.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR,
                                                     CUBLAS_FILL_MODE_UPPER, n, kCudaType<T>, a.data, lda,
                                                     kCudaType<T>, pw, kCudaType<T>, &device_bytes, &host_bytes));
  SolverWorkspace ws(be, device_bytes, host_bytes, "eigh workspace");
  DeviceBuffer<int> info(be, 1, "eigh info");
  CALDERA_CUSOLVER_CHECK(cusolverDnXsyevd(be.cusolver(), be.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR,
                                         CUBLAS_FILL_MODE_UPPER, n, kCudaType<T>, a.data, lda, kCudaType<T>, pw,
                                         kCudaType<T>, ws.device.data(), device_bytes, ws.host.data(), host_bytes,
                                         info.data()));
  const int status = read_info(be, info.data());
  if (status > 0)
    raise<NumericError>("eigh: eigensolver failed to converge on a ", n, "x", n, " matrix (", status,
                        " off-diagonal elements did not converge)");
  if (status < 0) raise<BlasError>("eigh: cuSOLVER syevd argument ", -status, " invalid");
}

/// gesvd('S', 'S') of the column-major rows×cols matrix `a` (rows >= cols, destroyed): s (cols
/// entries, descending), u column-major rows×cols (ld ldu), vt column-major cols×cols (ld ldvt).
/// Returns devInfo (synchronizes).
template <class T>
int gesvd(CudaBackend& be, int64_t rows, int64_t cols, T* a, int64_t lda, T* s, T* u, int64_t ldu, T* vt,
          int64_t ldvt) {
  size_t device_bytes = 0, host_bytes = 0;
  CALDERA_CUSOLVER_CHECK(cusolverDnXgesvd_bufferSize(be.cusolver(), be.cusolver_params(), 'S', 'S', rows, cols,
                                                     kCudaType<T>, a, lda, kCudaType<T>, s, kCudaType<T>, u, ldu,
                                                     kCudaType<T>, vt, ldvt, kCudaType<T>, &device_bytes,
                                                     &host_bytes));
  SolverWorkspace ws(be, device_bytes, host_bytes, "svd workspace");
  DeviceBuffer<int> info(be, 1, "svd info");
  CALDERA_CUSOLVER_CHECK(cusolverDnXgesvd(be.cusolver(), be.cusolver_params(), 'S', 'S', rows, cols, kCudaType<T>, a,
                                         lda, kCudaType<T>, s, kCudaType<T>, u, ldu, kCudaType<T>, vt, ldvt,
                                         kCudaType<T>, ws.device.data(), device_bytes, ws.host.data(), host_bytes,
                                         info.data()));
  return read_info(be, info.data());
}

// gesvd needs rows >= cols in column-major. m <= n: the column-major view of a is aᵀ (n×m) =
// U' S V'ᵀ, so a = V' S U'ᵀ: U' (n×k column-major) is vt (k×n row-major) and V'ᵀ (k×m
// column-major) is u (m×k row-major). m > n: transpose to column-major a (m×n) = U S Vᵀ and
// transpose U (column-major m×k = row-major k×m) and Vᵀ (column-major k×n = row-major n×k) back.
template <class T>
void svd_t(CudaBackend& be, MatrixView<const T> a, MatrixView<T> u, MatrixView<T> s, MatrixView<T> vt) {
  const int64_t m = a.rows, n = a.cols, k = std::min(m, n);
  CALDERA_CHECK(u.rows == m && u.cols == k && vt.rows == k && vt.cols == n, "svd: a ", m, "x", n, " needs u ", m, "x",
                k, " and vt ", k, "x", n, ", got u ", u.rows, "x", u.cols, ", vt ", vt.rows, "x", vt.cols);
  T* ps = device_vector(s, k, "svd");
  if (k == 0) return;
  be.make_current();
  DeviceBuffer<T> work(be, static_cast<size_t>(m * n), "svd input copy");
  int status = 0;
  if (m <= n) {
    const MatrixView<T> copy = work.view(m, n);  // row-major m×n = column-major n×m, ld n
    be.copy(a, copy);
    status = gesvd(be, n, m, copy.data, n, ps, vt.data, blas_ld(vt, "svd"), u.data, blas_ld(u, "svd"));
  } else {
    const MatrixView<T> at = work.view(n, m);  // row-major n×m = column-major a (m×n), ld m
    be.transpose(a, at);
    DeviceBuffer<T> u_cm(be, static_cast<size_t>(m * k), "svd u (column-major)");
    DeviceBuffer<T> vt_cm(be, static_cast<size_t>(k * n), "svd vt (column-major)");
    status = gesvd(be, m, n, at.data, m, ps, u_cm.data(), m, vt_cm.data(), k);
    if (status == 0) {
      be.transpose(MatrixView<const T>(u_cm.view(k, m)), u);
      be.transpose(MatrixView<const T>(vt_cm.view(n, k)), vt);
    }
  }
  if (status > 0)
    raise<NumericError>("svd: cuSOLVER gesvd did not converge (", status, " superdiagonals) on a ", m, "x", n,
                        " matrix");
  if (status < 0) raise<BlasError>("svd: cuSOLVER gesvd argument ", -status, " invalid");
}

// cuSOLVER has no gelqf: transpose a (m×k row-major) into a column-major m×k copy, geqrf + orgqr on
// it, and transpose Q back.
template <class T>
void qr_orthonormalize_t(CudaBackend& be, MatrixView<T> a) {
  const int64_t m = a.rows, k = a.cols;
  CALDERA_CHECK(m >= k, "qr_orthonormalize: needs rows >= cols, got ", m, "x", k);
  if (k == 0) return;
  const int m32 = to_int(m, "rows", "qr_orthonormalize");
  const int k32 = to_int(k, "cols", "qr_orthonormalize");
  be.make_current();
  DeviceBuffer<T> q(be, static_cast<size_t>(m * k), "qr column-major copy");
  const MatrixView<T> qt = q.view(k, m);  // row-major k×m = column-major m×k, ld m
  be.transpose(MatrixView<const T>(a), qt);
  DeviceBuffer<T> tau(be, static_cast<size_t>(k), "qr tau");
  DeviceBuffer<int> info(be, 2, "qr info");

  size_t device_bytes = 0, host_bytes = 0;
  CALDERA_CUSOLVER_CHECK(cusolverDnXgeqrf_bufferSize(be.cusolver(), be.cusolver_params(), m, k, kCudaType<T>, qt.data,
                                                     m, kCudaType<T>, tau.data(), kCudaType<T>, &device_bytes,
                                                     &host_bytes));
  SolverWorkspace ws(be, device_bytes, host_bytes, "qr workspace");
  CALDERA_CUSOLVER_CHECK(cusolverDnXgeqrf(be.cusolver(), be.cusolver_params(), m, k, kCudaType<T>, qt.data, m,
                                         kCudaType<T>, tau.data(), kCudaType<T>, ws.device.data(), device_bytes,
                                         ws.host.data(), host_bytes, info.data()));
  int lwork = 0;
  CALDERA_CUSOLVER_CHECK(Legacy<T>::orgqr_buffer_size(be.cusolver(), m32, k32, qt.data, m32, tau.data(), &lwork));
  DeviceBuffer<T> work(be, static_cast<size_t>(lwork), "qr orgqr workspace");
  CALDERA_CUSOLVER_CHECK(
      Legacy<T>::orgqr(be.cusolver(), m32, k32, qt.data, m32, tau.data(), work.data(), lwork, info.data() + 1));
  int status[2] = {0, 0};
  be.copy_2d(CopyKind::kBackendToHost, info.data(), sizeof status, status, sizeof status, sizeof status, 1);
  if (status[0] != 0) raise<BlasError>("qr_orthonormalize: cuSOLVER geqrf info ", status[0]);
  if (status[1] != 0) raise<BlasError>("qr_orthonormalize: cuSOLVER orgqr info ", status[1]);
  be.transpose(MatrixView<const T>(qt), a);
}

}  // namespace

void CudaBackend::cholesky(MatrixView<float> a) { cholesky_t(*this, a); }
void CudaBackend::cholesky(MatrixView<double> a) { cholesky_t(*this, a); }
void CudaBackend::cholesky_inverse(MatrixView<float> a) { cholesky_inverse_t(*this, a); }
void CudaBackend::cholesky_inverse(MatrixView<double> a) { cholesky_inverse_t(*this, a); }
void CudaBackend::eigh(MatrixView<float> a, MatrixView<float> w) { eigh_t(*this, a, w); }
void CudaBackend::eigh(MatrixView<double> a, MatrixView<double> w) { eigh_t(*this, a, w); }
void CudaBackend::svd(MatrixView<const float> a, MatrixView<float> u, MatrixView<float> s, MatrixView<float> vt) {
  svd_t(*this, a, u, s, vt);
}
void CudaBackend::svd(MatrixView<const double> a, MatrixView<double> u, MatrixView<double> s,
                      MatrixView<double> vt) {
  svd_t(*this, a, u, s, vt);
}
void CudaBackend::qr_orthonormalize(MatrixView<float> a) { qr_orthonormalize_t(*this, a); }
void CudaBackend::qr_orthonormalize(MatrixView<double> a) { qr_orthonormalize_t(*this, a); }

}  // namespace caldera::linalg
