// Kernel family "elementwise": exact fixed-point accumulation (FixedAccumulateArgs) and the split of
// fixed-point values into exactly representable fp64 chunks (FixedChunkArgs).
//
// acc(i,j) += to_fixed(g(i,j)) with the same host/device conversion as the CPU backend
// (core/fixed_point.h), so both backends produce identical bits. Any shape and ld; non-finite or
// out-of-range entries are skipped and counted with one atomicAdd each.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "kernels/elementwise.h"

namespace caldera::kernels {
namespace {

__global__ void __launch_bounds__(kBlockThreads)
    fixed_accumulate_kernel(MatrixView<const double> g, MatrixView<Fixed128> acc, unsigned long long* bad) {
  const int64_t row_step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  const int64_t col_step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < g.rows; i += row_step)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < g.cols; j += col_step) {
      const double v = g.data[i * g.ld + j];
      if (!(fabs(v) < kFixedMaxMagnitude)) {
        atomicAdd(bad, 1ULL);
        continue;
      }
      acc.data[i * acc.ld + j] += to_fixed(v);
    }
}

__global__ void __launch_bounds__(kBlockThreads)
    fixed_chunk_kernel(MatrixView<const Fixed128> acc, int chunk, MatrixView<double> out) {
  const int64_t row_step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  const int64_t col_step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < out.rows; i += row_step)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < out.cols; j += col_step) {
      double c[3];
      fixed_to_chunks(acc.data[i * acc.ld + j], c);
      out.data[i * out.ld + j] = c[chunk];
    }
}

}  // namespace

bool elementwise_can_implement(const FixedChunkArgs& a) noexcept {
  return valid_view(a.acc) && valid_view(a.out) && a.acc.rows == a.out.rows && a.acc.cols == a.out.cols &&
         a.chunk >= 0 && a.chunk < 3;
}

std::size_t elementwise_workspace_bytes(const FixedChunkArgs&) noexcept { return 0; }

cudaError_t elementwise_launch(const FixedChunkArgs& a, void*, cudaStream_t stream) noexcept {
  if (!elementwise_can_implement(a)) return cudaErrorInvalidValue;
  if (a.out.empty()) return cudaSuccess;
  const Launch2d l = launch_2d(a.out.rows, a.out.cols, 4096);
  fixed_chunk_kernel<<<l.grid, l.block, 0, stream>>>(a.acc, a.chunk, a.out);
  return cudaGetLastError();
}

bool elementwise_can_implement(const FixedAccumulateArgs& a) noexcept {
  return valid_view(a.g) && valid_view(a.acc) && a.g.rows == a.acc.rows && a.g.cols == a.acc.cols &&
         a.bad_count != nullptr;
}

std::size_t elementwise_workspace_bytes(const FixedAccumulateArgs&) noexcept { return 0; }

cudaError_t elementwise_launch(const FixedAccumulateArgs& a, void*, cudaStream_t stream) noexcept {
  if (!elementwise_can_implement(a)) return cudaErrorInvalidValue;
  if (a.g.empty()) return cudaSuccess;
  const Launch2d l = launch_2d(a.g.rows, a.g.cols, 4096);
  fixed_accumulate_kernel<<<l.grid, l.block, 0, stream>>>(a.g, a.acc, a.bad_count);
  return cudaGetLastError();
}

}  // namespace caldera::kernels
