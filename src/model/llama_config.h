// Llama-family model configuration (Llama-2, Llama-3/3.1, Mistral, Qwen2) and Hugging Face tensor
// naming. Core-only (target caldera_model_config): parsing config.json lives in io/hf_config.h.
//
// Architecture covered: pre-norm decoder layers x -> x + Attn(RMSNorm(x)) -> x + MLP(RMSNorm(x)),
// grouped-query attention with RoPE, SwiGLU MLP down(silu(gate(x)) * up(x)); optional q/k/v biases
// (Qwen2, Llama attention_bias), o_proj bias (Llama attention_bias) and MLP biases (Llama mlp_bias).
// Linear weights are stored as HF does: (out_features, in_features), row-major, y = x Wᵀ (+ b).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace caldera::model {

enum class ModelType : uint8_t { kLlama, kMistral, kQwen2 };
/// "llama", "mistral", "qwen2" (the config.json model_type spelling).
std::string_view to_string(ModelType type) noexcept;

enum class RopeScalingType : uint8_t { kNone, kLlama3 };
std::string_view to_string(RopeScalingType type) noexcept;

/// RoPE frequency scaling. kLlama3 is Llama-3.1's piecewise rescaling of the inverse frequencies
/// (HF `_compute_llama3_parameters`); the other fields are meaningful only then.
struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

/// The seven linear layers of a decoder layer.
enum class LinearKind : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr std::array<LinearKind, 7> kAllLinearKinds = {LinearKind::kQ,    LinearKind::kK,  LinearKind::kV,
                                                              LinearKind::kO,    LinearKind::kGate, LinearKind::kUp,
                                                              LinearKind::kDown};
/// "q_proj", "k_proj", ..., "down_proj".
std::string_view to_string(LinearKind kind) noexcept;
/// HF module path inside a layer: "self_attn.q_proj", ..., "mlp.down_proj".
std::string_view hf_module_name(LinearKind kind) noexcept;

/// The four distinct linear inputs whose Hessians phase 1 collects (caldera-quipsharp spec §6.1):
/// qkv = input RMSNorm output (q, k, v), o = attention context (o), up = post-attention RMSNorm
/// output (gate, up), down = silu(gate) * up (down).
enum class HessianInput : uint8_t { kQkv, kO, kUp, kDown };
inline constexpr std::array<HessianInput, 4> kAllHessianInputs = {HessianInput::kQkv, HessianInput::kO,
                                                                  HessianInput::kUp, HessianInput::kDown};
/// "qkv", "o", "up", "down" (the spec's keys, also the HDF5 group names).
std::string_view to_string(HessianInput input) noexcept;
/// Which Hessian a linear layer's input uses (spec §6.1).
HessianInput hessian_input(LinearKind kind) noexcept;

/// The two RMSNorm weights of a decoder layer.
enum class NormKind : uint8_t { kInput, kPostAttention };

/// (out_features, in_features) of a linear weight, as stored.
struct LinearShape {
  int64_t out = 0;
  int64_t in = 0;
  friend bool operator==(const LinearShape&, const LinearShape&) = default;
};

struct LlamaConfig {
  ModelType model_type = ModelType::kLlama;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  ///< == num_attention_heads without GQA
  int64_t head_dim = 0;             ///< usually hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;  ///< lm_head shares model.embed_tokens.weight
  bool attention_bias = false;       ///< q/k/v projections have biases (Qwen2; Llama attention_bias)
  bool o_proj_bias = false;          ///< o projection has a bias (Llama attention_bias only)
  bool mlp_bias = false;             ///< gate/up/down have biases (Llama mlp_bias)
  /// Mistral/Qwen2 sliding-window attention span in tokens; nullopt: full attention. The forward
  /// pass here is full causal attention, exact only for sequences no longer than the window
  /// (check_sequence_length).
  std::optional<int64_t> sliding_window;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;

  /// Checks every field and throws ConfigError listing all problems at once (positive sizes,
  /// heads divisible by kv heads, even head_dim, rope parameters, token ids < vocab_size, ...).
  void validate() const;
  /// Throws ConfigError if `seq_len` exceeds the sliding window (where full attention would give a
  /// different answer than the model) or is not positive.
  void check_sequence_length(int64_t seq_len) const;

  int64_t q_dim() const noexcept { return num_attention_heads * head_dim; }
  int64_t kv_dim() const noexcept { return num_key_value_heads * head_dim; }
  /// Query heads per key/value head.
  int64_t kv_group_size() const noexcept { return num_attention_heads / num_key_value_heads; }
  /// (out, in) of a linear weight: q (q_dim, hidden), k/v (kv_dim, hidden), o (hidden, q_dim),
  /// gate/up (intermediate, hidden), down (hidden, intermediate).
  LinearShape linear_shape(LinearKind kind) const noexcept;
  bool has_bias(LinearKind kind) const noexcept;
  /// Dimension n of a Hessian input (the `in` of the linears that read it).
  int64_t hessian_input_dim(HessianInput input) const noexcept;
  /// Total parameter count implied by the config (embedding, lm_head unless tied, norms, linears,
  /// biases).
  int64_t num_parameters() const noexcept;
};

/// HF tensor names. `layer` in [0, num_hidden_layers).
inline constexpr std::string_view kEmbeddingName = "model.embed_tokens.weight";
inline constexpr std::string_view kFinalNormName = "model.norm.weight";
inline constexpr std::string_view kLmHeadName = "lm_head.weight";
/// "model.layers.<layer>."
std::string layer_prefix(int64_t layer);
/// "model.layers.<layer>.self_attn.q_proj.weight", ...
std::string linear_weight_name(int64_t layer, LinearKind kind);
/// "model.layers.<layer>.self_attn.q_proj.bias", ...
std::string linear_bias_name(int64_t layer, LinearKind kind);
/// "model.layers.<layer>.input_layernorm.weight" / "...post_attention_layernorm.weight".
std::string norm_weight_name(int64_t layer, NormKind kind);

/// A tensor the config implies, with its HF shape (linears 2-D (out, in), norms and biases 1-D).
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
/// Every tensor a checkpoint of this config must hold: embedding, per layer the two norms, seven
/// linears and their biases where has_bias, the final norm, and lm_head unless tied. Order: the
/// embedding, layers in order, final norm, lm_head.
std::vector<ExpectedTensor> expected_tensors(const LlamaConfig& config);

}  // namespace caldera::model
