// Kernel family "lattice" (kernels/include/kernels/lattice.h): the uniform min-max scalar grid.
//
// Fit: one thread per (row, group) scanning its columns for min and max, then
// scalar::grid_from_range. Quantize / dequantize: a 2-D grid-stride map with scalar::quantize /
// scalar::dequantize (shared with the CPU facet, explicitly rounded, so results match bit for bit).
// Constraints: bits 1..8, group_size > 0; any ld.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "kernels/lattice.h"

namespace caldera::kernels {
namespace {

constexpr int64_t kMaxBlocks = 4096;

__global__ void __launch_bounds__(kBlockThreads) fit_kernel(ScalarFitArgs a) {
  const int64_t ng = a.scale.cols;
  const int64_t total = a.x.rows * ng;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / ng, g = t - i * ng;
    const int64_t c0 = g * a.group_size, c1 = c0 + a.group_size < a.x.cols ? c0 + a.group_size : a.x.cols;
    const float* row = a.x.data + i * a.x.ld;
    float lo = row[c0], hi = row[c0];
    for (int64_t c = c0 + 1; c < c1; ++c) {
      const float v = row[c];  // std::min / std::max semantics, as the CPU facet
      lo = v < lo ? v : lo;
      hi = hi < v ? v : hi;
    }
    scalar::grid_from_range(lo, hi, a.bits, a.symmetry, a.range, a.zero_point, &a.scale.data[i * a.scale.ld + g],
                            &a.zero.data[i * a.zero.ld + g]);
  }
}

template <ScalarDirection kDir>
__global__ void __launch_bounds__(kBlockThreads) grid_kernel(ScalarGridArgs a) {
  const int64_t rows = kDir == ScalarDirection::kQuantize ? a.x.rows : a.codes_in.rows;
  const int64_t cols = kDir == ScalarDirection::kQuantize ? a.x.cols : a.codes_in.cols;
  const int64_t row_step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  const int64_t col_step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < rows; i += row_step)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < cols; j += col_step) {
      const int64_t g = (a.col_offset + j) / a.group_size;
      const float s = a.scale.data[i * a.scale.ld + g], z = a.zero.data[i * a.zero.ld + g];
      uint32_t q;
      if constexpr (kDir == ScalarDirection::kQuantize) {
        q = scalar::quantize(a.x.data[i * a.x.ld + j], s, z, a.bits);
        if (a.codes_out.data != nullptr) a.codes_out.data[i * a.codes_out.ld + j] = static_cast<uint8_t>(q);
      } else {
        q = a.codes_in.data[i * a.codes_in.ld + j];
      }
      if (a.xhat.data != nullptr) a.xhat.data[i * a.xhat.ld + j] = scalar::dequantize(q, s, z);
    }
}

}  // namespace

bool lattice_can_implement(const ScalarFitArgs& a) noexcept {
  if (a.bits < 1 || a.bits > 8 || a.group_size <= 0 || !valid_view(a.x)) return false;
  const int64_t ng = ceil_div(a.x.cols, a.group_size);
  return valid_view(a.scale) && valid_view(a.zero) && a.scale.rows == a.x.rows && a.scale.cols == ng &&
         same_shape(a.scale, a.zero);
}
std::size_t lattice_workspace_bytes(const ScalarFitArgs&) noexcept { return 0; }
cudaError_t lattice_launch(const ScalarFitArgs& a, void*, cudaStream_t stream) noexcept {
  if (!lattice_can_implement(a)) return cudaErrorInvalidValue;
  const int64_t work = a.scale.rows * a.scale.cols;
  if (work == 0 || a.x.cols == 0) return cudaSuccess;
  const auto grid = static_cast<unsigned>(std::clamp<int64_t>(ceil_div(work, kBlockThreads), 1, kMaxBlocks));
  fit_kernel<<<grid, kBlockThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

bool lattice_can_implement(const ScalarGridArgs& a) noexcept {
  if (a.bits < 1 || a.bits > 8 || a.group_size <= 0 || a.col_offset < 0) return false;
  const bool quantize = a.direction == ScalarDirection::kQuantize;
  const int64_t rows = quantize ? a.x.rows : a.codes_in.rows, cols = quantize ? a.x.cols : a.codes_in.cols;
  if (quantize) {
    if (!valid_view(a.x)) return false;
    if (a.codes_out.data != nullptr && (!valid_view(a.codes_out) || a.codes_out.rows != rows || a.codes_out.cols != cols))
      return false;
  } else if (!valid_view(a.codes_in) || a.xhat.data == nullptr) {
    return false;
  }
  if (a.xhat.data != nullptr && (!valid_view(a.xhat) || a.xhat.rows != rows || a.xhat.cols != cols)) return false;
  const int64_t groups = cols == 0 ? 0 : (a.col_offset + cols - 1) / a.group_size + 1;
  return valid_view(a.scale) && same_shape(a.scale, a.zero) && a.scale.rows == rows && a.scale.cols >= groups;
}
std::size_t lattice_workspace_bytes(const ScalarGridArgs&) noexcept { return 0; }
cudaError_t lattice_launch(const ScalarGridArgs& a, void*, cudaStream_t stream) noexcept {
  if (!lattice_can_implement(a)) return cudaErrorInvalidValue;
  const bool quantize = a.direction == ScalarDirection::kQuantize;
  const int64_t rows = quantize ? a.x.rows : a.codes_in.rows, cols = quantize ? a.x.cols : a.codes_in.cols;
  if (rows == 0 || cols == 0) return cudaSuccess;
  const Launch2d l = launch_2d(rows, cols, kMaxBlocks);
  switch (a.direction) {
    case ScalarDirection::kQuantize: grid_kernel<ScalarDirection::kQuantize><<<l.grid, l.block, 0, stream>>>(a); break;
    case ScalarDirection::kDequantize:
      grid_kernel<ScalarDirection::kDequantize><<<l.grid, l.block, 0, stream>>>(a);
      break;
  }
  return cudaGetLastError();
}

}  // namespace caldera::kernels
