#include "io/hf_model.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "io/hf_config.h"
#include "io/sha256.h"

namespace caldera::io {
namespace {

constexpr std::size_t kMaxListedProblems = 20;

bool is_float_dtype(DType t) {
  return t == DType::kBF16 || t == DType::kF16 || t == DType::kF32 || t == DType::kF64;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

ModelFingerprint make_fingerprint(const std::filesystem::path& dir, const SafetensorsSet& weights) {
  ModelFingerprint fp;
  auto add_json = [&](const std::filesystem::path& p) {
    fp.files.push_back({p.filename().string(), static_cast<int64_t>(std::filesystem::file_size(p)), sha256_file(p)});
  };
  add_json(dir / "config.json");
  if (!weights.index_file().empty()) add_json(weights.index_file());
  for (std::size_t i = 0; i < weights.files().size(); ++i) {
    const SafetensorsFile& f = weights.file(i);
    fp.files.push_back({f.path().filename().string(), f.file_size_bytes(), sha256_hex(f.header_bytes())});
  }
  std::sort(fp.files.begin(), fp.files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return fp;
}

std::string dims_summary(const model::LlamaConfig& c) {
  return caldera::detail::concat("hidden_size=", c.hidden_size, ", intermediate_size=", c.intermediate_size,
                        ", heads=", c.num_attention_heads, ", kv_heads=", c.num_key_value_heads,
                        ", head_dim=", c.head_dim, ", vocab_size=", c.vocab_size);
}

}  // namespace

std::string ModelFingerprint::to_string() const {
  std::string s;
  for (const auto& f : files) s += f.name + " " + std::to_string(f.size_bytes) + " " + f.sha256 + "\n";
  return s;
}

std::string ModelFingerprint::digest() const { return sha256_hex(to_string()); }

ModelFingerprint fingerprint_model_dir(const std::filesystem::path& dir) {
  const SafetensorsSet weights = SafetensorsSet::open(dir);
  return make_fingerprint(dir, weights);
}

HfModel::HfModel(std::filesystem::path dir, model::LlamaConfig config, SafetensorsSet weights)
    : dir_(std::move(dir)), config_(std::move(config)), weights_(std::move(weights)) {}

HfModel HfModel::open(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) raise<IoError>("model directory '", dir.string(), "' does not exist");
  model::LlamaConfig config = read_hf_config(dir / "config.json");
  SafetensorsSet weights = SafetensorsSet::open(dir);
  weights.open_all();

  std::vector<std::string> problems;
  auto add_problem = [&](std::string p) {
    if (problems.size() < kMaxListedProblems) problems.push_back(std::move(p));
  };
  std::set<std::string, std::less<>> expected_names;
  for (const auto& e : model::expected_tensors(config)) {
    expected_names.insert(e.name);
    if (!weights.contains(e.name)) {
      add_problem(caldera::detail::concat("tensor '", e.name, "' with shape ", shape_to_string(e.shape),
                                 " is missing (implied by config.json)"));
      continue;
    }
    const TensorInfo& t = weights.info(e.name);
    if (t.shape != e.shape)
      add_problem(caldera::detail::concat("tensor '", e.name, "' in '", t.file.filename().string(), "' has shape ",
                                 t.shape_string(), "; config.json implies ", shape_to_string(e.shape)));
    if (!is_float_dtype(t.dtype))
      add_problem(caldera::detail::concat("tensor '", e.name, "' in '", t.file.filename().string(), "' has dtype ",
                                 dtype_name(t.dtype), "; expected BF16, F16, F32 or F64"));
  }
  for (const auto& name : weights.tensor_names()) {
    if (expected_names.contains(name)) continue;
    if (ends_with(name, ".rotary_emb.inv_freq")) continue;
    if (config.tie_word_embeddings && name == model::kLmHeadName) {
      log_debug("model '", dir.string(), "': ignoring stored lm_head.weight (tie_word_embeddings is true)");
      continue;
    }
    add_problem(caldera::detail::concat("unexpected tensor '", name, "' in '", weights.info(name).file.filename().string(),
                               "' (not implied by config.json: the architecture differs)"));
  }
  if (!problems.empty()) {
    std::string msg = caldera::detail::concat("model '", dir.string(), "': the weights contradict config.json (",
                                     dims_summary(config), ", layers=", config.num_hidden_layers,
                                     ", tie_word_embeddings=", config.tie_word_embeddings ? "true" : "false", "):");
    for (const auto& p : problems) msg += "\n  - " + p;
    if (problems.size() == kMaxListedProblems) msg += "\n  - ... (further problems not listed)";
    throw IoError(msg);
  }

  HfModel m(dir, std::move(config), std::move(weights));
  m.fingerprint_ = make_fingerprint(dir, m.weights_);
  return m;
}

DType HfModel::storage_dtype() const { return weights_.info(model::kEmbeddingName).dtype; }

void HfModel::check_layer(int64_t layer) const {
  CALDERA_CHECK(layer >= 0 && layer < config_.num_hidden_layers, "layer ", layer, " outside [0, ",
                config_.num_hidden_layers, ") of model '", dir_.string(), "'");
}

HostMatrix<float> HfModel::read_linear(int64_t layer, model::LinearKind kind) const {
  check_layer(layer);
  return weights_.read_f32(model::linear_weight_name(layer, kind));
}

HostMatrix<float> HfModel::read_linear_bias(int64_t layer, model::LinearKind kind) const {
  check_layer(layer);
  CALDERA_CHECK(config_.has_bias(kind), "model '", dir_.string(), "' has no ", model::to_string(kind), " bias");
  return weights_.read_f32(model::linear_bias_name(layer, kind));
}

HostMatrix<float> HfModel::read_norm(int64_t layer, model::NormKind kind) const {
  check_layer(layer);
  return weights_.read_f32(model::norm_weight_name(layer, kind));
}

HostMatrix<float> HfModel::read_embedding() const { return weights_.read_f32(model::kEmbeddingName); }
HostMatrix<float> HfModel::read_final_norm() const { return weights_.read_f32(model::kFinalNormName); }
HostMatrix<float> HfModel::read_lm_head() const {
  return weights_.read_f32(config_.tie_word_embeddings ? model::kEmbeddingName : model::kLmHeadName);
}
HostMatrix<float> HfModel::read_tensor(std::string_view name) const { return weights_.read_f32(name); }

}  // namespace caldera::io
