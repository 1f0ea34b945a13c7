// Hugging Face config.json -> model::LlamaConfig, for the Llama family (model_type llama, mistral,
// qwen2). Parsed once at the edge and validated all at once (style C9).
//
// Rules (the issue "Model I/O"):
// - model_type in {llama, mistral, qwen2}; hidden_act must be silu.
// - rope_theta at top level or in rope_parameters (transformers 5.x); both present must agree;
//   default 10000 when neither is given (HF's default).
// - rope_scaling: null / absent / type "default", or rope_type (legacy key: type) "llama3" with
//   factor, low_freq_factor, high_freq_factor, original_max_position_embeddings; rope_parameters
//   may carry the same. Any other type ("linear", "dynamic", "yarn", ...) is an error naming
//   `rope_scaling.rope_type` (or `.type`) and the value.
// - Biases: llama attention_bias -> q/k/v/o biases, mlp_bias -> gate/up/down biases; qwen2 always
//   has q/k/v biases (and none elsewhere); mistral has none.
// - Sliding window: mistral `sliding_window` (null or tokens) is stored; qwen2 stores it only when
//   `use_sliding_window` is true or `layer_types` holds sliding layers. Callers check their
//   sequence length with LlamaConfig::check_sequence_length.
// - num_key_value_heads defaults to num_attention_heads for llama and is required otherwise;
//   head_dim defaults to hidden_size / num_attention_heads.
// - Fields in kIgnoredHfConfigFields are known to be harmless and ignored; any other unknown field
//   is an error naming it (it may change the architecture).
// Errors: IoError if the file is missing or not a JSON object; ConfigError naming the file and
// every offending field otherwise.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <string_view>

#include "model/llama_config.h"

namespace caldera::io {

/// config.json fields that do not affect the forward pass and are ignored here. quantization_config
/// describes how the weights are stored, not the architecture: HfModel refuses the unexpected
/// tensors a quantized checkpoint holds, and pipeline::CompressedWeightSource reads caldera-dist's own.
inline constexpr std::array<std::string_view, 14> kIgnoredHfConfigFields = {
    "architectures", "_name_or_path",    "torch_dtype",  "dtype",         "transformers_version",
    "use_cache",     "initializer_range", "attention_dropout", "pretraining_tp", "pad_token_id",
    "tokenizer_class", "max_window_layers", "output_attentions", "quantization_config"};

/// Reads and validates `path` (a config.json). Throws as described in the file comment.
model::LlamaConfig read_hf_config(const std::filesystem::path& path);
/// Same from JSON text; `source` names it in messages (e.g. the file path).
model::LlamaConfig parse_hf_config(std::string_view json_text, const std::string& source);

}  // namespace caldera::io
