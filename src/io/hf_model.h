// A Hugging Face Llama-family model directory: config.json + safetensors weights (one file or
// shards with model.safetensors.index.json), checked against each other at open and read one
// tensor at a time as fp32 (memory-mapped: a 70B model is read layer by layer, never whole).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/matrix.h"
#include "io/safetensors.h"
#include "model/llama_config.h"

namespace caldera::io {

/// Identity of a model's files, cheap to compute (no weight bytes are read): for the run's resume
/// check (DESIGN §3). File names are relative to the model directory, so moving it keeps the
/// fingerprint.
struct ModelFingerprint {
  struct File {
    std::string name;           ///< e.g. "model-00001-of-00002.safetensors"
    int64_t size_bytes = 0;
    std::string sha256;         ///< of the safetensors JSON header; of the whole file for JSON files
    friend bool operator==(const File&, const File&) = default;
  };
  std::vector<File> files;      ///< config.json, the index (if any), every shard; sorted by name

  /// One line per file: "<name> <size_bytes> <sha256>\n" (stored in run.json, shown in diffs).
  std::string to_string() const;
  /// SHA-256 of to_string().
  std::string digest() const;
  friend bool operator==(const ModelFingerprint&, const ModelFingerprint&) = default;
};

/// An opened, verified model directory. Move-only; const members are thread-safe.
///
/// open() checks that every tensor the config implies (model::expected_tensors) exists with exactly
/// that shape and a floating dtype (BF16, F16, F32, F64), and that the files hold no other tensors:
/// an unexpected tensor is an error, because it means the architecture differs from what the config
/// describes (e.g. Qwen3's q_norm, biases the config does not declare). Two exceptions are ignored:
/// rotary_emb.inv_freq buffers (stored by some older Llama-2 conversions; recomputed from
/// rope_theta) and lm_head.weight when the embeddings are tied (HF ignores it too).
class HfModel {
 public:
  /// Reads `dir`/config.json (see io/hf_config.h) and the weights, opens every shard header and
  /// cross-checks them. Throws IoError (files, tensors: names the file, tensor, expected and found
  /// shape, listing all mismatches at once) or ConfigError (config.json contents).
  static HfModel open(const std::filesystem::path& dir);

  const model::LlamaConfig& config() const noexcept { return config_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  const SafetensorsSet& weights() const noexcept { return weights_; }
  const ModelFingerprint& fingerprint() const noexcept { return fingerprint_; }
  /// Dtype of the embedding on disk (the model's storage dtype, e.g. BF16).
  DType storage_dtype() const;

  /// Linear weight (out, in) as stored (y = x Wᵀ), fp32 host. layer in [0, num_hidden_layers).
  /// Throws IoError (NaN/Inf, file problems) naming file and tensor; Error for a bad layer index.
  HostMatrix<float> read_linear(int64_t layer, model::LinearKind kind) const;
  /// Bias of a linear, 1 × out. Throws Error if the config has no bias for `kind`.
  HostMatrix<float> read_linear_bias(int64_t layer, model::LinearKind kind) const;
  /// RMSNorm weight, 1 × hidden_size.
  HostMatrix<float> read_norm(int64_t layer, model::NormKind kind) const;
  /// Token embedding, vocab_size × hidden_size.
  HostMatrix<float> read_embedding() const;
  /// Final RMSNorm weight, 1 × hidden_size.
  HostMatrix<float> read_final_norm() const;
  /// Output projection, vocab_size × hidden_size; the embedding when tie_word_embeddings.
  HostMatrix<float> read_lm_head() const;
  /// Any tensor by HF name (see SafetensorsFile::read_f32 for shapes and errors).
  HostMatrix<float> read_tensor(std::string_view name) const;

 private:
  HfModel(std::filesystem::path dir, model::LlamaConfig config, SafetensorsSet weights);
  void check_layer(int64_t layer) const;

  std::filesystem::path dir_;
  model::LlamaConfig config_;
  SafetensorsSet weights_;
  ModelFingerprint fingerprint_;
};

/// Fingerprint of a model directory without validating it (config.json, the index, shard headers).
/// Throws IoError if a file cannot be read or a shard header is invalid.
ModelFingerprint fingerprint_model_dir(const std::filesystem::path& dir);

}  // namespace caldera::io
