// Kernel family "elementwise" (kernels/include/kernels/elementwise.h): transposes and triangles.
//
// Variants: TransposeArgs<float|double> (out-of-place, 32×32 shared-memory tiles so that reads and
// writes are both coalesced), TriangleArgs<float|double> with one dispatch switch on TriangleOp:
// kMirrorLowerToUpper (tiled: the block owning upper tile (ti, tj) reads lower tile (tj, ti)) and
// kZeroStrictUpper. Constraints: strided row-major views; TriangleArgs needs a square matrix;
// the transpose output must not alias its input. Blocks are 32×8 threads, each thread moves four
// elements of a tile; tiles are grid-strided so any size runs.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "kernels/elementwise.h"

namespace caldera::kernels {
namespace {

constexpr int kTile = 32;
constexpr int kTileRows = 8;  ///< threadIdx.y extent; each thread handles kTile / kTileRows rows
constexpr int64_t kMaxTileBlocks = 65535;

template <class T>
__global__ void __launch_bounds__(kTile* kTileRows) transpose_kernel(MatrixView<const T> a, MatrixView<T> at) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t tiles_r = ceil_div(a.rows, kTile);
  const int64_t tiles_c = ceil_div(a.cols, kTile);
  for (int64_t tr = blockIdx.y; tr < tiles_r; tr += gridDim.y) {
    for (int64_t tc = blockIdx.x; tc < tiles_c; tc += gridDim.x) {
      const int64_t r0 = tr * kTile;
      const int64_t c0 = tc * kTile;
      for (int k = static_cast<int>(threadIdx.y); k < kTile; k += kTileRows) {
        const int64_t i = r0 + k;
        const int64_t j = c0 + threadIdx.x;
        if (i < a.rows && j < a.cols) tile[k][threadIdx.x] = a(i, j);
      }
      __syncthreads();
      // at(c0 + k, r0 + x) = a(r0 + x, c0 + k) = tile[x][k]
      for (int k = static_cast<int>(threadIdx.y); k < kTile; k += kTileRows) {
        const int64_t i = c0 + k;
        const int64_t j = r0 + threadIdx.x;
        if (i < at.rows && j < at.cols) at(i, j) = tile[threadIdx.x][k];
      }
      __syncthreads();
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kTile* kTileRows) mirror_lower_kernel(MatrixView<T> a) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t n = a.rows;
  const int64_t tiles = ceil_div(n, kTile);
  for (int64_t ti = blockIdx.y; ti < tiles; ti += gridDim.y) {
    for (int64_t tj = blockIdx.x; tj < tiles; tj += gridDim.x) {
      if (tj < ti) continue;  // uniform over the block: only tiles touching the upper triangle
      // source tile: rows tj*32.., cols ti*32.. (lower triangle, or the diagonal tile itself)
      for (int k = static_cast<int>(threadIdx.y); k < kTile; k += kTileRows) {
        const int64_t i = tj * kTile + k;
        const int64_t j = ti * kTile + threadIdx.x;
        if (i < n && j < n) tile[k][threadIdx.x] = a(i, j);
      }
      __syncthreads();
      // a(i, j) = a(j, i) = tile[j - tj*32][i - ti*32] for j > i
      for (int k = static_cast<int>(threadIdx.y); k < kTile; k += kTileRows) {
        const int64_t i = ti * kTile + k;
        const int64_t j = tj * kTile + threadIdx.x;
        if (i < n && j < n && j > i) a(i, j) = tile[threadIdx.x][k];
      }
      __syncthreads();
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kBlockThreads) zero_strict_upper_kernel(MatrixView<T> a) {
  const int64_t row_step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  const int64_t col_step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < a.rows; i += row_step)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < a.cols; j += col_step)
      if (j > i) a(i, j) = T(0);
}

dim3 tile_grid(int64_t tiles_r, int64_t tiles_c) {
  return dim3(static_cast<unsigned>(std::clamp<int64_t>(tiles_c, 1, kMaxTileBlocks)),
              static_cast<unsigned>(std::clamp<int64_t>(tiles_r, 1, kMaxTileBlocks)), 1);
}

template <class T>
bool transpose_valid(const TransposeArgs<T>& a) noexcept {
  return valid_view(a.a) && valid_view(a.at) && a.at.rows == a.a.cols && a.at.cols == a.a.rows;
}

template <class T>
cudaError_t transpose_launch(const TransposeArgs<T>& a, cudaStream_t stream) {
  if (!transpose_valid(a)) return cudaErrorInvalidValue;
  if (a.a.empty()) return cudaSuccess;
  const dim3 grid = tile_grid(ceil_div(a.a.rows, kTile), ceil_div(a.a.cols, kTile));
  transpose_kernel<<<grid, dim3(kTile, kTileRows, 1), 0, stream>>>(a.a, a.at);
  return cudaGetLastError();
}

template <class T>
bool triangle_valid(const TriangleArgs<T>& a) noexcept {
  if (!valid_view(a.a) || a.a.rows != a.a.cols) return false;
  return a.op == TriangleOp::kMirrorLowerToUpper || a.op == TriangleOp::kZeroStrictUpper;
}

template <class T>
cudaError_t triangle_launch(const TriangleArgs<T>& a, cudaStream_t stream) {
  if (!triangle_valid(a)) return cudaErrorInvalidValue;
  if (a.a.rows <= 1) return cudaSuccess;
  switch (a.op) {
    case TriangleOp::kMirrorLowerToUpper: {
      const int64_t tiles = ceil_div(a.a.rows, kTile);
      mirror_lower_kernel<<<tile_grid(tiles, tiles), dim3(kTile, kTileRows, 1), 0, stream>>>(a.a);
      return cudaGetLastError();
    }
    case TriangleOp::kZeroStrictUpper: {
      const Launch2d l = launch_2d(a.a.rows, a.a.cols, 4096);
      zero_strict_upper_kernel<<<l.grid, l.block, 0, stream>>>(a.a);
      return cudaGetLastError();
    }
  }
  return cudaErrorInvalidValue;
}

}  // namespace

bool elementwise_can_implement(const TransposeArgs<float>& a) noexcept { return transpose_valid(a); }
bool elementwise_can_implement(const TransposeArgs<double>& a) noexcept { return transpose_valid(a); }
std::size_t elementwise_workspace_bytes(const TransposeArgs<float>&) noexcept { return 0; }
std::size_t elementwise_workspace_bytes(const TransposeArgs<double>&) noexcept { return 0; }
cudaError_t elementwise_launch(const TransposeArgs<float>& a, void*, cudaStream_t stream) noexcept {
  return transpose_launch(a, stream);
}
cudaError_t elementwise_launch(const TransposeArgs<double>& a, void*, cudaStream_t stream) noexcept {
  return transpose_launch(a, stream);
}

bool elementwise_can_implement(const TriangleArgs<float>& a) noexcept { return triangle_valid(a); }
bool elementwise_can_implement(const TriangleArgs<double>& a) noexcept { return triangle_valid(a); }
std::size_t elementwise_workspace_bytes(const TriangleArgs<float>&) noexcept { return 0; }
std::size_t elementwise_workspace_bytes(const TriangleArgs<double>&) noexcept { return 0; }
cudaError_t elementwise_launch(const TriangleArgs<float>& a, void*, cudaStream_t stream) noexcept {
  return triangle_launch(a, stream);
}
cudaError_t elementwise_launch(const TriangleArgs<double>& a, void*, cudaStream_t stream) noexcept {
  return triangle_launch(a, stream);
}

}  // namespace caldera::kernels
