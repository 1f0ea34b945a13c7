// The Llama-family forward pass, one decoder layer at a time, on any Backend (fp32 compute from
// fp32 weights that were converted from bf16/fp16 on load). Used by phase 1 (calibration Hessians,
// caldera-quipsharp spec §6) and by `eval` (perplexity).
//
// Activations ("hidden") are token-major [n_seqs·seq_len × hidden_size] fp32 matrices in backend
// memory: row t is position t % seq_len of sequence t / seq_len (see linalg/nn_kernels.h). Each
// sequence is independent (its own causal attention, positions 0..seq_len−1).
//
// A decoder layer (Hugging Face LlamaDecoderLayer, pre-norm):
//   a = RMSNorm_in(h);  q,k,v = a·Wqᵀ(+bq), a·Wkᵀ(+bk), a·Wvᵀ(+bv);  RoPE(q), RoPE(k)
//   c = CausalGQA(q, k, v) with scale 1/sqrt(head_dim);  h = h + (c·Woᵀ (+bo))
//   u = RMSNorm_post(h);  d = SiLU(u·Wgᵀ(+bg)) ⊙ (u·Wuᵀ(+bu));  h = h + (d·Wdᵀ (+bd))
// The Hessian taps see a (qkv), c (o), u (up) and d (down): the inputs of spec §6.1.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "linalg/backend.h"
#include "model/llama_config.h"
#include "model/weight_source.h"

namespace caldera::model {

/// One decoder layer's weights in backend memory, with the projections that share an input fused:
/// qkv = [Wq; Wk; Wv] ((q_dim + 2 kv_dim) × hidden), gate_up = [Wg; Wu] (2 intermediate × hidden).
/// Biases (1 × out) are empty where the config has none. rope_inv_freq (1 × head_dim/2) is the RoPE
/// frequency table held in the checkpoint's storage dtype (model/rope.h). Move-only owner.
struct LayerWeights {
  linalg::Matrix<float> qkv, o, gate_up, down;
  linalg::Matrix<float> qkv_bias, o_bias, gate_up_bias, down_bias;
  linalg::Matrix<float> input_norm, post_attention_norm;
  linalg::Matrix<float> rope_inv_freq;

  /// Uploads `host` (shapes checked against `config`, throwing Error naming the layer and tensor);
  /// rope_dtype: the dtype of the frequency table (WeightSource::storage_dtype()).
  static LayerWeights upload(linalg::Backend& backend, const LlamaConfig& config, int64_t layer,
                             const LayerHostWeights& host, DType rope_dtype);
  /// Loads layer `layer` from `source` and uploads it.
  static LayerWeights load(linalg::Backend& backend, const WeightSource& source, int64_t layer);
};

/// Accumulators of the four Hessian inputs of one layer (spec §6.2), in backend memory:
/// sum = Σ x xᵀ (n×n), mu_sum = Σ x (1×n), count = rows seen.
///
/// Exact and order-independent (DESIGN §3): each sequence's sums are formed in fp64 (products of the
/// fp32 activations are exact in fp64; the fp64 GEMM of one sequence is deterministic) and added to
/// fixed-point accumulators (core/fixed_point.h), whose sums do not round. So the totals do not
/// depend on how sequences are split over ranks or micro-batches, and Hessians from 1, 2 or 3 ranks
/// are bit-identical.
class HessianTaps {
 public:
  /// Zeroed accumulators sized from `config` (n = config.hessian_input_dim(input)).
  HessianTaps(linalg::Backend& backend, const LlamaConfig& config);

  /// Adds the rows of x (whole sequences of seq_len rows: tokens × n, backend memory): Σ x xᵀ, Σ x,
  /// the row count, and ASVD's per-channel statistics (asvd-svdllm spec §2.1) Σ|x| and max|x|.
  void accumulate(HessianInput input, MatrixView<const float> x, int64_t seq_len);
  /// Zeroes all four accumulators (between layers).
  void reset();

  int64_t dim(HessianInput input) const { return entry(input).sum.rows(); }
  int64_t count(HessianInput input) const { return entry(input).count; }
  /// The exact accumulators (fixed point), e.g. for reductions over ranks.
  MatrixView<const Fixed128> sum_fixed(HessianInput input) const { return entry(input).sum.cview(); }
  MatrixView<const Fixed128> mu_sum_fixed(HessianInput input) const { return entry(input).mu_sum.cview(); }
  MatrixView<const Fixed128> sum_abs_fixed(HessianInput input) const { return entry(input).sum_abs.cview(); }
  /// 1 × n fp64 max|x| per input channel (backend memory; a max is order-independent).
  MatrixView<const double> max_abs(HessianInput input) const { return entry(input).max_abs.cview(); }
  /// The sums as fp64 on the host (each entry rounded once from the exact value).
  HostMatrix<double> sum(HessianInput input) const;
  HostMatrix<double> mu_sum(HessianInput input) const;
  HostMatrix<double> sum_abs(HessianInput input) const;

 private:
  struct Entry {
    linalg::Matrix<Fixed128> sum, mu_sum, sum_abs;
    linalg::Matrix<double> max_abs;
    int64_t count = 0;
  };
  const Entry& entry(HessianInput input) const { return entries_[static_cast<size_t>(input)]; }
  linalg::Backend& backend_;
  std::array<Entry, 4> entries_;
  linalg::Matrix<double> scratch_sum_;  ///< one sequence's fp64 Σ x xᵀ (largest n)
  linalg::Matrix<double> scratch_mu_;   ///< one sequence's fp64 Σ x
  linalg::Matrix<double> scratch_abs_;  ///< one sequence's fp64 Σ|x|
};

/// Fixed-point matrix -> fp64 host matrix (from_fixed per entry).
HostMatrix<double> fixed_to_host_double(linalg::Backend& backend, MatrixView<const Fixed128> m);

/// Runs one decoder layer in place on `hidden` ([n_seqs·seq_len × hidden_size], backend memory),
/// allocating its temporaries (about tokens × (hidden + q_dim + 2 kv_dim + q_dim + 2 intermediate)
/// floats plus the attention workspace) for the duration of the call; callers bound memory by
/// passing a micro-batch of whole sequences. When `taps` is non-null the four linear inputs are
/// accumulated into it. Enqueued on the backend's stream.
void forward_layer(linalg::Backend& backend, const LlamaConfig& config, const LayerWeights& weights,
                   MatrixView<float> hidden, int64_t seq_len, HessianTaps* taps);

/// Token ids of whole sequences validated against the vocabulary and converted to int32.
/// Throws Error naming the first id outside [0, vocab_size) and its position, or a length that is
/// not a multiple of seq_len.
std::vector<int32_t> checked_token_ids(const LlamaConfig& config, std::span<const uint32_t> tokens, int64_t seq_len);

/// hidden(t, :) = embedding(ids[t], :). table: vocab × hidden (backend); ids: host int32 (checked by
/// checked_token_ids); hidden: ids.size() × hidden_size (backend).
void embed_tokens(linalg::Backend& backend, MatrixView<const float> table, std::span<const int32_t> ids,
                  MatrixView<float> hidden);

/// Per-token next-token NLL of whole sequences after the last decoder layer:
/// nll[t] = −log softmax(RMSNorm_final(hidden[t])·lm_headᵀ)[ids[t + 1]] for positions
/// t % seq_len < seq_len − 1, and 0 at the last position of each sequence (nothing to predict).
/// hidden is read only (the final norm goes to a temporary). final_norm: 1 × hidden; lm_head:
/// vocab × hidden (backend); ids: host, hidden.rows entries; nll: hidden.rows entries (host).
/// The vocabulary is streamed in chunks of vocab_chunk rows (NnKernels::token_nll).
void sequence_nll(linalg::Backend& backend, const LlamaConfig& config, MatrixView<const float> hidden,
                  MatrixView<const float> final_norm, MatrixView<const float> lm_head, std::span<const int32_t> ids,
                  int64_t seq_len, int64_t vocab_chunk, std::span<double> nll);

/// Batch geometry of a layer-by-layer forward over many sequences.
struct ForwardOptions {
  int64_t seq_len = 512;          ///< tokens per sequence
  int64_t micro_batch_seqs = 8;   ///< whole sequences per forward_layer call (bounds temporaries)
  int64_t vocab_chunk = 8192;     ///< lm_head rows per logits chunk in the NLL
  /// Throws ConfigError naming the field (as its CLI option) when a value is not positive.
  void validate() const;
};

/// Loads the embedding from `source`, uploads it for the duration of the call and returns the
/// activations [ids.size() × hidden_size] (backend memory) of the given whole sequences.
linalg::Matrix<float> embed_sequences(linalg::Backend& backend, const WeightSource& source,
                                      std::span<const int32_t> ids);

/// forward_layer over all sequences of `hidden`, options.micro_batch_seqs sequences per call.
void forward_layer_batched(linalg::Backend& backend, const LlamaConfig& config, const LayerWeights& weights,
                           MatrixView<float> hidden, const ForwardOptions& options, HessianTaps* taps);

/// The taps of forward_layer_batched without changing `hidden`: each micro-batch is forwarded on a
/// copy (one micro-batch of extra memory), so the activations can then move on through other
/// weights (the SVD-LLM update pass, pipeline/update_pass.h).
void collect_layer_taps(linalg::Backend& backend, const LlamaConfig& config, const LayerWeights& weights,
                        MatrixView<const float> hidden, const ForwardOptions& options, HessianTaps& taps);
/// sequence_nll over all sequences of `hidden` (after the last layer) in micro-batches, with the
/// final norm and lm_head loaded from `source`; returns hidden.rows per-token NLLs (0 at the last
/// position of each sequence).
std::vector<double> final_token_nll(linalg::Backend& backend, const WeightSource& source,
                                    MatrixView<const float> hidden, std::span<const int32_t> ids,
                                    const ForwardOptions& options);

}  // namespace caldera::model
