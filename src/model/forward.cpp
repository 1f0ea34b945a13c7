#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "linalg/nn_kernels.h"
#include "model/rope.h"

namespace caldera::model {
namespace {

using linalg::Backend;
using linalg::Matrix;
using linalg::Op;

std::string tensor_label(int64_t layer, std::string_view what) {
  return detail::concat("layer ", layer, " ", what);
}

void check_shape(const HostMatrix<float>& m, int64_t rows, int64_t cols, int64_t layer, std::string_view what) {
  CALDERA_CHECK(m.rows() == rows && m.cols() == cols, "layer ", layer, " ", what, ": expected ", rows, "x", cols,
                ", found ", m.rows(), "x", m.cols());
}

/// Uploads `parts` stacked by rows into one backend matrix (a fused projection or its bias).
Matrix<float> upload_stacked(Backend& backend, std::initializer_list<const HostMatrix<float>*> parts,
                             const std::string& label) {
  int64_t rows = 0, cols = -1;
  for (const auto* p : parts) {
    CALDERA_CHECK(cols < 0 || p->cols() == cols, label, ": stacked parts have ", cols, " and ", p->cols(), " columns");
    cols = p->cols();
    rows += p->rows();
  }
  Matrix<float> m = backend.make<float>(rows, cols, label);
  int64_t r0 = 0;
  for (const auto* p : parts) {
    backend.upload(p->cview(), m.view().rows_range(r0, p->rows()));
    r0 += p->rows();
  }
  return m;
}

/// Bias vectors are 1 × out; fusing them concatenates columns, so upload them as columns of a row.
Matrix<float> upload_bias(Backend& backend, std::initializer_list<const HostMatrix<float>*> parts,
                          const std::string& label) {
  int64_t cols = 0;
  for (const auto* p : parts) cols += p->size();
  Matrix<float> m = backend.make<float>(1, cols, label);
  int64_t c0 = 0;
  for (const auto* p : parts) {
    backend.upload(MatrixView<const float>(p->data(), 1, p->size()), m.view().cols_range(c0, p->size()));
    c0 += p->size();
  }
  return m;
}

/// y = x·Wᵀ (+ bias).
void linear(Backend& backend, MatrixView<const float> x, const Matrix<float>& w, const Matrix<float>& bias,
            MatrixView<float> y) {
  backend.gemm(Op::kNoTrans, Op::kTrans, 1.0f, x, w.cview(), 0.0f, y);
  if (!bias.empty()) backend.nn().add_bias(y, bias.cview());
}

/// Zeroes a fixed-point matrix: all-zero bits, written through a double view of the same bytes
/// (+0.0 is all-zero bits).
void zero_fixed(Backend& backend, MatrixView<Fixed128> m) {
  static_assert(sizeof(Fixed128) == 2 * sizeof(double));
  backend.fill(MatrixView<double>(reinterpret_cast<double*>(m.data), m.rows, 2 * m.cols, 2 * m.ld), 0.0);
}

}  // namespace

void check_layer_shapes(const LlamaConfig& config, int64_t layer, const LayerHostWeights& w) {
  for (LinearKind kind : kAllLinearKinds) {
    const LinearShape s = config.linear_shape(kind);
    check_shape(w[kind], s.out, s.in, layer, to_string(kind));
    const auto& b = w.bias[static_cast<size_t>(kind)];
    if (config.has_bias(kind))
      CALDERA_CHECK(b.size() == s.out && (b.rows() == 1 || b.cols() == 1), "layer ", layer, " ", to_string(kind),
                    " bias: expected ", s.out, " entries, found ", b.rows(), "x", b.cols());
    else
      CALDERA_CHECK(b.size() == 0, "layer ", layer, " ", to_string(kind), ": the config has no bias, found one");
  }
  check_shape(w.input_norm, 1, config.hidden_size, layer, "input_layernorm");
  check_shape(w.post_attention_norm, 1, config.hidden_size, layer, "post_attention_layernorm");
}

LayerWeights LayerWeights::load(Backend& backend, const WeightSource& source, int64_t layer) {
  return upload(backend, source.config(), layer, source.load_layer(layer), source.storage_dtype());
}

LayerWeights LayerWeights::upload(Backend& backend, const LlamaConfig& config, int64_t layer,
                                  const LayerHostWeights& host, DType rope_dtype) {
  check_layer_shapes(config, layer, host);
  using K = LinearKind;
  LayerWeights w;
  w.qkv = upload_stacked(backend, {&host[K::kQ], &host[K::kK], &host[K::kV]}, tensor_label(layer, "qkv_proj"));
  w.o = backend.upload(host[K::kO].cview(), tensor_label(layer, "o_proj"));
  w.gate_up = upload_stacked(backend, {&host[K::kGate], &host[K::kUp]}, tensor_label(layer, "gate_up_proj"));
  w.down = backend.upload(host[K::kDown].cview(), tensor_label(layer, "down_proj"));
  const auto bias = [&](K kind) { return &host.bias[static_cast<size_t>(kind)]; };
  if (config.has_bias(K::kQ))
    w.qkv_bias = upload_bias(backend, {bias(K::kQ), bias(K::kK), bias(K::kV)}, tensor_label(layer, "qkv bias"));
  if (config.has_bias(K::kO)) w.o_bias = upload_bias(backend, {bias(K::kO)}, tensor_label(layer, "o bias"));
  if (config.has_bias(K::kGate))
    w.gate_up_bias = upload_bias(backend, {bias(K::kGate), bias(K::kUp)}, tensor_label(layer, "gate_up bias"));
  if (config.has_bias(K::kDown)) w.down_bias = upload_bias(backend, {bias(K::kDown)}, tensor_label(layer, "down bias"));
  w.input_norm = backend.upload(host.input_norm.cview(), tensor_label(layer, "input_layernorm"));
  w.post_attention_norm = backend.upload(host.post_attention_norm.cview(), tensor_label(layer, "post_attention_layernorm"));
  const std::vector<float> inv_freq = model::rope_inv_freq(config, rope_dtype);
  w.rope_inv_freq = backend.upload(MatrixView<const float>(inv_freq.data(), 1, static_cast<int64_t>(inv_freq.size())),
                                   tensor_label(layer, "rope inv_freq"));
  return w;
}

HessianTaps::HessianTaps(Backend& backend, const LlamaConfig& config) : backend_(backend) {
  int64_t max_n = 0;
  for (HessianInput input : kAllHessianInputs) {
    const int64_t n = config.hessian_input_dim(input);
    max_n = std::max(max_n, n);
    auto& e = entries_[static_cast<size_t>(input)];
    e.sum = backend.make<Fixed128>(n, n, detail::concat("hessian sum ", to_string(input)));
    e.mu_sum = backend.make<Fixed128>(1, n, detail::concat("hessian mu_sum ", to_string(input)));
    e.sum_abs = backend.make<Fixed128>(1, n, detail::concat("hessian sum_abs ", to_string(input)));
    e.max_abs = backend.make<double>(1, n, detail::concat("hessian max_abs ", to_string(input)));
  }
  scratch_sum_ = backend.make<double>(max_n, max_n, "hessian sequence sum");
  scratch_mu_ = backend.make<double>(1, max_n, "hessian sequence mu_sum");
  scratch_abs_ = backend.make<double>(1, max_n, "hessian sequence sum_abs");
  reset();
}

void HessianTaps::accumulate(HessianInput input, MatrixView<const float> x, int64_t seq_len) {
  auto& e = entries_[static_cast<size_t>(input)];
  const int64_t n = e.sum.rows();
  CALDERA_CHECK(x.cols == n, "HessianTaps ", to_string(input), ": input has ", x.cols,
                " columns, the accumulator is ", n);
  CALDERA_CHECK(seq_len > 0 && x.rows % seq_len == 0, "HessianTaps ", to_string(input), ": ", x.rows,
                " rows are not whole sequences of ", seq_len);
  const auto g = scratch_sum_.view().block(0, 0, n, n);
  const auto mu = scratch_mu_.view().block(0, 0, 1, n);
  const auto abs = scratch_abs_.view().block(0, 0, 1, n);
  for (int64_t r0 = 0; r0 < x.rows; r0 += seq_len) {
    const auto seq = x.rows_range(r0, seq_len);
    backend_.fill(g, 0.0);
    backend_.fill(mu, 0.0);
    backend_.fill(abs, 0.0);
    backend_.gram_accumulate(seq, g);
    backend_.nn().add_column_sums(seq, mu);
    backend_.nn().add_column_abs_stats(seq, abs, e.max_abs.view());
    backend_.accumulate_fixed(g, e.sum.view());
    backend_.accumulate_fixed(mu, e.mu_sum.view());
    backend_.accumulate_fixed(abs, e.sum_abs.view());
  }
  e.count += x.rows;
}

void HessianTaps::reset() {
  for (auto& e : entries_) {
    zero_fixed(backend_, e.sum.view());
    zero_fixed(backend_, e.mu_sum.view());
    zero_fixed(backend_, e.sum_abs.view());
    backend_.fill(e.max_abs.view(), 0.0);
    e.count = 0;
  }
}

HostMatrix<double> HessianTaps::sum(HessianInput input) const { return fixed_to_host_double(backend_, sum_fixed(input)); }
HostMatrix<double> HessianTaps::mu_sum(HessianInput input) const {
  return fixed_to_host_double(backend_, mu_sum_fixed(input));
}
HostMatrix<double> HessianTaps::sum_abs(HessianInput input) const {
  return fixed_to_host_double(backend_, sum_abs_fixed(input));
}

HostMatrix<double> fixed_to_host_double(Backend& backend, MatrixView<const Fixed128> m) {
  const HostMatrix<Fixed128> f = backend.download(m);
  HostMatrix<double> out(f.rows(), f.cols());
  for (int64_t i = 0; i < f.size(); ++i) out.data()[i] = from_fixed(f.data()[i]);
  return out;
}

void forward_layer(Backend& backend, const LlamaConfig& config, const LayerWeights& weights, MatrixView<float> hidden,
                   int64_t seq_len, HessianTaps* taps) {
  const int64_t tokens = hidden.rows, h = config.hidden_size;
  const int64_t qd = config.q_dim(), kvd = config.kv_dim(), inter = config.intermediate_size;
  CALDERA_CHECK(hidden.cols == h, "forward_layer: hidden has ", hidden.cols, " columns, hidden_size is ", h);
  CALDERA_CHECK(seq_len > 0 && tokens % seq_len == 0, "forward_layer: ", tokens, " tokens are not whole sequences of ",
                seq_len);
  if (tokens == 0) return;
  auto& nn = backend.nn();
  const auto eps = static_cast<float>(config.rms_norm_eps);
  const auto inv_freq = weights.rope_inv_freq.cview();

  // Attention block.
  auto normed = backend.make<float>(tokens, h, "forward normed");
  nn.rms_norm(hidden, weights.input_norm.cview(), eps, normed.view());
  if (taps != nullptr) taps->accumulate(HessianInput::kQkv, normed.cview(), seq_len);
  {
    auto qkv = backend.make<float>(tokens, qd + 2 * kvd, "forward qkv");
    linear(backend, normed.cview(), weights.qkv, weights.qkv_bias, qkv.view());
    auto q = qkv.view().cols_range(0, qd);
    auto k = qkv.view().cols_range(qd, kvd);
    const auto v = qkv.cview().cols_range(qd + kvd, kvd);
    nn.rope(q, config.num_attention_heads, config.head_dim, seq_len, inv_freq);
    nn.rope(k, config.num_key_value_heads, config.head_dim, seq_len, inv_freq);
    auto context = backend.make<float>(tokens, qd, "forward attention context");
    const linalg::AttentionShape shape{config.num_attention_heads, config.num_key_value_heads, config.head_dim,
                                       seq_len};
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config.head_dim)));
    nn.causal_attention(q, k, v, shape, scale, context.view());
    if (taps != nullptr) taps->accumulate(HessianInput::kO, context.cview(), seq_len);
    linear(backend, context.cview(), weights.o, weights.o_bias, normed.view());  // normed reused as o_proj output
    backend.axpby(1.0f, normed.cview(), 1.0f, hidden);
  }

  // MLP block.
  nn.rms_norm(hidden, weights.post_attention_norm.cview(), eps, normed.view());
  if (taps != nullptr) taps->accumulate(HessianInput::kUp, normed.cview(), seq_len);
  auto gate_up = backend.make<float>(tokens, 2 * inter, "forward gate_up");
  linear(backend, normed.cview(), weights.gate_up, weights.gate_up_bias, gate_up.view());
  auto act = gate_up.view().cols_range(0, inter);  // SiLU(gate) ⊙ up, written over the gate columns
  nn.silu_mul(gate_up.cview().cols_range(0, inter), gate_up.cview().cols_range(inter, inter), act);
  if (taps != nullptr) taps->accumulate(HessianInput::kDown, act, seq_len);
  linear(backend, act, weights.down, weights.down_bias, normed.view());
  backend.axpby(1.0f, normed.cview(), 1.0f, hidden);
}

std::vector<int32_t> checked_token_ids(const LlamaConfig& config, std::span<const uint32_t> tokens, int64_t seq_len) {
  CALDERA_CHECK(seq_len > 0 && static_cast<int64_t>(tokens.size()) % seq_len == 0, tokens.size(),
                " tokens are not whole sequences of ", seq_len);
  std::vector<int32_t> ids(tokens.size());
  for (size_t t = 0; t < tokens.size(); ++t) {
    CALDERA_CHECK(static_cast<int64_t>(tokens[t]) < config.vocab_size, "token id ", tokens[t], " at position ", t,
                  " (sequence ", static_cast<int64_t>(t) / seq_len, ") is outside the vocabulary of ",
                  config.vocab_size);
    ids[t] = static_cast<int32_t>(tokens[t]);
  }
  return ids;
}

void embed_tokens(Backend& backend, MatrixView<const float> table, std::span<const int32_t> ids,
                  MatrixView<float> hidden) {
  const auto n = static_cast<int64_t>(ids.size());
  CALDERA_CHECK(hidden.rows == n, "embed_tokens: ", n, " ids for ", hidden.rows, " rows");
  if (n == 0) return;
  const auto dev_ids = backend.upload(MatrixView<const int32_t>(ids.data(), 1, n), "token ids");
  backend.nn().embedding(table, dev_ids.cview(), hidden);
}

void sequence_nll(Backend& backend, const LlamaConfig& config, MatrixView<const float> hidden,
                  MatrixView<const float> final_norm, MatrixView<const float> lm_head, std::span<const int32_t> ids,
                  int64_t seq_len, int64_t vocab_chunk, std::span<double> nll) {
  const int64_t tokens = hidden.rows;
  CALDERA_CHECK(static_cast<int64_t>(ids.size()) == tokens && static_cast<int64_t>(nll.size()) == tokens,
                "sequence_nll: ", tokens, " hidden rows, ", ids.size(), " ids, ", nll.size(), " outputs");
  CALDERA_CHECK(seq_len > 0 && tokens % seq_len == 0, "sequence_nll: ", tokens, " tokens are not whole sequences of ",
                seq_len);
  if (tokens == 0) return;
  std::vector<int32_t> targets(static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t)
    targets[static_cast<size_t>(t)] = t % seq_len == seq_len - 1 ? -1 : ids[static_cast<size_t>(t + 1)];
  auto normed = backend.make<float>(tokens, hidden.cols, "final normed");
  backend.nn().rms_norm(hidden, final_norm, static_cast<float>(config.rms_norm_eps), normed.view());
  const auto dev_targets = backend.upload(MatrixView<const int32_t>(targets.data(), 1, tokens), "nll targets");
  auto dev_nll = backend.make<double>(1, tokens, "token nll");
  backend.nn().token_nll(normed.cview(), lm_head, dev_targets.cview(), vocab_chunk, dev_nll.view());
  backend.download(dev_nll.cview(), MatrixView<double>(nll.data(), 1, tokens));
}

void ForwardOptions::validate() const {
  std::string problems;
  if (seq_len <= 0) problems += detail::concat(" --seq-len must be > 0 (found ", seq_len, ");");
  if (micro_batch_seqs <= 0) problems += detail::concat(" --micro-batch must be > 0 (found ", micro_batch_seqs, ");");
  if (vocab_chunk <= 0) problems += detail::concat(" --vocab-chunk must be > 0 (found ", vocab_chunk, ");");
  if (!problems.empty()) raise<ConfigError>("invalid forward options:", problems);
}

linalg::Matrix<float> embed_sequences(Backend& backend, const WeightSource& source, std::span<const int32_t> ids) {
  const LlamaConfig& config = source.config();
  auto hidden = backend.make<float>(static_cast<int64_t>(ids.size()), config.hidden_size, "activations");
  if (ids.empty()) return hidden;
  const auto table = backend.upload(source.load_embedding().cview(), "embed_tokens");
  CALDERA_CHECK(table.rows() == config.vocab_size && table.cols() == config.hidden_size, "embedding is ",
                table.rows(), "x", table.cols(), ", the config implies ", config.vocab_size, "x", config.hidden_size);
  embed_tokens(backend, table.cview(), ids, hidden.view());
  return hidden;
}

void forward_layer_batched(Backend& backend, const LlamaConfig& config, const LayerWeights& weights,
                           MatrixView<float> hidden, const ForwardOptions& options, HessianTaps* taps) {
  const int64_t rows_per_batch = options.micro_batch_seqs * options.seq_len;
  for (int64_t r0 = 0; r0 < hidden.rows; r0 += rows_per_batch)
    forward_layer(backend, config, weights, hidden.rows_range(r0, std::min(rows_per_batch, hidden.rows - r0)),
                  options.seq_len, taps);
}

void collect_layer_taps(Backend& backend, const LlamaConfig& config, const LayerWeights& weights,
                        MatrixView<const float> hidden, const ForwardOptions& options, HessianTaps& taps) {
  const int64_t rows_per_batch = options.micro_batch_seqs * options.seq_len;
  for (int64_t r0 = 0; r0 < hidden.rows; r0 += rows_per_batch) {
    const int64_t rows = std::min(rows_per_batch, hidden.rows - r0);
    auto scratch = backend.make<float>(rows, hidden.cols, "forward.tap_copy");
    backend.copy(hidden.rows_range(r0, rows), scratch.view());
    forward_layer(backend, config, weights, scratch.view(), options.seq_len, &taps);
  }
}

std::vector<double> final_token_nll(Backend& backend, const WeightSource& source, MatrixView<const float> hidden,
                                    std::span<const int32_t> ids, const ForwardOptions& options) {
  const LlamaConfig& config = source.config();
  std::vector<double> nll(static_cast<size_t>(hidden.rows));
  if (hidden.rows == 0) return nll;
  const auto final_norm = backend.upload(source.load_final_norm().cview(), "model.norm");
  const auto lm_head = backend.upload(source.load_lm_head().cview(), "lm_head");
  CALDERA_CHECK(lm_head.rows() == config.vocab_size && lm_head.cols() == config.hidden_size, "lm_head is ",
                lm_head.rows(), "x", lm_head.cols(), ", the config implies ", config.vocab_size, "x",
                config.hidden_size);
  const int64_t rows_per_batch = options.micro_batch_seqs * options.seq_len;
  for (int64_t r0 = 0; r0 < hidden.rows; r0 += rows_per_batch) {
    const int64_t n = std::min(rows_per_batch, hidden.rows - r0);
    sequence_nll(backend, config, hidden.rows_range(r0, n), final_norm.cview(), lm_head.cview(),
                 ids.subspan(static_cast<size_t>(r0), static_cast<size_t>(n)), options.seq_len, options.vocab_chunk,
                 std::span<double>(nll).subspan(static_cast<size_t>(r0), static_cast<size_t>(n)));
  }
  return nll;
}

}  // namespace caldera::model
