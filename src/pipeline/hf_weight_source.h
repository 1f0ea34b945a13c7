// model::WeightSource over a Hugging Face model directory (io::HfModel): weights are read one tensor
// at a time from the memory-mapped safetensors files and converted to fp32 (bf16/fp16/fp32 on disk).
#pragma once

#include <filesystem>

#include "io/hf_model.h"
#include "model/weight_source.h"

namespace caldera::pipeline {

class HfWeightSource final : public model::WeightSource {
 public:
  /// Opens and verifies `dir` (io::HfModel::open: throws IoError / ConfigError naming the file,
  /// tensor or field).
  explicit HfWeightSource(const std::filesystem::path& dir) : model_(io::HfModel::open(dir)) {}
  explicit HfWeightSource(io::HfModel model) : model_(std::move(model)) {}

  const model::LlamaConfig& config() const override { return model_.config(); }
  DType storage_dtype() const override { return model_.storage_dtype(); }
  /// The seven linears, their biases where the config has them, and both norms of `layer`.
  model::LayerHostWeights load_layer(int64_t layer) const override;
  /// load_layer() with the seven linear weights left empty (biases and norms only), for sources
  /// that rebuild the linears themselves (pipeline/update_pass.h).
  model::LayerHostWeights load_layer_without_linears(int64_t layer) const;
  HostMatrix<float> load_embedding() const override { return model_.read_embedding(); }
  HostMatrix<float> load_final_norm() const override { return model_.read_final_norm(); }
  HostMatrix<float> load_lm_head() const override { return model_.read_lm_head(); }

  const io::HfModel& model() const noexcept { return model_; }

 private:
  io::HfModel model_;
};

}  // namespace caldera::pipeline
