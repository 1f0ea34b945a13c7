// The sensitivity pass of ASVD's rank search (spec asvd-svdllm.md §5.1) and the rank-allocation
// step the pipeline runs before phase 2 for --method asvd|svdllm|svd (spec §5.2, §6).
//
// sens[matrix][ρ] = calibration perplexity of the model with ONLY that matrix replaced by its
// factorization at ratio ρ (bf16 factors, exactly what phase 2 would store). Cost per matrix: one
// SVD of W·S, re-truncated per candidate (pitfall 19), and per candidate a forward pass from the
// matrix' layer to the end: the activations entering each layer are those of the unmodified
// model, computed once while walking the layers in order.
//
// Distribution: data-parallel over the sensitivity sequences (every rank evaluates every
// (matrix, ratio) on its slice; NLL sums are added over ranks), as pipeline/perplexity.h. The SVDs
// are computed on every rank (cheap next to the forward passes for the models this runs on).
//
// Resume (DESIGN §3): the table is written per layer to <dir>/<mode>/layer_NNN.json by rank 0
// (temp file + rename, with a SHA-256 of its content and the full key of pitfall 11: method,
// transform settings, candidates, sequences, seq_len, matrices, data fingerprint). A layer whose
// file verifies and matches the key is not recomputed; a file that does not is recomputed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "algo/asvd.h"
#include "algo/method.h"
#include "algo/rank_search.h"
#include "comm/communicator.h"
#include "io/json_value.h"
#include "linalg/backend.h"
#include "model/forward.h"
#include "model/weight_source.h"

namespace caldera::pipeline {

/// Phase-1 statistics of one linear input (spec caldera §6.1 keys) of one layer: sum_xxt, count,
/// n_sequences and, for ASVD, sum_abs_x / max_abs_x. Implementations read hessians/layer_NNN.h5.
/// Throws IoError naming the file when it cannot be read.
using InputStatsProvider = std::function<algo::InputStats(int64_t layer, model::HessianInput input)>;

/// Whether uploaded decoder layers stay in backend memory for the whole pass (a copy of every
/// linear in fp32: fine for the small models, not for a 70B one) or are reloaded when needed.
enum class LayerCache : uint8_t { kKeepUploaded, kReload };

struct SensitivityOptions {
  model::ForwardOptions forward;  ///< seq_len, micro-batch, vocab chunk of the perplexity passes
  /// Directory of the resumable table (e.g. <workdir>/sensitivity); empty: nothing is written.
  std::filesystem::path dir;
  /// Identity of the model and calibration data (e.g. the run fingerprint's hashes): part of the
  /// table key so a table is never reused for other data.
  std::string data_fingerprint;
  LayerCache layer_cache = LayerCache::kKeepUploaded;
  /// Polled (collectively) after each finished layer; when true on any rank the pass stops with
  /// algo::StopRequested, everything finished so far being on disk.
  std::function<bool()> stop_requested;
};

/// Every searchable matrix of `config`: the seven linears of each decoder layer (lm_head is not a
/// candidate), in (layer, q, k, v, o, gate, up, down) order, named by HF module path.
[[nodiscard]] std::vector<algo::MatrixShape> model_matrices(const model::LlamaConfig& config);

/// The key of a sensitivity table (pitfall 11): everything its values depend on.
[[nodiscard]] io::JsonValue sensitivity_key(const algo::AsvdParams& params, algo::RankSearchMode mode,
                                            const std::vector<algo::MatrixShape>& matrices, int64_t n_sequences,
                                            int64_t seq_len, const std::string& data_fingerprint);

/// Computes (or loads the finished layers of) the sensitivity table of `matrices` for `params`
/// (method, transform, precision, sigma split) in `mode` with candidates params.candidates(mode).
/// Collective over `world`. `local_tokens`: this rank's slice (whole sequences of seq_len tokens)
/// of the n_sequences sensitivity sequences (all ranks together). Runs on `backend`.
/// Throws ConfigError for invalid options, IoError when a table file cannot be written.
[[nodiscard]] algo::SensitivityTable compute_sensitivity(linalg::Backend& backend, comm::Communicator& world,
                                                         const model::WeightSource& source,
                                                         std::span<const uint32_t> local_tokens,
                                                         int64_t n_sequences, const InputStatsProvider& stats,
                                                         const algo::AsvdParams& params, algo::RankSearchMode mode,
                                                         const std::vector<algo::MatrixShape>& matrices,
                                                         const SensitivityOptions& options);

/// The result of the rank-allocation step.
struct LowRankPlan {
  algo::RankAllocation allocation;  ///< what LowRankMethod is constructed with
  double param_ratio = 1.0;         ///< achieved over all 7·L matrices (integer ranks) → run --json
  double kv_cache_ratio = 1.0;      ///< Σ cached / Σ d_kv over all k/v projections → run --json
  std::optional<algo::SensitivityTable> weight_table, kv_table;
};

/// The step the pipeline runs before phase 2 for the low-rank methods (spec §5, §6):
///  - rank_search uniform: one ratio for every matrix (and r = kv_ratio·d_kv for k/v in KV mode);
///  - sensitivity: KV table and search over k/v when kv_ratio < 1; weight table and search over
///    the other matrices (all of them without KV mode) when param_ratio < 1, with the weight
///    target adjusted so the overall param ratio meets param_ratio (weight_target_with_kv).
/// The tables are computed with params.sensitivity_params() (svd: ASVD's factorization, spec §5.1).
/// `calib_tokens`: the whole calibration file (every rank passes the same); its first
/// params.sensitivity_sequences sequences are used, split over ranks. Collective over `world`.
/// Logs the allocation; throws ConfigError when the calibration has fewer sequences than asked.
[[nodiscard]] LowRankPlan allocate_low_rank_ranks(linalg::Backend& backend, comm::Communicator& world,
                                                  const model::WeightSource& source,
                                                  std::span<const uint32_t> calib_tokens,
                                                  const InputStatsProvider& stats, const algo::AsvdParams& params,
                                                  const SensitivityOptions& options);

/// JSON of an allocation (per matrix: name, shape, ratio, rank) and its figures, for logs,
/// run --json and the output's quantization_config ("truncation_ranks").
[[nodiscard]] io::JsonValue allocation_json(const algo::RankAllocation& allocation);

/// A WeightSource that forwards to `base` except for the listed linear weights, which it replaces
/// (e.g. by reconstructed A·B). `base` must outlive it. Replacement shapes are checked on insert.
class ReplacedWeightSource final : public model::WeightSource {
 public:
  explicit ReplacedWeightSource(const model::WeightSource& base) : base_(base) {}
  /// Replaces linear `kind` of `layer` by `w` (out × in, host fp32); throws Error on a shape
  /// mismatch with the config.
  void replace(int64_t layer, model::LinearKind kind, HostMatrix<float> w);

  const model::LlamaConfig& config() const override { return base_.config(); }
  DType storage_dtype() const override { return base_.storage_dtype(); }
  model::LayerHostWeights load_layer(int64_t layer) const override;
  HostMatrix<float> load_embedding() const override { return base_.load_embedding(); }
  HostMatrix<float> load_final_norm() const override { return base_.load_final_norm(); }
  HostMatrix<float> load_lm_head() const override { return base_.load_lm_head(); }

 private:
  struct Replacement {
    int64_t layer;
    model::LinearKind kind;
    HostMatrix<float> w;
  };
  const model::WeightSource& base_;
  std::vector<Replacement> replacements_;
};

}  // namespace caldera::pipeline
