// Activation-aware low-rank factorization W ≈ A·B (spec asvd-svdllm.md §2-§3): the building blocks
// shared by ASVD (diagonal scaling from activation statistics), SVD-LLM (Cholesky whitening) and
// plain SVD (identity transform), by the per-matrix methods (algo/asvd.h) and by the sensitivity
// pass (pipeline/sensitivity.h), which computes one SVD per matrix and re-truncates it at every
// candidate ratio (spec pitfall 19).
//
// Notation (spec): W is m×n (out × in, row-major as Hugging Face stores it, y = W x), S an invertible
// n×n input transform, W S = U Σ Vᵀ, A = U_r Σ_r^{1/2} (m×r), B = Σ_r^{1/2} V_rᵀ S⁻¹ (r×n).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "algo/method.h"
#include "core/matrix.h"
#include "linalg/backend.h"

namespace caldera::algo {

// ---- rank arithmetic (spec §3.1, §4, §6) --------------------------------------------------------

/// Spec §3.1 (ASVD main): r = floor(floor(m·n·ρ) / (m + n)), capped at min(m, n). ρ ≥ 0; m, n > 0.
/// Examples (spec §11): 4096×4096 at 0.9 → 1843; 11008×4096 at 0.9 → 2686. Throws Error for a
/// negative ratio or a non-positive dimension.
[[nodiscard]] int64_t rank_for_param_ratio(int64_t m, int64_t n, double ratio);
/// The ratio at which the factorization is full rank, (m + n) / max(m, n) (spec pitfalls 8, 14):
/// ratios at or above it never reduce anything (2 for square matrices, 1.5 for a GQA k_proj
/// 256×512).
[[nodiscard]] double full_rank_param_ratio(int64_t m, int64_t n);
/// Parameters of the factorized matrix, r·(m + n).
[[nodiscard]] inline int64_t low_rank_params(int64_t m, int64_t n, int64_t rank) { return rank * (m + n); }

// ---- the input transform S (spec §2) ------------------------------------------------------------

/// ASVD's per-channel activation statistic (spec §2.1).
enum class ActivationScaling : uint8_t {
  kAbsMean,  ///< s_j = Σ_sequences mean_t |x_tj| (default)
  kAbsMax,   ///< s_j = max over all tokens of |x_tj|
};
std::string_view to_string(ActivationScaling scaling) noexcept;
/// "abs-mean" | "abs-max" (underscores accepted); throws ConfigError naming `--scaling`.
ActivationScaling parse_activation_scaling(std::string_view text);

enum class TransformKind : uint8_t {
  kIdentity,  ///< plain SVD: S = I
  kDiagonal,  ///< ASVD: S = diag(s^α), spec §2.1
  kCholesky,  ///< SVD-LLM whitening: S = L with L Lᵀ = Σ x xᵀ (+ damping), spec §2.2
};
std::string_view to_string(TransformKind kind) noexcept;

/// The transform S of one matrix' input, on the host.
struct InputTransform {
  TransformKind kind = TransformKind::kIdentity;
  std::vector<double> diagonal;  ///< n entries, all > 0 (kDiagonal only)
  HostMatrix<double> lower;      ///< n×n lower-triangular L, strict upper triangle 0 (kCholesky only)
  /// kCholesky: the relative damping δ used, L Lᵀ = G + δ·mean(diag G)·I (0 when G itself was
  /// positive definite). kDiagonal: number of channels raised to the relative floor.
  double damping = 0.0;
  int64_t floored_channels = 0;

  /// Input dimension n (0 for the identity, which fits any n).
  int64_t dim() const;
};

/// Options of the diagonal (ASVD) transform.
struct DiagonalScalingOptions {
  ActivationScaling scaling = ActivationScaling::kAbsMean;
  double alpha = 0.5;  ///< exponent α (spec §2.1, default 0.5)
  /// Relative floor of spec pitfall 4: S_jj = max(s_j^α, floor · mean_j(s_j^α)). Replaces the
  /// reference's absolute +1e-6, which lets a dead channel blow B up by 10⁶.
  double relative_floor = 1e-3;
};

/// Spec §2.1: S = diag(max(s^α, floor·mean(s^α))) from `stats` of an n-channel input.
/// abs-mean uses stats.sum_abs_x: the spec's statistic is Σ over sequences of the per-sequence
/// mean of |x|, which equals Σ|x| · n_sequences / count exactly when every sequence has the same
/// length (true of our calibration files: fixed-length sequences); any global positive multiplier
/// cancels in the factorization anyway (spec §2.1). abs-max uses stats.max_abs_x.
/// Throws ConfigError naming `context` when the needed statistic is missing or has the wrong
/// length, NumericError when it is non-finite, negative, or zero on every channel.
[[nodiscard]] InputTransform diagonal_scaling(const InputStats& stats, int64_t n, const DiagonalScalingOptions& options,
                                              const std::string& context);

/// Options of the Cholesky (SVD-LLM) transform.
struct WhiteningOptions {
  /// First relative damping δ tried when G = Σ x xᵀ is not positive definite (spec pitfall 2):
  /// δ, 10δ, 100δ, ... up to 1; the undamped G is always tried first.
  double first_damping = 1e-4;
};

/// Spec §2.2 / §9.1: L = chol(G) in fp64 with G = stats.sum_xxt (n×n, symmetric), with the relative
/// damping fallback of pitfall 2 (the δ used is recorded in the result). A factorization whose
/// smallest pivot L_ii² is below 1e-12 · mean(diag G) counts as failed (numerically singular G).
/// Runs on `backend`.
/// Throws ConfigError naming `context` for a wrong shape or an empty count, NumericError when G is
/// non-finite, its diagonal is all zero, or it stays indefinite with δ = 1.
[[nodiscard]] InputTransform cholesky_whitening(linalg::Backend& backend, const InputStats& stats, int64_t n,
                                                const WhiteningOptions& options, const std::string& context);

// ---- SVD of W S, truncatable at any rank (spec §3.2) -------------------------------------------

/// Where Σ goes (spec §3.2 `--sigma_fuse`): UV puts Σ^{1/2} on both sides (default, best for 16-bit
/// storage, pitfall 5), U puts Σ into A, V into B.
enum class SigmaFuse : uint8_t { kUV, kU, kV };
std::string_view to_string(SigmaFuse fuse) noexcept;
/// "UV" | "U" | "V" (case-insensitive); throws ConfigError naming `--sigma-fuse`.
SigmaFuse parse_sigma_fuse(std::string_view text);

/// Precision of W·S and of its SVD. Cholesky factors and the back-mapping triangular solve are
/// always fp64 (pitfall 3).
enum class SvdPrecision : uint8_t { kF32, kF64 };
std::string_view to_string(SvdPrecision precision) noexcept;
SvdPrecision parse_svd_precision(std::string_view text);

/// A rank-r factorization on the host in fp64: A m×r, B r×n, W ≈ A·B.
struct LowRankFactors {
  HostMatrix<double> a;
  HostMatrix<double> b;
  int64_t rank() const { return a.cols(); }
};

/// The leading `kept` singular triplets of W·S with the right factor already mapped back through
/// S⁻¹: u (m×kept), sigma (kept, descending), vt_back = V_keptᵀ S⁻¹ (kept×n), on the host in fp64.
/// sigma_all holds every singular value of W·S (min(m,n) of them) for truncation losses.
/// Truncating at any r ≤ kept gives exactly the factors a direct rank-r computation would.
class TruncatableSvd {
 public:
  /// Computes the exact thin SVD of W·S on `backend` (spec §3.2: exact, not svd_lowrank) in
  /// `precision` and keeps the first `kept_rank` triplets (clamped to min(m, n)). For kCholesky the
  /// back-mapping V_rᵀ L⁻¹ is a triangular solve in fp64, never an explicit inverse (pitfall 3).
  /// w: m×n host fp32. Throws Error when transform.dim() ≠ n, NumericError when W·S or the SVD
  /// has non-finite values.
  static TruncatableSvd compute(linalg::Backend& backend, MatrixView<const float> w, const InputTransform& transform,
                                int64_t kept_rank, SvdPrecision precision);

  int64_t rows() const { return u_.rows(); }
  int64_t cols() const { return vt_back_.cols(); }
  int64_t kept_rank() const { return u_.cols(); }
  /// All singular values of W·S, descending.
  const std::vector<double>& singular_values() const { return sigma_all_; }
  /// Σ_{i≥r} σ_i(W·S)²: for the Cholesky transform this is exactly ||(W − A_r B_r) X||_F² (the
  /// SVD-LLM theorem, spec §2.3); for the others it is only the error in the transformed space.
  double truncation_loss(int64_t rank) const;

  /// A = U_r Σ_r^a, B = Σ_r^b V_rᵀ S⁻¹ with (a, b) = (½, ½) for UV, (1, 0) for U, (0, 1) for V.
  /// 0 ≤ rank ≤ kept_rank(); throws Error otherwise.
  [[nodiscard]] LowRankFactors factors(int64_t rank, SigmaFuse fuse) const;

 private:
  HostMatrix<double> u_;
  HostMatrix<double> vt_back_;
  std::vector<double> sigma_all_;
};

// ---- SVD-LLM's parameter update (spec §9.1) -------------------------------------------------------

/// The left factor re-solved by least squares with B kept (spec §9.1, `whitening_local_update`):
/// A = argmin_A Σ_x ‖W x − A B x‖² over the inputs x the matrix sees in the compressed model,
///   = W G' Bᵀ (B G' Bᵀ)⁻¹,   G' = Σ x xᵀ (n×n) over those inputs.
/// This is the spec's M = argmin ‖Z M − Y‖ (Z = X V'ᵀ Σ_r, Y = X Wᵀ, A = Mᵀ Σ_r^{1/2}) with Σ_r^{1/2}
/// folded into B; the closed form needs only G'. When G' is the Gram matrix the SVD-LLM factors were
/// computed from, the result is their A again (the truncated SVD of W L already minimizes the
/// whitened error for its B).
/// Computed in fp64 on `backend`; B G' Bᵀ (r×r) is factorized by Cholesky with the damping fallback
/// of pitfall 2 (first δ = first_damping; the δ used goes to `damping`). w: m×n host fp32, b: r×n.
/// Throws NumericError naming `context` when G' or the result is non-finite, B G' Bᵀ has no
/// positive trace (the inputs are all zero) or stays indefinite; ConfigError for a wrong shape.
[[nodiscard]] HostMatrix<double> refit_left_factor(linalg::Backend& backend, MatrixView<const float> w,
                                                   const HostMatrix<double>& b, const HostMatrix<double>& gram,
                                                   double first_damping, const std::string& context, double& damping);

}  // namespace caldera::algo
