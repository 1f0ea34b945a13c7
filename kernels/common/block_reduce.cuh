// Deterministic block-wide sum of doubles (warp shuffles, then one warp over the warp sums).
// The order of additions depends only on the block size, so results are reproducible.
#pragma once

#include <cuda_runtime.h>

namespace caldera::kernels {

/// Sum of `value` over all threads of a block of kThreads threads (1-D or 2-D, kThreads a multiple
/// of 32, at most 1024). The result is valid in the thread with linear index 0. Every thread of the
/// block must call it (it synchronizes).
template <int kThreads>
__device__ inline double block_sum(double value) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "block size must be a multiple of 32, at most 1024");
  constexpr int kWarps = kThreads / 32;
  __shared__ double warp_sums[kWarps];
  const int tid = static_cast<int>(threadIdx.y * blockDim.x + threadIdx.x);
  const int lane = tid % 32;
  const int warp = tid / 32;
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < kWarps ? warp_sums[lane] : 0.0;
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

}  // namespace caldera::kernels
