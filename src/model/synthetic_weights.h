// A WeightSource of deterministic random weights for tests and benchmarks at shapes whose real
// checkpoints are not available here (e.g. Llama-2-7B). The weights are NOT a trained model:
// entries are independent normals, so activations have none of a real model's structure.
#pragma once

#include <cstdint>

#include "model/weight_source.h"

namespace caldera::model {

/// Weights drawn from core::Rng(seed).stream({layer, tensor, kTestData}) (stable across runs,
/// ranks and backends): linear (out, in) ~ N(0, 1/in), so activations keep their scale through the
/// layer; norms 1 + 0.1·N(0, 1); biases 0.1·N(0, 1) where the config has them; embedding N(0, 1);
/// lm_head ~ N(0, 1/hidden) (the embedding when tied).
class SyntheticWeightSource final : public WeightSource {
 public:
  /// Throws ConfigError when config.validate() fails.
  SyntheticWeightSource(LlamaConfig config, uint64_t seed);

  const LlamaConfig& config() const override { return config_; }
  DType storage_dtype() const override { return DType::kF32; }
  LayerHostWeights load_layer(int64_t layer) const override;
  HostMatrix<float> load_embedding() const override;
  HostMatrix<float> load_final_norm() const override;
  HostMatrix<float> load_lm_head() const override;

 private:
  LlamaConfig config_;
  uint64_t seed_;
};

}  // namespace caldera::model
