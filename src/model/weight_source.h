// Where the forward pass gets its weights: an interface so src/model does not depend on io. The
// pipeline implements it over io::HfModel (pipeline/hf_weight_source.h) and, later, over compressed
// and exported models (reconstructed weights).
#pragma once

#include <array>
#include <cstdint>

#include "core/dtype.h"
#include "core/matrix.h"
#include "model/llama_config.h"

namespace caldera::model {

/// fp32 host weights of one decoder layer, as Hugging Face stores them: linear (out, in) row-major
/// with y = x Wᵀ + b; norms and biases 1 × n.
struct LayerHostWeights {
  std::array<HostMatrix<float>, 7> linear;  ///< indexed by LinearKind
  std::array<HostMatrix<float>, 7> bias;    ///< empty (0×0) where config.has_bias(kind) is false
  HostMatrix<float> input_norm;             ///< 1 × hidden
  HostMatrix<float> post_attention_norm;    ///< 1 × hidden

  HostMatrix<float>& operator[](LinearKind kind) { return linear[static_cast<size_t>(kind)]; }
  const HostMatrix<float>& operator[](LinearKind kind) const { return linear[static_cast<size_t>(kind)]; }
};

/// Read-only provider of a model's weights, one tensor group at a time (a 70B model never has to
/// fit in memory). Implementations throw IoError naming the file/tensor when a read fails.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const LlamaConfig& config() const = 0;
  /// The dtype the checkpoint stores its weights in (BF16 for the bundled models; F32 for
  /// synthetic weights). The forward pass holds the RoPE frequency table in it, as transformers
  /// does (model/rope.h).
  virtual DType storage_dtype() const = 0;
  /// Decoder layer `layer` in [0, num_hidden_layers): every linear (and bias) and both norms.
  virtual LayerHostWeights load_layer(int64_t layer) const = 0;
  /// vocab_size × hidden_size.
  virtual HostMatrix<float> load_embedding() const = 0;
  /// 1 × hidden_size.
  virtual HostMatrix<float> load_final_norm() const = 0;
  /// vocab_size × hidden_size (the embedding when tied).
  virtual HostMatrix<float> load_lm_head() const = 0;
};

/// Checks that `w` has every shape `config` implies for a layer; throws Error naming the layer,
/// tensor, expected and found shapes.
void check_layer_shapes(const LlamaConfig& config, int64_t layer, const LayerHostWeights& w);

}  // namespace caldera::model
