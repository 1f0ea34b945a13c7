#include "io/hf_config.h"

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "core/error.h"
#include "io/json_util.h"

namespace caldera::io {
namespace {

using nlohmann::json;
using model::LlamaConfig;
using model::ModelType;
using model::RopeScaling;
using model::RopeScalingType;

/// Reads typed fields from one JSON object, collecting problems instead of stopping at the first.
class Fields {
 public:
  Fields(const json& object, std::string prefix, std::vector<std::string>& problems)
      : object_(object), prefix_(std::move(prefix)), problems_(problems) {}

  bool has(const std::string& key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  void problem(const std::string& key, const std::string& what) {
    problems_.push_back("field '" + prefix_ + key + "': " + what);
  }

  std::optional<int64_t> integer(const std::string& key) {
    if (!has(key)) return std::nullopt;
    const json& v = object_.at(key);
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      problem(key, "integer too large: " + v.dump());
      return std::nullopt;
    }
    if (!v.is_number_integer()) {
      problem(key, "expected an integer, found " + detail::json_excerpt(v));
      return std::nullopt;
    }
    return v.get<int64_t>();
  }
  std::optional<double> number(const std::string& key) {
    if (!has(key)) return std::nullopt;
    const json& v = object_.at(key);
    if (!v.is_number()) {
      problem(key, "expected a number, found " + detail::json_excerpt(v));
      return std::nullopt;
    }
    return v.get<double>();
  }
  std::optional<bool> boolean(const std::string& key) {
    if (!has(key)) return std::nullopt;
    const json& v = object_.at(key);
    if (!v.is_boolean()) {
      problem(key, "expected true or false, found " + detail::json_excerpt(v));
      return std::nullopt;
    }
    return v.get<bool>();
  }
  std::optional<std::string> string(const std::string& key) {
    if (!has(key)) return std::nullopt;
    const json& v = object_.at(key);
    if (!v.is_string()) {
      problem(key, "expected a string, found " + detail::json_excerpt(v));
      return std::nullopt;
    }
    return v.get<std::string>();
  }
  int64_t required_integer(const std::string& key) {
    if (!has(key)) {
      problem(key, "missing (required)");
      return 0;
    }
    return integer(key).value_or(0);
  }

 private:
  const json& object_;
  std::string prefix_;
  std::vector<std::string>& problems_;
};

/// Parses a rope_scaling object, or the scaling part of rope_parameters. Returns nullopt and adds a
/// problem if it is malformed or unsupported. `name` is "rope_scaling" or "rope_parameters".
std::optional<RopeScaling> parse_rope_scaling(const json& v, const std::string& name, std::vector<std::string>& problems) {
  if (v.is_null()) return RopeScaling{};
  if (!v.is_object()) {
    problems.push_back("field '" + name + "': expected an object or null, found " + detail::json_excerpt(v));
    return std::nullopt;
  }
  Fields f(v, name + ".", problems);
  std::string type_key = v.contains("rope_type") ? "rope_type" : "type";
  // rope_parameters without a type is plain RoPE (it may carry only rope_theta).
  const auto type = !v.contains(type_key) && name == "rope_parameters" ? std::optional<std::string>("default")
                                                                        : f.string(type_key);
  if (!type) {
    if (!v.contains(type_key)) f.problem("rope_type", "missing (expected \"default\" or \"llama3\")");
    return std::nullopt;
  }
  std::set<std::string> allowed = {"rope_type", "type", "rope_theta"};
  RopeScaling s;
  if (*type == "default") {
    s.type = RopeScalingType::kNone;
  } else if (*type == "llama3") {
    s.type = RopeScalingType::kLlama3;
    allowed.insert({"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"});
    for (const char* key : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      if (!f.has(key)) f.problem(key, "missing (required for rope_type llama3)");
    s.factor = f.number("factor").value_or(s.factor);
    s.low_freq_factor = f.number("low_freq_factor").value_or(s.low_freq_factor);
    s.high_freq_factor = f.number("high_freq_factor").value_or(s.high_freq_factor);
    s.original_max_position_embeddings =
        f.integer("original_max_position_embeddings").value_or(s.original_max_position_embeddings);
  } else {
    f.problem(type_key, "unsupported RoPE scaling \"" + *type +
                            "\"; supported: none (null or \"default\") and \"llama3\"");
    return std::nullopt;
  }
  for (const auto& [key, value] : v.items())
    if (!allowed.contains(key)) f.problem(key, "unsupported field for rope_type \"" + *type + "\"");
  return s;
}

bool same_scaling(const RopeScaling& a, const RopeScaling& b) {
  if (a.type != b.type) return false;
  if (a.type == RopeScalingType::kNone) return true;
  return a.factor == b.factor && a.low_freq_factor == b.low_freq_factor && a.high_freq_factor == b.high_freq_factor &&
         a.original_max_position_embeddings == b.original_max_position_embeddings;
}

}  // namespace

model::LlamaConfig parse_hf_config(std::string_view json_text, const std::string& source) {
  const json root = detail::parse_json_strict(json_text, "config '" + source + "'");
  if (!root.is_object())
    raise<IoError>("config '", source, "': expected a JSON object, found ", detail::json_excerpt(root));

  std::vector<std::string> problems;
  Fields f(root, "", problems);
  auto fail = [&]() {
    std::string msg = caldera::detail::concat("config '", source, "': ", problems.size(), " problem",
                                     problems.size() == 1 ? "" : "s", ":");
    for (const auto& p : problems) msg += "\n  - " + p;
    throw ConfigError(msg);
  };

  LlamaConfig c;
  const auto model_type = f.string("model_type");
  if (!model_type) {
    if (!f.has("model_type")) f.problem("model_type", "missing (expected llama, mistral or qwen2)");
    fail();
  }
  if (*model_type == "llama")
    c.model_type = ModelType::kLlama;
  else if (*model_type == "mistral")
    c.model_type = ModelType::kMistral;
  else if (*model_type == "qwen2")
    c.model_type = ModelType::kQwen2;
  else {
    f.problem("model_type", "unsupported architecture \"" + *model_type + "\"; supported: llama, mistral, qwen2");
    fail();
  }
  const bool llama = c.model_type == ModelType::kLlama;
  const bool mistral = c.model_type == ModelType::kMistral;
  const bool qwen2 = c.model_type == ModelType::kQwen2;

  std::set<std::string> handled = {"model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                                   "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
                                   "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters",
                                   "max_position_embeddings", "tie_word_embeddings", "attention_bias", "mlp_bias",
                                   "sliding_window", "use_sliding_window", "layer_types", "bos_token_id",
                                   "eos_token_id", "hidden_act"};
  for (const auto& [key, value] : root.items()) {
    if (handled.contains(key)) continue;
    if (std::find(kIgnoredHfConfigFields.begin(), kIgnoredHfConfigFields.end(), key) != kIgnoredHfConfigFields.end())
      continue;
    f.problem(key, "unsupported field (not known to be harmless for " + *model_type + "; it may change the model)");
  }

  c.hidden_size = f.required_integer("hidden_size");
  c.intermediate_size = f.required_integer("intermediate_size");
  c.num_hidden_layers = f.required_integer("num_hidden_layers");
  c.num_attention_heads = f.required_integer("num_attention_heads");
  c.vocab_size = f.required_integer("vocab_size");
  if (f.has("num_key_value_heads"))
    c.num_key_value_heads = f.integer("num_key_value_heads").value_or(0);
  else if (llama)
    c.num_key_value_heads = c.num_attention_heads;
  else
    f.problem("num_key_value_heads", "missing (required for " + *model_type + ")");
  if (f.has("head_dim")) {
    c.head_dim = f.integer("head_dim").value_or(0);
  } else if (c.num_attention_heads > 0) {
    if (c.hidden_size % c.num_attention_heads != 0)
      f.problem("head_dim", caldera::detail::concat("missing, and hidden_size ", c.hidden_size,
                                           " is not a multiple of num_attention_heads ", c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.rms_norm_eps = f.number("rms_norm_eps").value_or(1e-6);
  c.max_position_embeddings =
      f.integer("max_position_embeddings").value_or(llama ? 2048 : mistral ? 4096 * 32 : 32768);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(false);

  if (const auto act = f.string("hidden_act"); act && *act != "silu")
    f.problem("hidden_act", "unsupported activation \"" + *act + "\"; expected \"silu\"");

  // Biases.
  const auto attention_bias = f.boolean("attention_bias");
  const auto mlp_bias = f.boolean("mlp_bias");
  if (llama) {
    c.attention_bias = c.o_proj_bias = attention_bias.value_or(false);
    c.mlp_bias = mlp_bias.value_or(false);
  } else if (qwen2) {
    c.attention_bias = true;
    if (attention_bias && !*attention_bias)
      f.problem("attention_bias", "qwen2 always has q/k/v biases; false is not supported");
    if (mlp_bias && *mlp_bias) f.problem("mlp_bias", "qwen2 has no MLP biases; true is not supported");
  } else {
    if (attention_bias && *attention_bias) f.problem("attention_bias", "mistral has no attention biases; true is not supported");
    if (mlp_bias && *mlp_bias) f.problem("mlp_bias", "mistral has no MLP biases; true is not supported");
  }

  // Sliding window.
  const auto window = f.integer("sliding_window");
  if (llama) {
    if (window) f.problem("sliding_window", "llama has no sliding-window attention; expected null or absent");
  } else if (mistral) {
    c.sliding_window = window;
  } else {
    bool sliding = f.boolean("use_sliding_window").value_or(false);
    if (f.has("layer_types")) {
      const json& types = root.at("layer_types");
      if (!types.is_array()) {
        f.problem("layer_types", "expected an array, found " + detail::json_excerpt(types));
      } else {
        for (const json& t : types) {
          if (t == "sliding_attention")
            sliding = true;
          else if (t != "full_attention")
            f.problem("layer_types", "unsupported layer type " + detail::json_excerpt(t) +
                                         "; expected full_attention or sliding_attention");
        }
      }
    }
    if (sliding) {
      if (!window) f.problem("sliding_window", "missing while sliding-window attention is enabled");
      c.sliding_window = window;
    }
  }
  if (!qwen2 && f.has("use_sliding_window")) f.problem("use_sliding_window", "only qwen2 configs have this field");

  // RoPE: theta and scaling, from the legacy keys and/or rope_parameters.
  std::optional<double> theta_top = f.number("rope_theta");
  std::optional<double> theta_params;
  std::optional<RopeScaling> scaling_legacy, scaling_params;
  if (root.contains("rope_scaling")) scaling_legacy = parse_rope_scaling(root.at("rope_scaling"), "rope_scaling", problems);
  if (f.has("rope_parameters")) {
    const json& params = root.at("rope_parameters");
    scaling_params = parse_rope_scaling(params, "rope_parameters", problems);
    if (params.is_object()) theta_params = Fields(params, "rope_parameters.", problems).number("rope_theta");
  }
  if (theta_top && theta_params && *theta_top != *theta_params)
    f.problem("rope_theta", caldera::detail::concat(*theta_top, " contradicts rope_parameters.rope_theta ", *theta_params));
  c.rope_theta = theta_params.value_or(theta_top.value_or(10000.0));
  if (scaling_legacy && scaling_params && scaling_legacy->type != RopeScalingType::kNone &&
      scaling_params->type != RopeScalingType::kNone && !same_scaling(*scaling_legacy, *scaling_params))
    f.problem("rope_scaling", "contradicts rope_parameters");
  if (scaling_params && scaling_params->type != RopeScalingType::kNone)
    c.rope_scaling = *scaling_params;
  else if (scaling_legacy)
    c.rope_scaling = *scaling_legacy;

  // Special tokens: bos an integer or null; eos an integer, a list of integers, or null.
  c.bos_token_id = f.integer("bos_token_id");
  if (f.has("eos_token_id")) {
    const json& eos = root.at("eos_token_id");
    if (eos.is_array()) {
      for (const json& e : eos) {
        if (e.is_number_integer())
          c.eos_token_ids.push_back(e.get<int64_t>());
        else
          f.problem("eos_token_id", "expected integers, found " + detail::json_excerpt(e));
      }
    } else if (const auto id = f.integer("eos_token_id")) {
      c.eos_token_ids.push_back(*id);
    }
  }

  if (!problems.empty()) fail();
  try {
    c.validate();
  } catch (const ConfigError& e) {
    raise<ConfigError>("config '", source, "': ", e.what());
  }
  return c;
}

model::LlamaConfig read_hf_config(const std::filesystem::path& path) {
  return parse_hf_config(detail::read_small_file(path, std::size_t{16} << 20), path.string());
}

}  // namespace caldera::io
