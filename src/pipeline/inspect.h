// `caldera-dist inspect` (DESIGN §1): what a work directory or a compressed output directory holds.
//
// Work directory (<dir>/run.json, DESIGN §3): phase-1 layer files (done = present with this run's
// meta; verified = checksums and meta checked, with Verify::kFull), phase-2 units (done = task file
// with its completion record and this run's identity; in progress = a partial checkpoint, with the
// outer iteration it holds when the method records one; missing), per unit the method, rel_error,
// bits and error-history length (from the task file's metrics), per rank the busy time and units
// from the logs (logs/rank-NNNN.jsonl events `unit_done`, `compress_done`), the phase-2 efficiency
// (Σ busy / (ranks · max busy)), the measured memory of each phase (`phase_memory` events), the
// average bits per weight and the mean error of the finished units, and output/ when it exists.
// Compressed output directory (config.json with a quantization_config): the quantization_config
// and, per matrix, the bits per weight its stored tensors take (8 · bytes / (rows · cols), from
// the safetensors headers; signs and scalars included, unlike the method's own accounting).
//
// Reading is cheap by default (file attributes, JSON, safetensors headers); Verify::kFull reads
// every dataset with its checksums, like a resume does. Nothing is modified.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/json_value.h"

namespace caldera::pipeline {

enum class Verify : uint8_t {
  kMetadata,  ///< attributes and completion records only
  kFull,      ///< every dataset read with its Fletcher-32 checks and the whole-file hashes
};

enum class FileState : uint8_t {
  kDone,        ///< finished and of this run (verified when Verify::kFull)
  kInProgress,  ///< a partial checkpoint exists (units only)
  kMissing,     ///< nothing there
  kInvalid,     ///< present but of another run, unreadable or failing verification (recomputed on resume)
};
std::string_view to_string(FileState state) noexcept;

struct LayerInfo {
  int64_t layer = 0;
  FileState state = FileState::kMissing;
  std::string problem;  ///< why kInvalid
};

struct UnitInfo {
  std::string name;  ///< "L003.mlp.down_proj"
  int64_t rows = 0, cols = 0;
  FileState state = FileState::kMissing;
  std::string method;
  double rel_error = 0;
  double bits = 0;                     ///< the method's storage bits of the matrix
  int64_t history_length = 0;          ///< entries of the error history
  std::optional<int64_t> checkpoint_iteration;  ///< in progress: outer iterations saved
  int rank = -1;                       ///< rank that logged unit_done (-1: not in the logs)
  double seconds = 0;                  ///< its logged compression time
  std::string problem;                 ///< why kInvalid
};

struct RankInfo {
  int rank = 0;
  std::string host;
  int64_t units = 0;       ///< distinct units this rank logged as done
  double busy_s = 0;       ///< Σ seconds of those units
  int64_t log_lines_skipped = 0;  ///< unparsable lines (a rank killed mid-write)
  io::JsonValue phase_memory = io::JsonValue::array();  ///< its phase_memory events, in order
};

struct OutputInfo {
  std::filesystem::path dir;
  io::JsonValue quantization_config;  ///< null for a plain model
  struct Matrix {
    std::string name;  ///< HF module prefix, e.g. "model.layers.3.mlp.down_proj"
    int64_t rows = 0, cols = 0;
    int64_t bytes = 0;  ///< Σ bytes of its stored tensors
    double bits_per_weight = 0;
  };
  std::vector<Matrix> matrices;
  double avg_bits_stored = 0;  ///< Σ 8·bytes / Σ rows·cols over the matrices
  int64_t files = 0;
  int64_t total_bytes = 0;
};

struct WorkdirInfo {
  std::filesystem::path dir;
  io::JsonValue run_record;  ///< run.json
  std::string method;        ///< phase-2 method ("" before phase 2 was configured)
  int64_t layers = 0;        ///< of the model (from its config; else from the files found)
  std::vector<LayerInfo> layer_files;
  std::vector<UnitInfo> units;
  std::vector<RankInfo> ranks;
  double efficiency = 0;     ///< Σ busy / (ranks with units · max busy); 0 without units in the logs
  double avg_bits = 0;       ///< Σ bits / Σ rows·cols over done units
  double mean_rel_error = 0; ///< over done units
  std::vector<std::string> notes;
  std::optional<OutputInfo> output;
  int64_t count(FileState state) const;          ///< units in `state`
  int64_t count_layers(FileState state) const;   ///< layer files in `state`
};

/// What `dir` holds: a work directory (run.json), or a compressed/plain model directory
/// (config.json). Throws ConfigError when it is neither, IoError when run.json is unreadable.
/// Exactly one of the two results is set.
struct Inspection {
  std::optional<WorkdirInfo> workdir;
  std::optional<OutputInfo> output;
};
Inspection inspect(const std::filesystem::path& dir, Verify verify);

WorkdirInfo inspect_workdir(const std::filesystem::path& dir, Verify verify);
OutputInfo inspect_output(const std::filesystem::path& dir);

io::JsonValue to_json(const WorkdirInfo& info);
io::JsonValue to_json(const OutputInfo& info);
std::string to_text(const WorkdirInfo& info);
std::string to_text(const OutputInfo& info);

}  // namespace caldera::pipeline
