// Sensitivity-based truncation rank search (STRS, spec asvd-svdllm.md §5) and the KV-cache variant
// (spec §6): pure functions from a sensitivity table (calibration perplexity with one matrix
// factorized at one candidate ratio, computed by pipeline/sensitivity.h) to a per-matrix rank
// allocation that meets a target overall ratio. No I/O here; the table's file format lives in the
// pipeline.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace caldera::algo {

/// What the search targets.
enum class RankSearchMode : uint8_t {
  /// Spec §4/§5.2: the overall param ratio R = Σ numel·ρ / Σ numel over the searched matrices
  /// (nominal ρ, 1 for untouched ones); only ρ < 1 are candidates.
  kWeights,
  /// Spec §6 with the GQA correction of pitfall 14: only k_proj / v_proj; the searched quantity is
  /// the KV-cache ratio Σ r / Σ d_kv (cached floats per token: r for a factorized projection, d_kv
  /// = its output dimension otherwise); candidates below the full-rank ratio (m+n)/max(m,n).
  kKvCache,
};
std::string_view to_string(RankSearchMode mode) noexcept;

/// One searchable matrix: a linear of a decoder layer, m×n (out × in).
struct MatrixShape {
  int layer = 0;
  std::string matrix;  ///< HF module name within the layer, e.g. "self_attn.k_proj"
  int64_t rows = 0;    ///< m (out)
  int64_t cols = 0;    ///< n (in)

  /// "L007.self_attn.k_proj", as algo::UnitId::name().
  std::string name() const;
  /// True for self_attn.k_proj and self_attn.v_proj (the KV-cache projections).
  bool is_kv_projection() const;
};

/// Rank of `shape` at candidate `ratio` in `mode`, or MatrixAllocation::kDense when that rank
/// would not compress (weights: ρ ≥ 1, pitfall 8; kv cache: r ≥ min(m, n), pitfall 14).
[[nodiscard]] int64_t compressing_rank(RankSearchMode mode, const MatrixShape& shape, double ratio);

/// The default candidate ratios of spec §5.1: {0.4, ..., 0.9} for weights (main HEAD), and
/// {0.1, ..., 1.9} for the KV cache.
[[nodiscard]] std::vector<double> default_candidates(RankSearchMode mode);

/// Sensitivity list of spec §5.1: ppl(i, c) = calibration perplexity of the whole model with only
/// matrix i replaced by its factorization at candidate ratio c.
struct SensitivityTable {
  RankSearchMode mode = RankSearchMode::kWeights;
  std::vector<MatrixShape> matrices;
  std::vector<double> candidates;  ///< strictly ascending, > 0
  /// matrices.size() × candidates.size(), row-major; NaN where not evaluated (a candidate that
  /// does not compress that matrix, or a factorization that failed).
  std::vector<double> ppl;
  /// Perplexity of the unmodified model on the same sequences (reported, not used by the search).
  double base_ppl = std::numeric_limits<double>::quiet_NaN();

  double at(size_t matrix, size_t candidate) const { return ppl[matrix * candidates.size() + candidate]; }
  double& at(size_t matrix, size_t candidate) { return ppl[matrix * candidates.size() + candidate]; }
  /// Throws Error describing the first inconsistency (sizes, ordering, non-positive shapes, a
  /// non-k/v matrix in kv mode, duplicate names).
  void validate() const;
};

/// The rank of one matrix chosen by the search.
struct MatrixAllocation {
  static constexpr int64_t kDense = -1;
  MatrixShape shape;
  /// Nominal ρ from the candidate list, or the uncompressed sentinel: 1 (weights) or the full-rank
  /// ratio (m+n)/max(m,n) (kv cache, pitfall 14).
  double ratio = 1.0;
  /// r = rank_for_param_ratio(m, n, ratio), or kDense when the matrix stays dense.
  int64_t rank = kDense;

  bool compressed() const { return rank != kDense; }
  /// Parameters kept: r(m+n), or m·n when dense.
  int64_t params() const;
  /// Floats cached per token for a k/v projection: r, or m when dense.
  int64_t cached_per_token() const;
};

struct RankAllocation {
  RankSearchMode mode = RankSearchMode::kWeights;
  double target = 1.0;
  std::vector<MatrixAllocation> matrices;  ///< same order as the table's matrices
  /// The searched quantity of the returned configuration: R of spec §4 (weights) or the KV-cache
  /// ratio (kv cache).
  double achieved = 1.0;
  /// Its increase over the configuration that admits one more (matrix, ratio) pair: the returned
  /// configuration satisfies achieved − step ≤ target < achieved (spec §5.2: "within one step"),
  /// unless the target is out of reach (then `reachable` is false).
  double step = 0.0;
  bool reachable = true;
  /// Σ params / Σ m·n over `matrices` from the integer ranks (spec pitfall 7: achieved, not nominal).
  double param_ratio = 1.0;
  /// Σ cached floats per token / Σ d_kv over the k/v projections in `matrices` (1 when none).
  double kv_cache_ratio = 1.0;
  /// Index k of the sorted list whose suffix L[k:] is admitted (spec §5.2); −1 for uniform ones.
  int64_t threshold_index = -1;
  int64_t list_size = 0;

  /// The allocation of (layer, matrix), or nullptr when that matrix was not searched.
  const MatrixAllocation* find(int layer, std::string_view matrix) const;
  /// Recomputes param_ratio, kv_cache_ratio and (from nominal ratios) achieved from `matrices`.
  void update_summary();
};

/// Spec §5.2 binary search over the sensitivity list, with the fixes of pitfalls 8, 9 and 14:
/// L = every (matrix, candidate) with a finite perplexity that compresses the matrix (ρ < 1 in
/// weight mode; r < d_kv in kv mode), sorted by perplexity descending (ties: matrix, then ratio
/// ascending); config(k) gives each matrix the smallest ratio among L[k:] (or the sentinel);
/// the search returns config(low) with low = the first k whose searched quantity exceeds `target`
/// (the converged bound, never the last evaluated mid). Deterministic. Throws ConfigError naming
/// `--param-ratio` / `--kv-ratio` for a target outside (0, 1], Error for an invalid table.
[[nodiscard]] RankAllocation allocate_ranks(const SensitivityTable& table, double target);

/// Uniform allocation (`--rank-search uniform`, SVD-LLM's single global ratio, spec §9.1).
/// kWeights: every matrix gets ρ = target (dense when ρ ≥ 1, pitfall 8). kKvCache: only k/v
/// projections are listed, each with r = floor(target · d_kv) (dense when r ≥ min(m, n)).
/// Throws ConfigError for a target ≤ 0 (or > 1 in kv mode).
[[nodiscard]] RankAllocation uniform_allocation(const std::vector<MatrixShape>& matrices, RankSearchMode mode,
                                                double target);

/// Both searches at once (--param-ratio < 1 and --kv-ratio < 1): the weight-mode target for the
/// non-k/v matrices `others` so that the overall param ratio over others ∪ kv.matrices is
/// `overall_target`, the k/v projections counting with their actual parameters r(m+n):
///   target' = (overall_target · N_all − P_kv) / N_others.
/// Values ≥ 1 mean the KV allocation alone meets the target (the caller keeps `others` dense).
/// Throws ConfigError naming --param-ratio when target' ≤ 0 (the factorized k/v projections alone
/// keep more parameters than the whole budget allows).
[[nodiscard]] double weight_target_with_kv(const RankAllocation& kv, const std::vector<MatrixShape>& others,
                                           double overall_target);
/// One allocation holding the matrices of both: mode kWeights, the weight search's threshold,
/// step and reachability, summary figures recomputed over all matrices. Throws Error when a
/// matrix appears in both.
[[nodiscard]] RankAllocation combine_allocations(const RankAllocation& kv, const RankAllocation& weights);

/// Param ratio over `all` (the whole candidate set) when the matrices of `allocation` take their
/// ranks and every other matrix stays dense: what `run --json` reports as "param_ratio".
[[nodiscard]] double overall_param_ratio(const RankAllocation& allocation, const std::vector<MatrixShape>& all);

}  // namespace caldera::algo
