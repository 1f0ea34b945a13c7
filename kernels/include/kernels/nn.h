// CUDA kernels of the Llama forward pass (kernels/nn), reached only through
// src/linalg/cuda/cuda_nn_kernels (style C7): per family an Args struct, can_implement,
// workspace_bytes and a noexcept launch returning cudaError_t; launchers never allocate.
//
// Common conventions: all pointers are device memory; matrices are row-major with an explicit
// leading dimension (elements between row starts, >= cols); token-major activations as in
// src/linalg/nn_kernels.h (row t = position t % seq_len of sequence t / seq_len, head h in columns
// [h·head_dim, (h+1)·head_dim)). Every launch is asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace caldera::kernels {

// ---- embedding: out(t, :) = table(ids[t], :); a row of NaN for an id outside [0, vocab) ------
struct EmbeddingArgs {
  const float* table = nullptr;
  int64_t vocab = 0, cols = 0, table_ld = 0;
  const int32_t* ids = nullptr;  // tokens entries
  float* out = nullptr;
  int64_t tokens = 0, out_ld = 0;
};
[[nodiscard]] bool embedding_can_implement(const EmbeddingArgs& a) noexcept;
[[nodiscard]] std::size_t embedding_workspace_bytes(const EmbeddingArgs& a) noexcept;
[[nodiscard]] cudaError_t embedding_launch(const EmbeddingArgs& a, void* workspace, cudaStream_t stream) noexcept;

// ---- RMSNorm: y = x / sqrt(mean(x²) + eps) · weight, one block per row, mean square in fp64 ----
// y may equal x (same ld): each element is read before it is written by the same thread.
struct RmsNormArgs {
  const float* x = nullptr;
  int64_t x_ld = 0;
  const float* weight = nullptr;  // cols entries
  float* y = nullptr;
  int64_t y_ld = 0;
  int64_t rows = 0, cols = 0;
  float eps = 0.0f;
};
[[nodiscard]] bool rms_norm_can_implement(const RmsNormArgs& a) noexcept;
[[nodiscard]] std::size_t rms_norm_workspace_bytes(const RmsNormArgs& a) noexcept;
[[nodiscard]] cudaError_t rms_norm_launch(const RmsNormArgs& a, void* workspace, cudaStream_t stream) noexcept;

// ---- RoPE in place (HF rotate_half pairs (i, i + head_dim/2)); angle = float(pos)·inv_freq[i]
// in fp32, its cos/sin in fp64 then rounded (bit-compatible with the CPU reference) -------------
struct RopeArgs {
  float* x = nullptr;
  int64_t ld = 0, rows = 0;
  int64_t n_heads = 0, head_dim = 0, seq_len = 0;
  const float* inv_freq = nullptr;  // head_dim / 2 entries
};
[[nodiscard]] bool rope_can_implement(const RopeArgs& a) noexcept;  // even head_dim, rows % seq_len == 0
[[nodiscard]] std::size_t rope_workspace_bytes(const RopeArgs& a) noexcept;
[[nodiscard]] cudaError_t rope_launch(const RopeArgs& a, void* workspace, cudaStream_t stream) noexcept;

// ---- attention pointer tables for batched cuBLAS GEMMs ------------------------------------------
// For pair p in [pair_begin, pair_end), p = sequence·n_heads + head, g = head / (n_heads/n_kv_heads):
//   q_ptrs[i] = q + (seq·seq_len)·q_ld + head·head_dim        (i = p − pair_begin)
//   k_ptrs[i] = k + (seq·seq_len)·k_ld + g·head_dim,   v_ptrs[i] likewise in v
//   s_ptrs[i] = scores + i·seq_len·seq_len                    (seq_len × seq_len row-major)
//   o_ptrs[i] = out + (seq·seq_len)·out_ld + head·head_dim
// Workspace: none (the five tables of pair_end − pair_begin pointers are the outputs).
struct AttentionPointersArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* scores = nullptr;
  float* out = nullptr;
  int64_t q_ld = 0, k_ld = 0, v_ld = 0, out_ld = 0;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, seq_len = 0;
  int64_t pair_begin = 0, pair_end = 0;
  const float** q_ptrs = nullptr;
  const float** k_ptrs = nullptr;
  const float** v_ptrs = nullptr;
  float** s_ptrs = nullptr;
  float** o_ptrs = nullptr;
};
[[nodiscard]] bool attention_pointers_can_implement(const AttentionPointersArgs& a) noexcept;
[[nodiscard]] std::size_t attention_pointers_workspace_bytes(const AttentionPointersArgs& a) noexcept;
[[nodiscard]] cudaError_t attention_pointers_launch(const AttentionPointersArgs& a, void* workspace,
                                                    cudaStream_t stream) noexcept;

// ---- causal softmax in place over n_matrices consecutive seq_len × seq_len score matrices ---------
// Row i of each matrix keeps columns [0, i] (softmax with max subtraction in fp32, sum in fp64) and
// gets 0 in columns (i, seq_len). One block per row.
struct CausalSoftmaxArgs {
  float* scores = nullptr;
  int64_t n_matrices = 0, seq_len = 0;
};
[[nodiscard]] bool causal_softmax_can_implement(const CausalSoftmaxArgs& a) noexcept;
[[nodiscard]] std::size_t causal_softmax_workspace_bytes(const CausalSoftmaxArgs& a) noexcept;
[[nodiscard]] cudaError_t causal_softmax_launch(const CausalSoftmaxArgs& a, void* workspace,
                                                cudaStream_t stream) noexcept;

// ---- SwiGLU and bias ------------------------------------------------------------------------------
// out = gate / (1 + exp(−gate)) · up; out may equal gate or up (same ld).
struct SiluMulArgs {
  const float* gate = nullptr;
  const float* up = nullptr;
  float* out = nullptr;
  int64_t gate_ld = 0, up_ld = 0, out_ld = 0;
  int64_t rows = 0, cols = 0;
};
[[nodiscard]] bool silu_mul_can_implement(const SiluMulArgs& a) noexcept;
[[nodiscard]] std::size_t silu_mul_workspace_bytes(const SiluMulArgs& a) noexcept;
[[nodiscard]] cudaError_t silu_mul_launch(const SiluMulArgs& a, void* workspace, cudaStream_t stream) noexcept;

// x(t, j) += bias[j]
struct AddBiasArgs {
  float* x = nullptr;
  int64_t ld = 0, rows = 0, cols = 0;
  const float* bias = nullptr;
};
[[nodiscard]] bool add_bias_can_implement(const AddBiasArgs& a) noexcept;
[[nodiscard]] std::size_t add_bias_workspace_bytes(const AddBiasArgs& a) noexcept;
[[nodiscard]] cudaError_t add_bias_launch(const AddBiasArgs& a, void* workspace, cudaStream_t stream) noexcept;

// ---- column sums: sums[j] += Σ_t x(t, j) in fp64, deterministic ------------------------------------
// Two passes without atomics: per chunk of kColumnSumRowsPerChunk rows a partial sum into the
// workspace (ceil(rows / chunk) × cols doubles), then a fixed-order reduction over chunks.
inline constexpr int64_t kColumnSumRowsPerChunk = 256;
struct ColumnSumsArgs {
  const float* x = nullptr;
  int64_t ld = 0, rows = 0, cols = 0;
  double* sums = nullptr;  // cols entries, accumulated into
};
[[nodiscard]] bool column_sums_can_implement(const ColumnSumsArgs& a) noexcept;
[[nodiscard]] std::size_t column_sums_workspace_bytes(const ColumnSumsArgs& a) noexcept;
[[nodiscard]] cudaError_t column_sums_launch(const ColumnSumsArgs& a, void* workspace, cudaStream_t stream) noexcept;

// ---- column |x| statistics (ASVD): sum_abs[j] += Σ_t |x(t, j)| (fp64), max_abs[j] = max(., |x|) -----
// Same two-pass scheme as column_sums (chunk partials of kColumnSumRowsPerChunk rows, then a
// fixed-order reduction); workspace: 2 · ceil(rows / chunk) × cols doubles.
struct ColumnAbsStatsArgs {
  const float* x = nullptr;
  int64_t ld = 0, rows = 0, cols = 0;
  double* sum_abs = nullptr;  // cols entries, accumulated into
  double* max_abs = nullptr;  // cols entries, max-accumulated into
};
[[nodiscard]] bool column_abs_stats_can_implement(const ColumnAbsStatsArgs& a) noexcept;
[[nodiscard]] std::size_t column_abs_stats_workspace_bytes(const ColumnAbsStatsArgs& a) noexcept;
[[nodiscard]] cudaError_t column_abs_stats_launch(const ColumnAbsStatsArgs& a, void* workspace,
                                                  cudaStream_t stream) noexcept;

// ---- streamed log-sum-exp over vocabulary chunks (token NLL) --------------------------------------
// State per token (device arrays of `tokens` entries, owned by the caller): run_max (fp32),
// run_sum (fp64 Σ exp(l − run_max)), target_logit (fp32). nll_chunk folds one chunk of logits
// (tokens × chunk_cols, ld logits_ld, vocabulary ids [vocab_begin, vocab_begin + chunk_cols)) into
// the state; position kFirst starts from empty state. One block per token, fixed-order reductions.
enum class NllChunkPosition : uint8_t { kFirst, kNext };
struct NllChunkArgs {
  const float* logits = nullptr;
  int64_t logits_ld = 0, tokens = 0, chunk_cols = 0, vocab_begin = 0;
  const int32_t* targets = nullptr;
  float* run_max = nullptr;
  double* run_sum = nullptr;
  float* target_logit = nullptr;
  NllChunkPosition position = NllChunkPosition::kFirst;
};
[[nodiscard]] bool nll_chunk_can_implement(const NllChunkArgs& a) noexcept;
[[nodiscard]] std::size_t nll_chunk_workspace_bytes(const NllChunkArgs& a) noexcept;
[[nodiscard]] cudaError_t nll_chunk_launch(const NllChunkArgs& a, void* workspace, cudaStream_t stream) noexcept;

// nll[t] = run_max − target_logit + log(run_sum) in fp64; 0 where targets[t] == −1; NaN where
// targets[t] is outside [−1, vocab).
struct NllFinalizeArgs {
  const int32_t* targets = nullptr;
  const float* run_max = nullptr;
  const double* run_sum = nullptr;
  const float* target_logit = nullptr;
  double* nll = nullptr;
  int64_t tokens = 0, vocab = 0;
};
[[nodiscard]] bool nll_finalize_can_implement(const NllFinalizeArgs& a) noexcept;
[[nodiscard]] std::size_t nll_finalize_workspace_bytes(const NllFinalizeArgs& a) noexcept;
[[nodiscard]] cudaError_t nll_finalize_launch(const NllFinalizeArgs& a, void* workspace, cudaStream_t stream) noexcept;

}  // namespace caldera::kernels
