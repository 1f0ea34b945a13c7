#include "pipeline/compressed_weight_source.h"

#include <cstring>

#include "algo/method_factory.h"
#include "core/error.h"
#include "io/hf_config.h"
#include "pipeline/export.h"
#include "pipeline/hf_weight_source.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {

CompressedWeightSource::CompressedWeightSource(const fs::path& dir, std::unique_ptr<algo::Method> method,
                                               linalg::Backend& backend)
    : dir_(dir),
      config_(io::read_hf_config(dir / "config.json")),
      weights_(io::SafetensorsSet::open(dir)),
      method_(std::move(method)),
      backend_(backend) {
  storage_dtype_ = weights_.info("model.embed_tokens.weight").dtype;
}

TensorMap CompressedWeightSource::unit_tensors(int64_t layer, model::LinearKind kind) const {
  const std::string prefix = "model.layers." + std::to_string(layer) + "." + std::string(model::hf_module_name(kind)) + ".";
  TensorMap tensors;
  for (const std::string& name : weights_.tensor_names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string key = name.substr(prefix.size());
    if (key == "bias") continue;
    const io::TensorInfo& info = weights_.info(name);
    Tensor t;
    t.dtype = info.dtype;
    t.shape = info.shape;
    const auto bytes = weights_.bytes(name);
    t.bytes.resize(bytes.size());
    std::memcpy(t.bytes.data(), bytes.data(), bytes.size());
    tensors.emplace(key, std::move(t));
  }
  if (tensors.empty())
    raise<IoError>(dir_.string(), ": no compressed tensors for ", prefix.substr(0, prefix.size() - 1),
                   " (is this a caldera-dist output directory?)");
  return tensors;
}

model::LayerHostWeights CompressedWeightSource::load_layer(int64_t layer) const {
  model::LayerHostWeights w;
  for (model::LinearKind kind : model::kAllLinearKinds) {
    w[kind] = method_->reconstruct(backend_, unit_tensors(layer, kind));
    if (config_.has_bias(kind)) w.bias[static_cast<size_t>(kind)] = weights_.read_f32(model::linear_bias_name(layer, kind));
  }
  w.input_norm = weights_.read_f32(model::norm_weight_name(layer, model::NormKind::kInput));
  w.post_attention_norm = weights_.read_f32(model::norm_weight_name(layer, model::NormKind::kPostAttention));
  model::check_layer_shapes(config_, layer, w);
  return w;
}

HostMatrix<float> CompressedWeightSource::load_embedding() const { return weights_.read_f32("model.embed_tokens.weight"); }
HostMatrix<float> CompressedWeightSource::load_final_norm() const { return weights_.read_f32("model.norm.weight"); }
HostMatrix<float> CompressedWeightSource::load_lm_head() const {
  return weights_.read_f32(config_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
}

std::unique_ptr<model::WeightSource> open_weight_source(const fs::path& dir, linalg::Backend& backend) {
  const io::JsonValue q = read_quantization_config(dir);
  if (q.is_null()) return std::make_unique<HfWeightSource>(dir);
  const std::string where = (dir / "config.json").string();
  const io::JsonValue* quant_method = q.find("quant_method");
  if (quant_method == nullptr || !quant_method->is_string() || quant_method->as_string() != "caldera")
    raise<ConfigError>(where, ": quantization_config.quant_method is not \"caldera\"; caldera-dist reads its own "
                       "compressed models and plain Hugging Face models only");
  algo::MethodConfig config = method_config_from_quantization_config(q, where);
  return std::make_unique<CompressedWeightSource>(dir, algo::make_method(config), backend);
}

}  // namespace caldera::pipeline
