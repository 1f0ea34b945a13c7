// Launch-shape helpers shared by the kernel families (device code and launchers only; never
// included by host-only translation units).
//
// Grid shapes depend only on the problem shape, never on the device (SM count), so that every
// kernel that reduces does so in the same order on an H100 and an H200: results are bit-identical.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/matrix.h"

namespace caldera::kernels {

/// ⌈a / b⌉ for a >= 0, b > 0.
__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Threads per block of every 2-D elementwise pass (a multiple of the warp size).
inline constexpr int kBlockThreads = 256;

/// Block and grid for a grid-stride pass over a rows × cols matrix: threads run along columns
/// (coalesced), the rest of the block along rows. At most `max_blocks` blocks in total; the
/// y extent stays below the hardware limit of 65535.
struct Launch2d {
  dim3 grid;
  dim3 block;
};

inline Launch2d launch_2d(int64_t rows, int64_t cols, int64_t max_blocks) {
  const int64_t bx = cols >= 256 ? 256 : cols >= 128 ? 128 : cols >= 64 ? 64 : 32;
  const int64_t by = kBlockThreads / bx;
  const int64_t gx = std::clamp<int64_t>(ceil_div(cols, bx), 1, max_blocks);
  const int64_t gy_max = std::min<int64_t>(65535, std::max<int64_t>(1, max_blocks / gx));
  const int64_t gy = std::clamp<int64_t>(ceil_div(rows, by), 1, gy_max);
  Launch2d l;
  l.block = dim3(static_cast<unsigned>(bx), static_cast<unsigned>(by), 1);
  l.grid = dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy), 1);
  return l;
}

/// A contiguous view (ld == cols, or a single row) seen as one row, so that a pass over it needs no
/// row index and spreads over the whole grid even for column vectors.
template <class T>
__host__ __device__ inline MatrixView<T> as_single_row(MatrixView<T> v) {
  return v.contiguous() ? MatrixView<T>(v.data, v.empty() ? 0 : 1, v.rows * v.cols, v.rows * v.cols) : v;
}

/// True when the view is well formed: non-negative shape, ld >= cols for more than one row, and a
/// data pointer when it is not empty.
template <class T>
inline bool valid_view(const MatrixView<T>& v) noexcept {
  if (v.rows < 0 || v.cols < 0) return false;
  if (v.empty()) return true;
  return v.data != nullptr && (v.rows <= 1 || v.ld >= v.cols);
}

}  // namespace caldera::kernels
