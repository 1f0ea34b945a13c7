// Error translation for the CUDA backend (see cuda_check.h).
#include "linalg/cuda/cuda_check.h"

#include <string>

#include "core/error.h"
#include "core/log.h"

namespace caldera::linalg::cuda_detail {
namespace {

/// "src/linalg/cuda/cuda_solver.cpp" rather than the absolute build path.
std::string short_file(const char* file) {
  std::string f = file;
  if (const auto pos = f.rfind("/src/"); pos != std::string::npos) return f.substr(pos + 1);
  if (const auto pos = f.rfind("/kernels/"); pos != std::string::npos) return f.substr(pos + 1);
  return f;
}

std::string cuda_message(cudaError_t err, const char* expr, const char* file, int line) {
  return detail::concat(short_file(file), ":", line, ": `", expr, "` failed: ", cudaGetErrorName(err), " (",
                        cudaGetErrorString(err), ")");
}

[[noreturn]] void sticky(cudaError_t err, const char* expr, const char* file, int line) {
  fatal(cuda_message(err, expr, file, line) +
        "; this error leaves the CUDA context unusable, so the process must exit (the run resumes from its last "
        "checkpoint)");
}

}  // namespace

bool is_sticky_error(cudaError_t err) noexcept {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorTensorMemoryLeak:
    case cudaErrorECCUncorrectable:
    case cudaErrorMpsClientTerminated:
      return true;
    default:
      return false;
  }
}

const char* cusolver_status_name(cusolverStatus_t status) noexcept {
  switch (status) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_ZERO_PIVOT: return "CUSOLVER_STATUS_ZERO_PIVOT";
    case CUSOLVER_STATUS_INVALID_LICENSE: return "CUSOLVER_STATUS_INVALID_LICENSE";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "CUSOLVER_STATUS_(other)";
  }
}

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  if (is_sticky_error(err)) sticky(err, expr, file, line);
  (void)cudaGetLastError();  // clear a non-sticky error so that the next call starts clean
  throw CudaError(cuda_message(err, expr, file, line));
}

void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line) {
  // A kernel fault inside cuBLAS surfaces as CUBLAS_STATUS_EXECUTION_FAILED; check for a sticky error.
  if (const cudaError_t err = cudaPeekAtLastError(); is_sticky_error(err)) sticky(err, expr, file, line);
  throw BlasError(detail::concat(short_file(file), ":", line, ": `", expr, "` failed: ", cublasGetStatusName(status),
                                 " (", cublasGetStatusString(status), ")"));
}

void throw_cusolver_error(cusolverStatus_t status, const char* expr, const char* file, int line) {
  if (const cudaError_t err = cudaPeekAtLastError(); is_sticky_error(err)) sticky(err, expr, file, line);
  throw BlasError(detail::concat(short_file(file), ":", line, ": `", expr, "` failed: ", cusolver_status_name(status),
                                 " (status ", static_cast<int>(status), ")"));
}

void report_cuda_failure(cudaError_t err, const char* expr, const char* what, const char* file, int line) noexcept {
  if (is_sticky_error(err)) sticky(err, expr, file, line);
  (void)cudaGetLastError();
  try {
    log_error("cuda backend: ", what, ": ", cuda_message(err, expr, file, line));
  } catch (...) {
    // logging itself failed (out of host memory); nothing more can be done without throwing
  }
}

}  // namespace caldera::linalg::cuda_detail
