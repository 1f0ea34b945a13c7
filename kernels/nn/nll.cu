// Streamed log-sum-exp over vocabulary chunks for the per-token NLL (kernels/include/kernels/nn.h).
//   nll_chunk      one 256-thread block per token: chunk max (fp32), Σ exp(l − max) in fp64 with a
//                  fixed-order tree, rescale of the running sum, pick of the target logit
//   nll_finalize   one thread per token
// The logits chunk itself comes from a cuBLAS SGEMM in src/linalg/cuda/cuda_nn_kernels.cu.
#include <cmath>

#include "kernels/nn.h"
#include "nn/block_reduce.cuh"

namespace caldera::kernels {
namespace {

using nn_detail::block_reduce;
using nn_detail::MaxOp;
using nn_detail::SumOp;

constexpr int kThreads = 256;

__global__ void nll_chunk_kernel(NllChunkArgs a) {
  const int64_t t = blockIdx.x;
  const float* l = a.logits + t * a.logits_ld;
  const bool first = a.position == NllChunkPosition::kFirst;
  const float prev_max = first ? -INFINITY : a.run_max[t];
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < a.chunk_cols; j += blockDim.x) m = fmaxf(m, l[j]);
  m = fmaxf(block_reduce(m, MaxOp{}, -INFINITY), prev_max);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < a.chunk_cols; j += blockDim.x) sum += expf(l[j] - m);
  sum = block_reduce(sum, SumOp{}, 0.0);
  if (threadIdx.x == 0) {
    const double prev_sum = first ? 0.0 : a.run_sum[t] * exp(static_cast<double>(prev_max) - static_cast<double>(m));
    a.run_sum[t] = prev_sum + sum;
    a.run_max[t] = m;
    const int32_t tg = a.targets[t];
    if (tg >= a.vocab_begin && tg < a.vocab_begin + a.chunk_cols)
      a.target_logit[t] = l[tg - a.vocab_begin];
    else if (first)
      a.target_logit[t] = 0.0f;
  }
}

__global__ void nll_finalize_kernel(NllFinalizeArgs a) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= a.tokens) return;
  const int32_t tg = a.targets[t];
  if (tg == -1) {
    a.nll[t] = 0.0;
  } else if (tg < -1 || tg >= a.vocab) {
    a.nll[t] = NAN;
  } else {
    a.nll[t] = (static_cast<double>(a.run_max[t]) - static_cast<double>(a.target_logit[t])) + log(a.run_sum[t]);
  }
}

}  // namespace

bool nll_chunk_can_implement(const NllChunkArgs& a) noexcept {
  return a.logits && a.targets && a.run_max && a.run_sum && a.target_logit && a.tokens >= 0 &&
         a.tokens <= 0x7fffffff && a.chunk_cols > 0 && a.logits_ld >= a.chunk_cols && a.vocab_begin >= 0;
}
std::size_t nll_chunk_workspace_bytes(const NllChunkArgs&) noexcept { return 0; }
cudaError_t nll_chunk_launch(const NllChunkArgs& a, void*, cudaStream_t stream) noexcept {
  if (!nll_chunk_can_implement(a)) return cudaErrorInvalidValue;
  if (a.tokens == 0) return cudaSuccess;
  nll_chunk_kernel<<<static_cast<unsigned int>(a.tokens), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

bool nll_finalize_can_implement(const NllFinalizeArgs& a) noexcept {
  return a.targets && a.run_max && a.run_sum && a.target_logit && a.nll && a.tokens >= 0 && a.vocab > 0;
}
std::size_t nll_finalize_workspace_bytes(const NllFinalizeArgs&) noexcept { return 0; }
cudaError_t nll_finalize_launch(const NllFinalizeArgs& a, void*, cudaStream_t stream) noexcept {
  if (!nll_finalize_can_implement(a)) return cudaErrorInvalidValue;
  if (a.tokens == 0) return cudaSuccess;
  nll_finalize_kernel<<<static_cast<unsigned int>((a.tokens + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace caldera::kernels
