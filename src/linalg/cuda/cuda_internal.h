// Helpers shared by the CUDA backend's translation units (cuda_backend.cu, cuda_blas.cpp,
// cuda_solver.cpp) and its facets. Internal to src/linalg/cuda.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <type_traits>

#include "core/error.h"
#include "core/matrix.h"
#include "kernels/elementwise.h"
#include "linalg/cuda/cuda_backend.h"
#include "linalg/cuda/cuda_check.h"

namespace caldera::linalg::cuda_detail {

/// CUDA data type tag of float / double, for cuSOLVER's 64-bit API.
template <class T>
inline constexpr cudaDataType_t kCudaType = std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_64F;

/// Checks the kernel accepts `args`, allocates its workspace from the backend's pool and enqueues
/// it on the backend's stream. Throws Error (rejected arguments, naming `op`) or CudaError.
template <class Args>
void run_elementwise(CudaBackend& backend, const Args& args, const char* op) {
  CALDERA_CHECK(kernels::elementwise_can_implement(args), op,
                ": the elementwise kernel rejects these arguments (inconsistent shape, ld or null pointer)");
  backend.make_current();
  DeviceBuffer<std::byte> workspace(backend, kernels::elementwise_workspace_bytes(args), op);
  CALDERA_CUDA_CHECK(kernels::elementwise_launch(args, workspace.data(), backend.stream()));
}

/// `value` as an int for a 32-bit vendor API; throws Error naming `what` and `op` if it does not fit.
inline int to_int(int64_t value, const char* what, const char* op) {
  CALDERA_CHECK(value >= 0 && value <= INT_MAX, op, ": ", what, " = ", value,
                " exceeds the 32-bit range of cuBLAS/cuSOLVER");
  return static_cast<int>(value);
}

/// Leading dimension of a row-major view as cuBLAS sees it (max(ld, cols, 1)).
template <class T>
int blas_ld(const MatrixView<T>& v, const char* op) {
  return to_int(std::max<int64_t>({v.ld, v.cols, 1}), "leading dimension", op);
}

/// Pointer to a contiguous vector view (1×n, or n×1 with ld 1) of exactly n entries.
template <class T>
T* device_vector(MatrixView<T> v, int64_t n, const char* op) {
  CALDERA_CHECK(v.size() == n, op, ": vector of ", n, " entries expected, got ", v.rows, "x", v.cols);
  CALDERA_CHECK(v.rows == 1 || (v.cols == 1 && v.ld == 1), op, ": vector view must be contiguous (", v.rows, "x",
                v.cols, ", ld ", v.ld, ")");
  return v.data;
}

template <class T>
void check_square(const MatrixView<T>& a, const char* op) {
  CALDERA_CHECK(a.rows == a.cols, op, ": square matrix expected, got ", a.rows, "x", a.cols);
}

/// Copies one int (a cuSOLVER devInfo) to the host; synchronizes the backend's stream.
inline int read_info(CudaBackend& backend, const int* device_info) {
  int host = 0;
  backend.copy_2d(CopyKind::kBackendToHost, device_info, sizeof(int), &host, sizeof(int), sizeof(int), 1);
  return host;
}

}  // namespace caldera::linalg::cuda_detail
