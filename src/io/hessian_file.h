// Per-layer Hessian files of phase 1 (DESIGN §2, §3): <workdir>/hessians/layer_NNN.h5 holds, for
// each of the four linear inputs qkv, o, up, down (caldera-quipsharp spec §6.1), the raw sums that
// merge exactly across ranks and runs (spec §6.2): S = Σ x xᵀ and μ_sum = Σ x in fp64 and the token
// count. Turning them into the processed H of spec §6.5 belongs to the algorithms, not here.
//
// Layout (format version 2; version 1 files, without sum_abs/max_abs, are still read):
//   /                      attributes: format = "caldera-hessians", format_version = 1, layer,
//                          model_fingerprint, calibration_sha256, seq_len
//   /<input>/sum           float64 [n(n+1)/2]: lower triangle of S in row-major lower order
//                          (0,0), (1,0), (1,1), (2,0), ... (spec §6.4), Fletcher-32 chunks
//   /<input>/mu_sum        float64 [n]
//   /<input>/sum_abs       float64 [n]: Σ |x| per channel (ASVD abs-mean scaling; version 2)
//   /<input>/max_abs       float64 [n]: max |x| per channel (ASVD abs-max scaling; version 2)
//   /<input>               attributes: n, count (tokens)
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "io/atomic_file.h"
#include "model/llama_config.h"

namespace caldera::io {

inline constexpr int64_t kHessianFormatVersion = 2;
/// Oldest version this build still reads (version 1 lacks sum_abs / max_abs).
inline constexpr int64_t kHessianOldestReadableVersion = 1;

/// Raw second-moment sums of one linear input over `count` token rows x (length n).
struct HessianSum {
  int64_t n = 0;
  int64_t count = 0;            ///< tokens accumulated
  HostMatrix<double> sum;       ///< n×n, Σ x xᵀ; symmetric (the lower triangle is what is stored)
  std::vector<double> mu_sum;   ///< n, Σ x
  /// n each: Σ |x| and max |x| per channel (asvd-svdllm spec §2.1). Empty when read from a
  /// version-1 file; the writer requires n entries each.
  std::vector<double> sum_abs;
  std::vector<double> max_abs;

  /// n-dimensional zero sums (count 0).
  static HessianSum zeros(int64_t n);
};

/// What a Hessian file was computed from: compared on resume and when phase 2 loads it.
struct HessianFileMeta {
  int64_t layer = 0;
  std::string model_fingerprint;   ///< ModelFingerprint::digest() of the model
  std::string calibration_sha256;  ///< TokenFile::sha256() of the calibration tokens
  int64_t seq_len = 0;
  friend bool operator==(const HessianFileMeta&, const HessianFileMeta&) = default;
};

/// All four inputs of one decoder layer, indexed by model::HessianInput.
struct LayerHessians {
  HessianFileMeta meta;
  std::array<HessianSum, 4> inputs;

  HessianSum& operator[](model::HessianInput in) noexcept { return inputs[static_cast<std::size_t>(in)]; }
  const HessianSum& operator[](model::HessianInput in) const noexcept { return inputs[static_cast<std::size_t>(in)]; }
};

/// "<workdir>/hessians/layer_NNN.h5" (3 digits, more if the layer needs them).
std::filesystem::path hessian_file_path(const std::filesystem::path& workdir, int64_t layer);

/// Writes `h` to `path` atomically (publish_atomically; the parent directory must exist) and returns
/// the published file with its SHA-256. Memory: streams S in ~8 MiB slabs, no packed copy.
/// Throws Error if a sum's shapes disagree with its n, NumericError naming layer and input if any
/// value is non-finite, IoError on file errors.
PublishedFile write_hessian_file(const std::filesystem::path& path, const LayerHessians& h);

/// Reads the file attributes. Throws IoError naming file and attribute if missing, or if
/// format/format_version is not this one.
HessianFileMeta read_hessian_meta(const std::filesystem::path& path);
/// Throws IoError naming the file and the first differing field (layer, model_fingerprint,
/// calibration_sha256, seq_len) if `found` != `expected`.
void check_hessian_meta(const std::filesystem::path& path, const HessianFileMeta& found, const HessianFileMeta& expected);

/// Reads one input (S unpacked to a full symmetric n×n matrix). Throws IoError naming file and
/// object on any inconsistency (n vs dataset lengths, negative count, non-finite values, bad
/// format); Fletcher-32 checksum failures surface as IoError from the read.
HessianSum read_hessian_input(const std::filesystem::path& path, model::HessianInput input);
/// Reads all four inputs and the meta.
LayerHessians read_hessian_file(const std::filesystem::path& path);

/// Full check before a finished file is trusted (DESIGN §3): whole-file SHA-256 if given, every
/// dataset readable with its checksums, the format, and the meta equal to `expected`.
/// Throws IoError (the pipeline then recomputes the layer).
void verify_hessian_file(const std::filesystem::path& path, std::string_view expected_sha256,
                         const HessianFileMeta& expected);

}  // namespace caldera::io
