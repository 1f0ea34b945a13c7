// ASVD, SVD-LLM and plain SVD as compression methods (spec asvd-svdllm.md): W (m×n) ≈ A·B with
// A = U_r Σ_r^{1/2} (m×r) and B = Σ_r^{1/2} V_rᵀ S⁻¹ (r×n), where S is
//   asvd   : diag(s^α) from per-channel activation statistics (spec §2.1),
//   svdllm : the Cholesky factor of the phase-1 Gram matrix Σxxᵀ (spec §2.2, §9.1),
//   svd    : the identity (the data-free baseline).
// The rank of each matrix comes from a RankAllocation (the STRS search of algo/rank_search.h over a
// sensitivity table computed by pipeline/sensitivity.h) or, with --rank-search uniform, from one
// global ratio. Stored tensors (docs/format.md, "ASVD / SVD-LLM"):
//   "A" bf16 [m, r], "B" bf16 [r, n]          a factorized matrix, W ≈ A·B computed in fp32
//   "weight" f32 [m, n]                        a matrix the allocation keeps dense (or a failed
//                                              factorization: spec §3.2, never a random layer)
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "algo/lowrank.h"
#include "algo/method.h"
#include "algo/rank_search.h"

namespace caldera::algo {

enum class LowRankKind : uint8_t { kAsvd, kSvdLlm, kSvd };
std::string_view to_string(LowRankKind kind) noexcept;
/// "asvd" | "svdllm" | "svd"; throws ConfigError naming `--method`.
LowRankKind parse_low_rank_kind(std::string_view text);

enum class RankSearch : uint8_t {
  kSensitivity,  ///< STRS (spec §5): per-matrix ratios from calibration perplexities
  kUniform,      ///< one ratio for every matrix (SVD-LLM, spec §9.1)
};
std::string_view to_string(RankSearch search) noexcept;
/// "sensitivity" | "uniform"; throws ConfigError naming `--rank-search`.
RankSearch parse_rank_search(std::string_view text);

/// SVD-LLM's optional accuracy recovery (spec §9.1).
enum class LowRankUpdate : uint8_t {
  kNone,
  kLocal,  ///< `whitening_local_update`: A re-solved on the inputs of the compressed prefix
};
std::string_view to_string(LowRankUpdate update) noexcept;
/// "none" | "local"; throws ConfigError naming `--update`.
LowRankUpdate parse_low_rank_update(std::string_view text);

/// Typed parameters of the low-rank methods (style C9), validated once by validate().
struct AsvdParams {
  LowRankKind method = LowRankKind::kAsvd;
  /// Target overall param ratio R of spec §4 (< 1 compresses; 1 leaves every weight dense, e.g.
  /// for a KV-cache-only run).
  double param_ratio = 0.9;
  /// Target KV-cache ratio Σr/Σd_kv (spec §6, pitfall 14); 1 = no KV-cache search.
  double kv_ratio = 1.0;
  double alpha = 0.5;                                        ///< asvd: exponent of s (spec §2.1)
  ActivationScaling scaling = ActivationScaling::kAbsMean;  ///< asvd: statistic (spec §2.1)
  RankSearch rank_search = RankSearch::kSensitivity;
  /// Calibration sequences used for sensitivity perplexities (spec §2.2: 32), the first ones of
  /// the calibration file.
  int sensitivity_sequences = 32;
  /// Candidate ratios of the weight search (empty: spec §5.1 default {0.4..0.9}) and of the
  /// KV-cache search (empty: {0.1..1.9}).
  std::vector<double> weight_candidates;
  std::vector<double> kv_candidates;
  SigmaFuse sigma_fuse = SigmaFuse::kUV;
  SvdPrecision svd_precision = SvdPrecision::kF32;
  double scaling_floor = 1e-3;      ///< asvd: relative floor of S (pitfall 4)
  double whitening_damping = 1e-4;  ///< svdllm: first relative damping when Σxxᵀ is not PD (pitfall 2)
  /// svdllm: the parameter update pass after phase 2 (spec §9.1; pipeline/update_pass.h).
  LowRankUpdate update = LowRankUpdate::kNone;

  /// True when the KV-cache search runs (kv_ratio < 1).
  bool kv_search() const { return kv_ratio < 1.0; }
  /// True when the weight search runs (param_ratio < 1).
  bool weight_search() const { return param_ratio < 1.0; }
  /// The candidate lists in effect (defaults filled in).
  std::vector<double> candidates(RankSearchMode mode) const;
  /// The parameters whose factorization the sensitivity pass measures (spec §5.1: the layer is
  /// replaced by "its ASVD factorization ... always activation-aware"): for svd, these parameters
  /// with method asvd, so plain SVD under STRS takes the ASVD table's ranks (the reference's and
  /// the ASVD paper's "SVD*" setting; alpha and scaling then matter for svd too); for asvd and
  /// svdllm (the reference's whitening branch measures with the Cholesky transform) the method's own.
  /// Never with the update pass: a sensitivity replaces one matrix of the original model.
  AsvdParams sensitivity_params() const;
  /// Throws ConfigError listing every invalid value at once, each with its option name.
  void validate() const;
  /// `key=value` pairs for run.json and the output's quantization_config (stable order).
  std::vector<std::pair<std::string, std::string>> to_pairs() const;
};

/// The Method of ASVD / SVD-LLM / plain SVD (spec §3). Thread-compatible, immutable after
/// construction; compress() runs on context.backend and returns host tensors.
class LowRankMethod final : public Method {
 public:
  /// `params` must be valid (validate() is called; throws ConfigError). `allocation`, when given,
  /// fixes every matrix' rank: matrices it lists take their allocated rank (or stay dense), all
  /// others stay dense. Without it, the rank is the uniform one of params (rank_search must then
  /// be kUniform; compress() throws ConfigError otherwise).
  explicit LowRankMethod(AsvdParams params, std::optional<RankAllocation> allocation = std::nullopt);

  std::string name() const override;
  std::vector<std::pair<std::string, std::string>> parameters() const override;
  /// Factorizes w (m×n host fp32) at the unit's rank; stats must hold sum_xxt (svdllm and the
  /// error metric), sum_abs_x (asvd abs-mean) or max_abs_x (asvd abs-max). A numerical failure of
  /// the factorization keeps the matrix dense and says so in metrics.extra ("dense_fallback").
  /// metrics.rel_error is spec caldera §1.3 against the processed Hessian; extra also holds
  /// "rank", "ratio", "sigma_energy_dropped" and "damping" / "floored_channels".
  CompressedUnit compress(const MethodContext& context, MatrixView<const float> w,
                          const InputStats& stats) const override;
  /// A·B in fp32 on `backend` (or the stored dense weight); returns m×n host fp32. Throws Error
  /// naming the tensor when the map is inconsistent.
  HostMatrix<float> reconstruct(linalg::Backend& backend, const TensorMap& tensors) const override;
  bool has_update_pass() const override { return params_.update == LowRankUpdate::kLocal; }
  /// Spec §9.1's parameter update: A refitted by refit_left_factor() to the Gram matrix of `inputs`
  /// (B kept), bf16 as before; kept only when it lowers the exact output error on those inputs
  /// after rounding. Dense units come back unchanged; a numerical failure keeps the phase-2 factors
  /// (logged, metrics.extra "update_failed"). extra gains "update_output_error_before/after".
  CompressedUnit update(linalg::Backend& backend, const UnitId& unit, MatrixView<const float> w,
                        const CompressedUnit& compressed, const InputStats& inputs) const override;
  double cost_estimate(int64_t m, int64_t n) const override;

  const AsvdParams& params() const { return params_; }
  const std::optional<RankAllocation>& allocation() const { return allocation_; }

  /// The input transform S of this method for an n-channel input (identity for svd).
  InputTransform input_transform(linalg::Backend& backend, const InputStats& stats, int64_t n,
                                 const std::string& context) const;
  /// The rank of `unit` (m×n) under the allocation or the uniform ratio; MatrixAllocation::kDense
  /// when it stays dense.
  int64_t rank_for(const UnitId& unit, int64_t m, int64_t n) const;

 private:
  AsvdParams params_;
  std::optional<RankAllocation> allocation_;
};

/// Long names (without dashes) of every option apply_asvd_option() accepts, with a one-line
/// description each: what the CLI registers for `compress` / `run` and presets may set (configs/
/// asvd-*.ini, svdllm-*.ini). "method" is shared with the other methods (asvd | svdllm | svd).
[[nodiscard]] std::vector<std::pair<std::string, std::string>> asvd_option_names();

/// Sets the field of `params` that option `key` (a name from asvd_option_names()) names, parsing
/// `value` (lists: comma-separated ratios). Throws ConfigError naming the option and the accepted
/// values when the key is unknown or the value does not parse; ranges are checked by validate().
void apply_asvd_option(AsvdParams& params, std::string_view key, std::string_view value);

/// The Method for `params` with an optional allocation (LowRankMethod; validates, throws
/// ConfigError listing every problem).
[[nodiscard]] std::unique_ptr<Method> make_low_rank_method(const AsvdParams& params,
                                                           std::optional<RankAllocation> allocation = std::nullopt);

/// Stores factors as the method's tensors: "A" bf16 [m, r] and "B" bf16 [r, n].
[[nodiscard]] TensorMap low_rank_tensors(const LowRankFactors& factors);
/// Rebuilds W ≈ A·B (fp32 GEMM on `backend`) from low_rank_tensors() output or a "weight" tensor;
/// throws Error naming the offending tensor.
[[nodiscard]] HostMatrix<float> reconstruct_low_rank(linalg::Backend& backend, const TensorMap& tensors);

}  // namespace caldera::algo
