// Backend facet with the neural-network kernels of the Llama forward pass (RMSNorm, RoPE,
// causal grouped-query attention, SwiGLU, embedding lookup, log-softmax NLL) and the column sums
// of the calibration Hessian taps. Conventions as in linalg/backend.h: every view points into
// memory of the backend that owns this facet, work is enqueued on its stream, shape mismatches
// throw caldera::Error.
//
// Activations of a batch of sequences are stored token-major: a [n_seqs·seq_len × width]
// row-major matrix whose row t is position t % seq_len of sequence t / seq_len. Multi-head
// tensors put head h in columns [h·head_dim, (h+1)·head_dim) of such a matrix (the layout of
// x·Wᵀ for Hugging Face q_proj/k_proj/v_proj), so q, k and v may be column blocks of one fused
// projection output (ld > cols).
//
// Everything computes in fp32; reductions that need it (RMSNorm's mean square, softmax sums,
// log-sum-exp, column sums) accumulate in fp64 or in a tree, as stated per op.
#pragma once

#include <cstdint>

#include "linalg/backend.h"

namespace caldera::linalg {

/// Shape of one causal grouped-query attention call.
struct AttentionShape {
  int64_t n_heads = 0;     ///< query heads
  int64_t n_kv_heads = 0;  ///< key/value heads; n_heads % n_kv_heads == 0; head h reads kv head h / (n_heads / n_kv_heads)
  int64_t head_dim = 0;
  int64_t seq_len = 0;  ///< tokens per sequence; the batch has rows / seq_len sequences
};

class NnKernels {
 public:
  virtual ~NnKernels() = default;

  /// out(t, :) = table(ids[t], :).
  /// table: vocab × hidden; ids: 1 × tokens int32 (backend memory); out: tokens × hidden.
  /// Ids must lie in [0, vocab): the CPU backend throws Error naming the first bad id and its
  /// position; the CUDA backend writes a row of NaN for it (callers validate ids on the host first;
  /// io::TokenFile does).
  virtual void embedding(MatrixView<const float> table, MatrixView<const int32_t> ids, MatrixView<float> out) = 0;

  /// Llama RMSNorm: y(t, j) = x(t, j) / sqrt(mean_j x(t, j)² + eps) · weight[j].
  /// x, y: tokens × n (y may be exactly x: in place); weight: 1 × n. Mean square accumulated in
  /// fp64 (CPU) or a fp32 tree (CUDA).
  virtual void rms_norm(MatrixView<const float> x, MatrixView<const float> weight, float eps, MatrixView<float> y) = 0;

  /// Rotary position embedding in place, Hugging Face rotate_half convention: for each token t
  /// (position p = t % seq_len), head h and i < head_dim/2, with a = p·inv_freq[i] (fp32 product),
  ///   x[i] ← x[i]·cos a − x[i + d/2]·sin a,   x[i + d/2] ← x[i + d/2]·cos a + x[i]·sin a.
  /// x: tokens × (n_heads·head_dim) (ld may exceed cols); inv_freq: 1 × head_dim/2 (frequency
  /// scaling such as llama3's is already folded in, model/rope.h); tokens % seq_len == 0.
  virtual void rope(MatrixView<float> x, int64_t n_heads, int64_t head_dim, int64_t seq_len,
                    MatrixView<const float> inv_freq) = 0;

  /// Causal grouped-query attention of a batch of independent sequences:
  ///   out_h = softmax(scale · q_h k_gᵀ + causal mask) v_g   per sequence and query head h, g = kv head of h,
  /// softmax in fp32 with max subtraction (row sums in fp64 on the CPU).
  /// q, out: tokens × (n_heads·head_dim); k, v: tokens × (n_kv_heads·head_dim); tokens % seq_len == 0.
  /// out must not overlap q, k or v. The CPU computes per (sequence, head) with BLAS on the causal
  /// lower block triangle; the CUDA backend uses batched cuBLAS GEMMs and a masked softmax kernel
  /// (cuda_nn_kernels.h), with a device workspace of at most a few hundred MiB.
  virtual void causal_attention(MatrixView<const float> q, MatrixView<const float> k, MatrixView<const float> v,
                                const AttentionShape& shape, float scale, MatrixView<float> out) = 0;

  /// SwiGLU: out = SiLU(gate) ⊙ up with SiLU(g) = g / (1 + exp(−g)). All tokens × n; out may be
  /// exactly gate or up.
  virtual void silu_mul(MatrixView<const float> gate, MatrixView<const float> up, MatrixView<float> out) = 0;

  /// x(t, j) += bias[j]; bias: 1 × x.cols.
  virtual void add_bias(MatrixView<float> x, MatrixView<const float> bias) = 0;

  /// sums[j] += Σ_t x(t, j), accumulated in fp64 (the Σx of the Hessian taps, spec §6.2).
  /// x: tokens × n; sums: 1 × n fp64.
  virtual void add_column_sums(MatrixView<const float> x, MatrixView<double> sums) = 0;

  /// Per-channel activation statistics of ASVD (asvd-svdllm spec §2.1): sum_abs[j] += Σ_t |x(t, j)|
  /// accumulated in fp64, max_abs[j] = max(max_abs[j], max_t |x(t, j)|). x: tokens × n; sum_abs,
  /// max_abs: 1 × n fp64. A NaN in x makes sum_abs NaN (the max ignores it).
  virtual void add_column_abs_stats(MatrixView<const float> x, MatrixView<double> sum_abs,
                                    MatrixView<double> max_abs) = 0;

  /// Per-token negative log-likelihood of the next token under the language-model head:
  ///   nll[t] = logsumexp_v(logits(t, v)) − logits(t, targets[t]),  logits = hidden · lm_headᵀ (fp32 GEMM),
  /// and nll[t] = 0 where targets[t] < 0 (no prediction, e.g. the last position of a sequence).
  /// The logits are never materialised beyond tokens × vocab_chunk: the vocabulary is processed in
  /// chunks of vocab_chunk rows of lm_head with a streamed log-sum-exp (running max in fp32, sum of
  /// exponentials and the final subtraction in fp64).
  /// hidden: tokens × n (already final-normed); lm_head: vocab × n; targets: 1 × tokens int32 in
  /// [-1, vocab) (CPU throws Error otherwise, CUDA yields NaN); nll: 1 × tokens fp64.
  virtual void token_nll(MatrixView<const float> hidden, MatrixView<const float> lm_head,
                         MatrixView<const int32_t> targets, int64_t vocab_chunk, MatrixView<double> nll) = 0;
};

namespace nn_detail {
// Argument validation shared by every backend's facet (nn_kernels.cpp); each throws Error naming
// the op and the shapes found.
void check_embedding(MatrixView<const float> table, MatrixView<const int32_t> ids, MatrixView<float> out);
void check_rms_norm(MatrixView<const float> x, MatrixView<const float> weight, MatrixView<float> y);
void check_rope(MatrixView<float> x, int64_t n_heads, int64_t head_dim, int64_t seq_len,
                MatrixView<const float> inv_freq);
void check_attention(MatrixView<const float> q, MatrixView<const float> k, MatrixView<const float> v,
                     const AttentionShape& shape, MatrixView<float> out);
void check_silu_mul(MatrixView<const float> gate, MatrixView<const float> up, MatrixView<float> out);
void check_add_bias(MatrixView<float> x, MatrixView<const float> bias);
void check_column_sums(MatrixView<const float> x, MatrixView<double> sums);
void check_column_abs_stats(MatrixView<const float> x, MatrixView<double> sum_abs, MatrixView<double> max_abs);
void check_token_nll(MatrixView<const float> hidden, MatrixView<const float> lm_head,
                     MatrixView<const int32_t> targets, int64_t vocab_chunk, MatrixView<double> nll);
}  // namespace nn_detail

}  // namespace caldera::linalg
