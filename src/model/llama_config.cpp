#include "model/llama_config.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace caldera::model {

std::string_view to_string(ModelType type) noexcept {
  switch (type) {
    case ModelType::kLlama: return "llama";
    case ModelType::kMistral: return "mistral";
    case ModelType::kQwen2: return "qwen2";
  }
  return "?";
}

std::string_view to_string(RopeScalingType type) noexcept {
  switch (type) {
    case RopeScalingType::kNone: return "none";
    case RopeScalingType::kLlama3: return "llama3";
  }
  return "?";
}

std::string_view to_string(LinearKind kind) noexcept {
  switch (kind) {
    case LinearKind::kQ: return "q_proj";
    case LinearKind::kK: return "k_proj";
    case LinearKind::kV: return "v_proj";
    case LinearKind::kO: return "o_proj";
    case LinearKind::kGate: return "gate_proj";
    case LinearKind::kUp: return "up_proj";
    case LinearKind::kDown: return "down_proj";
  }
  return "?";
}

std::string_view hf_module_name(LinearKind kind) noexcept {
  switch (kind) {
    case LinearKind::kQ: return "self_attn.q_proj";
    case LinearKind::kK: return "self_attn.k_proj";
    case LinearKind::kV: return "self_attn.v_proj";
    case LinearKind::kO: return "self_attn.o_proj";
    case LinearKind::kGate: return "mlp.gate_proj";
    case LinearKind::kUp: return "mlp.up_proj";
    case LinearKind::kDown: return "mlp.down_proj";
  }
  return "?";
}

std::string_view to_string(HessianInput input) noexcept {
  switch (input) {
    case HessianInput::kQkv: return "qkv";
    case HessianInput::kO: return "o";
    case HessianInput::kUp: return "up";
    case HessianInput::kDown: return "down";
  }
  return "?";
}

HessianInput hessian_input(LinearKind kind) noexcept {
  switch (kind) {
    case LinearKind::kQ:
    case LinearKind::kK:
    case LinearKind::kV: return HessianInput::kQkv;
    case LinearKind::kO: return HessianInput::kO;
    case LinearKind::kGate:
    case LinearKind::kUp: return HessianInput::kUp;
    case LinearKind::kDown: return HessianInput::kDown;
  }
  return HessianInput::kQkv;
}

void LlamaConfig::validate() const {
  std::vector<std::string> problems;
  auto positive = [&](const char* field, int64_t v) {
    if (v <= 0) problems.push_back(detail::concat(field, " must be > 0, found ", v));
  };
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("vocab_size", vocab_size);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads > 0 && num_key_value_heads > 0 && num_attention_heads % num_key_value_heads != 0)
    problems.push_back(detail::concat("num_attention_heads (", num_attention_heads,
                                      ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")"));
  if (head_dim > 0 && head_dim % 2 != 0) problems.push_back(detail::concat("head_dim must be even for RoPE, found ", head_dim));
  if (!(std::isfinite(rms_norm_eps) && rms_norm_eps > 0))
    problems.push_back(detail::concat("rms_norm_eps must be finite and > 0, found ", rms_norm_eps));
  if (!(std::isfinite(rope_theta) && rope_theta > 0))
    problems.push_back(detail::concat("rope_theta must be finite and > 0, found ", rope_theta));
  if (rope_scaling.type == RopeScalingType::kLlama3) {
    const RopeScaling& r = rope_scaling;
    if (!(std::isfinite(r.factor) && r.factor > 0))
      problems.push_back(detail::concat("rope_scaling.factor must be > 0, found ", r.factor));
    if (!(std::isfinite(r.low_freq_factor) && r.low_freq_factor > 0))
      problems.push_back(detail::concat("rope_scaling.low_freq_factor must be > 0, found ", r.low_freq_factor));
    if (!(std::isfinite(r.high_freq_factor) && r.high_freq_factor > r.low_freq_factor))
      problems.push_back(detail::concat("rope_scaling.high_freq_factor must exceed low_freq_factor (",
                                        r.low_freq_factor, "), found ", r.high_freq_factor));
    if (r.original_max_position_embeddings <= 0)
      problems.push_back(detail::concat("rope_scaling.original_max_position_embeddings must be > 0, found ",
                                        r.original_max_position_embeddings));
  }
  if (sliding_window && *sliding_window <= 0)
    problems.push_back(detail::concat("sliding_window must be > 0 or null, found ", *sliding_window));
  if (bos_token_id && (*bos_token_id < 0 || *bos_token_id >= vocab_size))
    problems.push_back(detail::concat("bos_token_id must be in [0, vocab_size=", vocab_size, "), found ", *bos_token_id));
  for (int64_t eos : eos_token_ids)
    if (eos < 0 || eos >= vocab_size)
      problems.push_back(detail::concat("eos_token_id must be in [0, vocab_size=", vocab_size, "), found ", eos));
  if (problems.empty()) return;
  std::string msg = detail::concat("invalid ", to_string(model_type), " model configuration (", problems.size(),
                                   " problem", problems.size() == 1 ? "" : "s", "):");
  for (const auto& p : problems) msg += "\n  - " + p;
  throw ConfigError(msg);
}

void LlamaConfig::check_sequence_length(int64_t seq_len) const {
  if (seq_len <= 0) raise<ConfigError>("sequence length must be > 0, found ", seq_len);
  if (sliding_window && seq_len > *sliding_window)
    raise<ConfigError>("sequence length ", seq_len, " exceeds the model's sliding_window of ", *sliding_window,
                       " tokens; this implementation uses full causal attention, which is exact only up to "
                       "the window: use --seq-len <= ",
                       *sliding_window);
}

LinearShape LlamaConfig::linear_shape(LinearKind kind) const noexcept {
  switch (kind) {
    case LinearKind::kQ: return {q_dim(), hidden_size};
    case LinearKind::kK:
    case LinearKind::kV: return {kv_dim(), hidden_size};
    case LinearKind::kO: return {hidden_size, q_dim()};
    case LinearKind::kGate:
    case LinearKind::kUp: return {intermediate_size, hidden_size};
    case LinearKind::kDown: return {hidden_size, intermediate_size};
  }
  return {};
}

bool LlamaConfig::has_bias(LinearKind kind) const noexcept {
  switch (kind) {
    case LinearKind::kQ:
    case LinearKind::kK:
    case LinearKind::kV: return attention_bias;
    case LinearKind::kO: return o_proj_bias;
    case LinearKind::kGate:
    case LinearKind::kUp:
    case LinearKind::kDown: return mlp_bias;
  }
  return false;
}

int64_t LlamaConfig::hessian_input_dim(HessianInput input) const noexcept {
  switch (input) {
    case HessianInput::kQkv: return linear_shape(LinearKind::kQ).in;
    case HessianInput::kO: return linear_shape(LinearKind::kO).in;
    case HessianInput::kUp: return linear_shape(LinearKind::kUp).in;
    case HessianInput::kDown: return linear_shape(LinearKind::kDown).in;
  }
  return 0;
}

int64_t LlamaConfig::num_parameters() const noexcept {
  int64_t total = 0;
  for (const auto& t : expected_tensors(*this)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    total += n;
  }
  return total;
}

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

std::string linear_weight_name(int64_t layer, LinearKind kind) {
  return layer_prefix(layer) + std::string(hf_module_name(kind)) + ".weight";
}

std::string linear_bias_name(int64_t layer, LinearKind kind) {
  return layer_prefix(layer) + std::string(hf_module_name(kind)) + ".bias";
}

std::string norm_weight_name(int64_t layer, NormKind kind) {
  return layer_prefix(layer) + (kind == NormKind::kInput ? "input_layernorm.weight" : "post_attention_layernorm.weight");
}

std::vector<ExpectedTensor> expected_tensors(const LlamaConfig& c) {
  std::vector<ExpectedTensor> out;
  out.push_back({std::string(kEmbeddingName), {c.vocab_size, c.hidden_size}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    out.push_back({norm_weight_name(l, NormKind::kInput), {c.hidden_size}});
    out.push_back({norm_weight_name(l, NormKind::kPostAttention), {c.hidden_size}});
    for (LinearKind k : kAllLinearKinds) {
      const LinearShape s = c.linear_shape(k);
      out.push_back({linear_weight_name(l, k), {s.out, s.in}});
      if (c.has_bias(k)) out.push_back({linear_bias_name(l, k), {s.out}});
    }
  }
  out.push_back({std::string(kFinalNormName), {c.hidden_size}});
  if (!c.tie_word_embeddings) out.push_back({std::string(kLmHeadName), {c.vocab_size, c.hidden_size}});
  return out;
}

}  // namespace caldera::model
