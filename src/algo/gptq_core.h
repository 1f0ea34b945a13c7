// The GPTQ engine shared by plain GPTQ (a baseline) and SpQR: Hessian preparation, the column
// permutation, and the blocked column loop with error feedback (spqr.md §3).
//
// Division of labour between host and backend:
//  - O(n³) and O(m·n²) work runs on the Backend: Cholesky of the damped Hessian, its inverse, the
//    Cholesky of the inverse (fp64), and the lazy block updates W[:, be:] -= E·U[bs:be, be:] (one
//    fp32 GEMM per 128-column block). The same code therefore runs on CPU and CUDA.
//  - The inherently sequential column loop inside one block (O(m·B²) per block) runs on the host
//    on a downloaded m×B panel, rows in parallel (OpenMP). The quantizer (what "round column j"
//    means: GPTQ's min-max grid, SpQR's bilevel groups and outliers) is a ColumnQuantizer.
//
// Coordinates: everything in this header after prepare_gptq_hessian() lives in PERMUTED column
// coordinates: permuted column j is original column perm[j] (spqr.md §3.2).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "algo/method.h"
#include "core/matrix.h"
#include "linalg/backend.h"

namespace caldera::algo {

/// Column processing order (spqr.md §3.2). kActOrder: diag(H) descending (ties: lower index first).
enum class ColumnOrder : uint8_t { kIdentity, kActOrder };
std::string_view to_string(ColumnOrder order) noexcept;

struct GptqHessianOptions {
  /// λ = percdamp · mean_j |H_jj| is added to the diagonal (spqr.md §3.3). > 0.
  double percdamp = 0.01;
  ColumnOrder order = ColumnOrder::kActOrder;
  /// When a Cholesky fails (spqr.md pitfall 2), λ is multiplied by 10 and the factorisation is
  /// retried this many times; the damping actually used is reported (never silently changed).
  int max_damping_retries = 4;
};

/// A layer's Hessian prepared for GPTQ (spqr.md §3.1-§3.3), in permuted coordinates.
struct GptqHessian {
  /// n entries: permuted column j is original column perm[j].
  std::vector<int32_t> perm;
  /// n entries (permuted): 1 where H_jj == 0 before damping (the column never sees input).
  std::vector<uint8_t> dead;
  /// Backend n×n fp32, lower triangular L with H⁻¹ = L Lᵀ (zero above the diagonal); the spec's
  /// upper factor is U = Lᵀ, so U[j, k] = chol_inv(k, j).
  linalg::Matrix<float> chol_inv;
  /// n entries: d_j = U_jj (host).
  std::vector<float> d;
  /// The percdamp actually used (differs from the option only after Cholesky retries).
  double percdamp_used = 0.0;

  int64_t n() const noexcept { return static_cast<int64_t>(perm.size()); }
};

/// Builds H = (2/N_seq)·Σxxᵀ from `stats` (spqr.md §3.1; the scale cancels everywhere but is kept
/// for reproducibility; 2/count when n_sequences is 0), permutes it (§3.2), marks dead columns,
/// damps, and computes the upper Cholesky factor of H⁻¹ (§3.3) in fp64 on `backend`, stored in
/// fp32. Throws Error when stats is not n×n with n > 0, ConfigError for
/// percdamp <= 0, NumericError when H stays non-positive-definite after all retries.
GptqHessian prepare_gptq_hessian(linalg::Backend& backend, const InputStats& stats, const GptqHessianOptions& options);

/// W[:, perm] with the dead columns set to 0 (spqr.md §3.3). w: m×n host; returns m×n host.
HostMatrix<float> permute_columns(MatrixView<const float> w, std::span<const int32_t> perm,
                                  std::span<const uint8_t> dead);
/// Inverse of the permutation: out[:, perm[j]] = w[:, j]. w: m×n host (permuted coordinates).
HostMatrix<float> unpermute_columns(MatrixView<const float> w, std::span<const int32_t> perm);
/// Throws `E` naming `what` unless perm is a permutation of 0..n-1.
void check_permutation(std::span<const int32_t> perm, int64_t n, std::string_view what);

/// What "quantize a column" means for one method. The engine calls begin_group() at every group
/// start, then quantize() once for every weight of the group in column order per row; rows of a
/// group are processed concurrently, so quantize() must be safe to call at the same time for
/// different rows (and must not throw).
class ColumnQuantizer {
 public:
  virtual ~ColumnQuantizer() = default;
  /// Columns per statistics group, > 0 (>= n: one group for the whole matrix).
  virtual int64_t group_size() const = 0;
  /// Fits the statistics of columns [j0, j0 + g), g = min(group_size, n - j0). `group` (m×g
  /// host) holds their CURRENT values (all feedback from earlier columns applied); d = U_jj.
  virtual void begin_group(int64_t j0, MatrixView<const float> group, std::span<const float> d) = 0;
  /// Quantizes weight (row, col) whose current value is w; returns ŵ, the value GPTQ keeps
  /// (the scaled error (w − ŵ)/d is fed back to the later columns).
  virtual float quantize(int64_t row, int64_t col, float w, float d) = 0;
};

/// Where the time of gptq_quantize() went (seconds, accumulated over calls).
struct GptqTimings {
  double host_s = 0.0;     ///< the sequential column loop on the host (statistics, rounding, feedback)
  double backend_s = 0.0;  ///< panel transfers and the lazy-update GEMMs on the backend
};

struct GptqLoopOptions {
  /// Lazy-update block width B (spqr.md §3.4; does not change results beyond round-off). The
  /// engine widens it to a multiple of the group size when needed (pitfall 8).
  int64_t block_size = 128;
  /// Called with the fraction of columns done after every block (may be empty).
  std::function<void(double)> progress;
  /// When set, the loop's time is added to it.
  GptqTimings* timings = nullptr;
};

/// Block width actually used for group size g on n columns: B itself when groups and blocks
/// nest (g >= n, g % B == 0 or B % g == 0), else the smallest multiple of g above B.
int64_t effective_block_size(int64_t block_size, int64_t group_size, int64_t n);

/// Runs the blocked GPTQ column loop (spqr.md §3.4) on w (m×n host, permuted, dead columns
/// zeroed) with the prepared Hessian. Returns Ŵ (m×n host, permuted coordinates): column by
/// column the values returned by quantizer.quantize(). Allocates m×n + m×B fp32 on the backend.
HostMatrix<float> gptq_quantize(linalg::Backend& backend, MatrixView<const float> w, const GptqHessian& hessian,
                                ColumnQuantizer& quantizer, const GptqLoopOptions& options);

/// The shared error metric of UnitMetrics::rel_error (algo/hessian.h: process_hessian with the
/// default ridge, ActivationErrorMeter): sqrt(tr(ΔHΔᵀ)/tr(WHWᵀ)), Δ = Ŵ − W, H processed as
/// caldera-quipsharp.md §6.5 (Σxxᵀ/count scaled to mean diagonal 1, plus 0.01·I).
/// w, w_hat: m×n host, original coordinates. Runs its GEMMs on `backend`. Throws NumericError
/// when every input of the layer is zero (no metric exists).
double hessian_relative_error(linalg::Backend& backend, MatrixView<const float> w, MatrixView<const float> w_hat,
                              const InputStats& stats);

}  // namespace caldera::algo
