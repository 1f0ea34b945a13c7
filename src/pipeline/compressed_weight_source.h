// model::WeightSource over a compressed model directory (<workdir>/output, export format
// "compressed"): untouched tensors (embedding, norms, biases, lm_head) are read as stored; each
// linear weight is rebuilt from its unit tensors ("<module>.<tensor>") by the method that wrote
// them (Method::reconstruct), so `caldera-dist eval` evaluates exactly what the output holds.
#pragma once

#include <filesystem>
#include <memory>

#include "algo/method.h"
#include "io/json_value.h"
#include "io/safetensors.h"
#include "linalg/backend.h"
#include "model/weight_source.h"

namespace caldera::pipeline {

class CompressedWeightSource final : public model::WeightSource {
 public:
  /// `method` must be the method named by the directory's quantization_config (see
  /// open_weight_source). Throws IoError / ConfigError naming the file when the directory is not a
  /// readable compressed model.
  CompressedWeightSource(const std::filesystem::path& dir, std::unique_ptr<algo::Method> method,
                         linalg::Backend& backend);

  const model::LlamaConfig& config() const override { return config_; }
  DType storage_dtype() const override { return storage_dtype_; }
  model::LayerHostWeights load_layer(int64_t layer) const override;
  HostMatrix<float> load_embedding() const override;
  HostMatrix<float> load_final_norm() const override;
  HostMatrix<float> load_lm_head() const override;

  /// The unit tensors of one linear, as written by export ("<prefix>.<name>" -> name).
  TensorMap unit_tensors(int64_t layer, model::LinearKind kind) const;
  const algo::Method& method() const { return *method_; }

 private:
  std::filesystem::path dir_;
  model::LlamaConfig config_;
  io::SafetensorsSet weights_;
  std::unique_ptr<algo::Method> method_;
  linalg::Backend& backend_;
  DType storage_dtype_ = DType::kBF16;
};

/// A WeightSource for `dir`: a compressed model when its config.json has a quantization_config
/// (the method is rebuilt from it with algo::make_method), else a Hugging Face model
/// (HfWeightSource). `backend` rebuilds compressed weights and must outlive the source.
std::unique_ptr<model::WeightSource> open_weight_source(const std::filesystem::path& dir, linalg::Backend& backend);

}  // namespace caldera::pipeline
