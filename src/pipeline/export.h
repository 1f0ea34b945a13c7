// Phase 3 (DESIGN §1-§2): assembling <workdir>/output/ and the dense / PEFT exports.
//
// Formats (docs/format.md specifies every tensor):
//  - kCompressed: output/ = the model's config.json plus a `quantization_config`
//    {quant_method: "caldera", method, parameters, bits, calibration provenance, producer}, sharded
//    safetensors holding each unit's tensors under "<HF module>.<tensor>" (e.g.
//    "model.layers.3.mlp.down_proj.Q_codes") and every other tensor of the model copied unchanged,
//    the tokenizer/generation files copied, and caldera_manifest.json (SHA-256 of every file).
//  - kDense: a plain Hugging Face model (bf16, no quantization_config) with the reconstructed
//    weights: loads in transformers, vLLM, lm-eval, and `caldera-dist eval`.
//  - kPeft: the dense model with each linear's low-rank term removed, plus adapter/
//    (adapter_config.json + adapter_model.safetensors) holding it as LoRA factors (r = rank,
//    lora_alpha = r), for methods with a low-rank term (Method::split_low_rank).
// Every file is published atomically and depends only on the finished units and the model, never
// on the number of ranks or the time: the same run gives byte-identical files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "algo/method.h"
#include "algo/method_factory.h"
#include "io/atomic_file.h"
#include "io/hf_model.h"
#include "io/json_value.h"
#include "linalg/backend.h"
#include "pipeline/workdir.h"

namespace caldera::pipeline {

enum class ExportFormat { kCompressed, kDense, kPeft };
/// "compressed" | "dense" | "peft"; throws ConfigError otherwise.
ExportFormat parse_export_format(std::string_view text);

/// Where the calibration came from, recorded in the output.
struct CalibrationInfo {
  std::string tokens_sha256;
  int64_t n_sequences = 0;
  int64_t seq_len = 0;
};

struct ExportOptions {
  ExportFormat format = ExportFormat::kCompressed;
  std::filesystem::path out_dir;          ///< empty: <workdir>/output (compressed only)
  int64_t max_shard_bytes = int64_t{2} << 30;
  uint64_t seed = 0;
  CalibrationInfo calibration;
};

struct ExportReport {
  std::filesystem::path dir;
  double avg_bits = 0;        ///< Σ unit bits / Σ weights over the compressed linears
  double mean_rel_error = 0;  ///< mean of the units' rel_error
  double outlier_rate = 0;    ///< Σ units' "outliers" metric / Σ weights (SpQR; 0 for methods without outliers)
  int64_t units = 0;
  std::vector<io::PublishedFile> files;
};

/// The quantization_config object for `method` with the run's summary figures.
io::JsonValue quantization_config_json(const algo::Method& method, double avg_bits, double mean_rel_error,
                                       const CalibrationInfo& calibration);

/// Writes the export (rank 0 only; not collective). Every unit must be finished: throws Error
/// naming the first unit whose task file is missing or does not verify.
ExportReport export_model(linalg::Backend& backend, const io::HfModel& model, const Workdir& workdir,
                          const algo::Method& method, const ExportOptions& options);

/// The method configuration a quantization_config records (inverse of quantization_config_json):
/// "method" first, then every parameter through algo::apply_method_option. Throws ConfigError
/// naming `where` when a member is missing or not understood.
algo::MethodConfig method_config_from_quantization_config(const io::JsonValue& quantization_config,
                                                          const std::string& where);

/// "<config.json with quantization_config>" reader: the quantization_config of a compressed output
/// directory, or null JSON when `dir`/config.json has none (a plain HF model).
io::JsonValue read_quantization_config(const std::filesystem::path& dir);

}  // namespace caldera::pipeline
