#include "model/synthetic_weights.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace caldera::model {
namespace {

// Tensor ids of the random streams (the layer id is num_hidden_layers for model-level tensors).
constexpr uint64_t kBiasStream = 16;
constexpr uint64_t kInputNormStream = 32;
constexpr uint64_t kPostNormStream = 33;
constexpr uint64_t kEmbeddingStream = 64;
constexpr uint64_t kFinalNormStream = 65;
constexpr uint64_t kLmHeadStream = 66;

/// rows × cols of offset + scale · N(0, 1) from stream (seed, layer, tensor).
HostMatrix<float> draw(uint64_t seed, uint64_t layer, uint64_t tensor, int64_t rows, int64_t cols, double offset,
                       double scale) {
  const Rng rng = Rng(seed).stream(layer, tensor, RngPurpose::kTestData);
  HostMatrix<float> m(rows, cols);
  float* p = m.data();
#pragma omp parallel for schedule(static) if (m.size() > (1 << 16))
  for (int64_t i = 0; i < m.size(); ++i)
    p[i] = static_cast<float>(offset + scale * rng.normal(static_cast<uint64_t>(i)));
  return m;
}

}  // namespace

SyntheticWeightSource::SyntheticWeightSource(LlamaConfig config, uint64_t seed)
    : config_(std::move(config)), seed_(seed) {
  config_.validate();
}

LayerHostWeights SyntheticWeightSource::load_layer(int64_t layer) const {
  CALDERA_CHECK(layer >= 0 && layer < config_.num_hidden_layers, "layer ", layer, " outside [0, ",
                config_.num_hidden_layers, ")");
  const auto l = static_cast<uint64_t>(layer);
  LayerHostWeights w;
  for (LinearKind kind : kAllLinearKinds) {
    const LinearShape s = config_.linear_shape(kind);
    const auto k = static_cast<uint64_t>(kind);
    w[kind] = draw(seed_, l, k, s.out, s.in, 0.0, 1.0 / std::sqrt(static_cast<double>(s.in)));
    if (config_.has_bias(kind)) w.bias[k] = draw(seed_, l, kBiasStream + k, 1, s.out, 0.0, 0.1);
  }
  w.input_norm = draw(seed_, l, kInputNormStream, 1, config_.hidden_size, 1.0, 0.1);
  w.post_attention_norm = draw(seed_, l, kPostNormStream, 1, config_.hidden_size, 1.0, 0.1);
  return w;
}

HostMatrix<float> SyntheticWeightSource::load_embedding() const {
  return draw(seed_, static_cast<uint64_t>(config_.num_hidden_layers), kEmbeddingStream, config_.vocab_size,
              config_.hidden_size, 0.0, 1.0);
}

HostMatrix<float> SyntheticWeightSource::load_final_norm() const {
  return draw(seed_, static_cast<uint64_t>(config_.num_hidden_layers), kFinalNormStream, 1, config_.hidden_size, 1.0,
              0.1);
}

HostMatrix<float> SyntheticWeightSource::load_lm_head() const {
  if (config_.tie_word_embeddings) return load_embedding();
  return draw(seed_, static_cast<uint64_t>(config_.num_hidden_layers), kLmHeadStream, config_.vocab_size,
              config_.hidden_size, 0.0, 1.0 / std::sqrt(static_cast<double>(config_.hidden_size)));
}

}  // namespace caldera::model
