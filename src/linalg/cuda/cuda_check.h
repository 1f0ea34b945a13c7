// Error choke points of the CUDA backend (style C2): every CUDA runtime, cuBLAS and cuSOLVER call
// in src/linalg/cuda goes through one of the macros below.
//
//   CALDERA_CUDA_CHECK(expr)      cudaError_t       -> CudaError; sticky errors -> caldera::fatal
//   CALDERA_CUBLAS_CHECK(expr)    cublasStatus_t    -> BlasError
//   CALDERA_CUSOLVER_CHECK(expr)  cusolverStatus_t  -> BlasError
//
// Messages carry the call text, file:line and the vendor's error name and description. Sticky
// errors (illegal address, launch failure, misaligned address, device-side assert, ...) corrupt the
// CUDA context, so nothing after them can succeed: they go to caldera::fatal, which the CLI turns
// into MPI_Abort. A non-sticky error is cleared (cudaGetLastError) before the exception is thrown so
// that the next call does not report it again.
//
// Numerical results reported through cuSOLVER's devInfo (not positive definite, no convergence) are
// not vendor failures: the solver code turns them into NumericError itself (cuda_solver.cpp).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

namespace caldera::linalg::cuda_detail {

/// True for the errors after which the CUDA context is unusable and the process must exit.
[[nodiscard]] bool is_sticky_error(cudaError_t err) noexcept;
/// cuSOLVER has no status-to-string function; this is ours ("CUSOLVER_STATUS_INVALID_VALUE", ...).
[[nodiscard]] const char* cusolver_status_name(cusolverStatus_t status) noexcept;

/// Throws CudaError for `err` (clearing it first), or calls caldera::fatal for a sticky error.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
/// Throws BlasError naming the cuBLAS status.
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line);
/// Throws BlasError naming the cuSOLVER status.
[[noreturn]] void throw_cusolver_error(cusolverStatus_t status, const char* expr, const char* file, int line);
/// For paths that must not throw (destructors, deleters, free): logs the failure with `what`, and
/// calls caldera::fatal for a sticky error. Returns normally otherwise.
void report_cuda_failure(cudaError_t err, const char* expr, const char* what, const char* file, int line) noexcept;

}  // namespace caldera::linalg::cuda_detail

#define CALDERA_CUDA_CHECK(expr)                                                                   \
  do {                                                                                             \
    const cudaError_t caldera_cuda_status_ = (expr);                                               \
    if (caldera_cuda_status_ != cudaSuccess)                                                       \
      ::caldera::linalg::cuda_detail::throw_cuda_error(caldera_cuda_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#define CALDERA_CUBLAS_CHECK(expr)                                                                 \
  do {                                                                                             \
    const cublasStatus_t caldera_cublas_status_ = (expr);                                          \
    if (caldera_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                           \
      ::caldera::linalg::cuda_detail::throw_cublas_error(caldera_cublas_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#define CALDERA_CUSOLVER_CHECK(expr)                                                               \
  do {                                                                                             \
    const cusolverStatus_t caldera_cusolver_status_ = (expr);                                      \
    if (caldera_cusolver_status_ != CUSOLVER_STATUS_SUCCESS)                                       \
      ::caldera::linalg::cuda_detail::throw_cusolver_error(caldera_cusolver_status_, #expr, __FILE__, __LINE__); \
  } while (0)

/// Noexcept variant for destructors and deleters: logs (and fatal()s on sticky errors), never throws.
#define CALDERA_CUDA_REPORT(expr, what)                                                            \
  do {                                                                                             \
    const cudaError_t caldera_cuda_status_ = (expr);                                               \
    if (caldera_cuda_status_ != cudaSuccess)                                                       \
      ::caldera::linalg::cuda_detail::report_cuda_failure(caldera_cuda_status_, #expr, what, __FILE__, __LINE__); \
  } while (0)
