// Block-wide reductions for the nn kernels: fixed-order (deterministic) warp-shuffle trees.
// Every thread of the block must call them (they contain __syncthreads()); blockDim.x must be a
// multiple of 32 and at most 1024. The result is returned to every thread.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

namespace caldera::kernels::nn_detail {

inline constexpr int kWarp = 32;

template <class T, class Op>
__device__ T warp_reduce(T v, Op op) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

/// Reduces v over the block with op, `identity` filling the unused warp slots.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[kWarp];
  const int lane = static_cast<int>(threadIdx.x) % kWarp, warp = static_cast<int>(threadIdx.x) / kWarp;
  const int n_warps = static_cast<int>(blockDim.x) / kWarp;
  v = warp_reduce(v, op);
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < n_warps ? partial[lane] : identity;
  return warp_reduce(v, op);
}

struct SumOp {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

}  // namespace caldera::kernels::nn_detail
