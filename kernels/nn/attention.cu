// Helpers of the batched-GEMM causal attention (kernels/include/kernels/nn.h); the GEMMs
// themselves are cuBLAS calls in src/linalg/cuda/cuda_nn_kernels.cu.
//   attention_pointers   one thread per (sequence, head) pair: the five pointer tables
//   causal_softmax       one block per score row (128 or 256 threads by row length): max in
//                        fp32, Σ exp in fp64 (fixed-order tree), zeros above the diagonal
// Constraints: n_heads % n_kv_heads == 0; n_matrices·seq_len < 2^31 rows per softmax launch.
#include <cmath>

#include "kernels/nn.h"
#include "nn/block_reduce.cuh"

namespace caldera::kernels {
namespace {

using nn_detail::block_reduce;
using nn_detail::MaxOp;
using nn_detail::SumOp;

__global__ void attention_pointers_kernel(AttentionPointersArgs a) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t n = a.pair_end - a.pair_begin;
  if (i >= n) return;
  const int64_t p = a.pair_begin + i;
  const int64_t seq = p / a.n_heads, head = p % a.n_heads;
  const int64_t g = head / (a.n_heads / a.n_kv_heads);
  const int64_t row0 = seq * a.seq_len;
  a.q_ptrs[i] = a.q + row0 * a.q_ld + head * a.head_dim;
  a.k_ptrs[i] = a.k + row0 * a.k_ld + g * a.head_dim;
  a.v_ptrs[i] = a.v + row0 * a.v_ld + g * a.head_dim;
  a.s_ptrs[i] = a.scores + i * a.seq_len * a.seq_len;
  a.o_ptrs[i] = a.out + row0 * a.out_ld + head * a.head_dim;
}

__global__ void causal_softmax_kernel(CausalSoftmaxArgs a) {
  const int64_t row = blockIdx.x;  // over n_matrices · seq_len rows
  const int64_t i = row % a.seq_len;
  const int64_t n_valid = i + 1;
  float* s = a.scores + row * a.seq_len;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n_valid; j += blockDim.x) m = fmaxf(m, s[j]);
  m = block_reduce(m, MaxOp{}, -INFINITY);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < n_valid; j += blockDim.x) {
    const float e = expf(s[j] - m);
    s[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, SumOp{}, 0.0);
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = threadIdx.x; j < a.seq_len; j += blockDim.x) s[j] = j < n_valid ? s[j] * inv : 0.0f;
}

}  // namespace

bool attention_pointers_can_implement(const AttentionPointersArgs& a) noexcept {
  return a.q && a.k && a.v && a.scores && a.out && a.q_ptrs && a.k_ptrs && a.v_ptrs && a.s_ptrs && a.o_ptrs &&
         a.n_heads > 0 && a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0 && a.head_dim > 0 && a.seq_len > 0 &&
         a.pair_begin >= 0 && a.pair_end >= a.pair_begin && a.q_ld >= a.n_heads * a.head_dim &&
         a.k_ld >= a.n_kv_heads * a.head_dim && a.v_ld >= a.n_kv_heads * a.head_dim &&
         a.out_ld >= a.n_heads * a.head_dim;
}
std::size_t attention_pointers_workspace_bytes(const AttentionPointersArgs&) noexcept { return 0; }
cudaError_t attention_pointers_launch(const AttentionPointersArgs& a, void*, cudaStream_t stream) noexcept {
  if (!attention_pointers_can_implement(a)) return cudaErrorInvalidValue;
  const int64_t n = a.pair_end - a.pair_begin;
  if (n == 0) return cudaSuccess;
  constexpr int kThreads = 128;
  attention_pointers_kernel<<<static_cast<unsigned int>((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

bool causal_softmax_can_implement(const CausalSoftmaxArgs& a) noexcept {
  return a.scores && a.n_matrices >= 0 && a.seq_len > 0 && a.n_matrices * a.seq_len <= 0x7fffffff;
}
std::size_t causal_softmax_workspace_bytes(const CausalSoftmaxArgs&) noexcept { return 0; }
cudaError_t causal_softmax_launch(const CausalSoftmaxArgs& a, void*, cudaStream_t stream) noexcept {
  if (!causal_softmax_can_implement(a)) return cudaErrorInvalidValue;
  const int64_t rows = a.n_matrices * a.seq_len;
  if (rows == 0) return cudaSuccess;
  const int threads = a.seq_len <= 1024 ? 128 : 256;
  causal_softmax_kernel<<<static_cast<unsigned int>(rows), threads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace caldera::kernels
