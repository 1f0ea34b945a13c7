#include "pipeline/hf_weight_source.h"

namespace caldera::pipeline {

model::LayerHostWeights HfWeightSource::load_layer(int64_t layer) const {
  model::LayerHostWeights w = load_layer_without_linears(layer);
  for (model::LinearKind kind : model::kAllLinearKinds) w[kind] = model_.read_linear(layer, kind);
  return w;
}

model::LayerHostWeights HfWeightSource::load_layer_without_linears(int64_t layer) const {
  model::LayerHostWeights w;
  for (model::LinearKind kind : model::kAllLinearKinds)
    if (config().has_bias(kind)) w.bias[static_cast<size_t>(kind)] = model_.read_linear_bias(layer, kind);
  w.input_norm = model_.read_norm(layer, model::NormKind::kInput);
  w.post_attention_norm = model_.read_norm(layer, model::NormKind::kPostAttention);
  return w;
}

}  // namespace caldera::pipeline
