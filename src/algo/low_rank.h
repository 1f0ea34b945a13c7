// The LR update of CALDERA (spec caldera-quipsharp.md §2): the data-aware rank-constrained
// initialisation (§2.1) and the LPLR alternating loop with quantized factors (§2.3).
//
// Everything is written in whitened coordinates: with the lower Cholesky factor C of H (H = C Cᵀ),
//   ‖(A − LR) H½‖_F = ‖(A − LR) C‖_F,
// so the spec's symmetric square root H½ (and its eigendecomposition) is never needed: the
// minimisers and errors are identical, and C is computed once per matrix. Inputs carry
// Ã = A·C, hoisted out of the inner loop (spec §2.3 efficiency note).
#pragma once

#include <cstdint>
#include <vector>

#include "algo/factor_quant.h"
#include "core/matrix.h"
#include "core/rng.h"
#include "linalg/backend.h"
#include "quant/ldl.h"

namespace caldera::algo {

/// How the top-k left singular vectors of Ã are computed (`--lr-svd`).
enum class LrSvdSolver : uint8_t {
  kExact,       ///< eigendecomposition of the smaller fp64 Gram matrix (ÃÃᵀ or ÃᵀÃ); exact
  kRandomized,  ///< Halko et al. range finder, sketch 2k, 2 power iterations (spec §2.1 rand_svd)
};
/// How the initial factors share the singular values (`--lr-split`).
enum class LrSplit : uint8_t {
  kUnbalanced,  ///< paper: L₀ = U_k orthonormal, R₀ = U_kᵀA carries the singular values
  kBalanced,    ///< L₀ = U_k D, R₀ = D⁻¹U_kᵀA with D = diag(√‖row i of U_kᵀA‖): equal column/row norms
};

std::string_view to_string(LrSvdSolver s) noexcept;
std::string_view to_string(LrSplit s) noexcept;

/// Sketch size and power iterations of LrSvdSolver::kRandomized (torch.svd_lowrank as used by the
/// reference: q = min(2k, min(m, n)), niter = 2).
inline constexpr int kRandomizedPowerIters = 2;

/// Backend data of one LR update. All fp32, row-major, backend memory, alive for the call.
struct LrProblem {
  MatrixView<const float> a;        ///< m×n residual A = W − Q
  MatrixView<const float> a_white;  ///< m×n Ã = A·C
  MatrixView<const float> chol;     ///< n×n lower Cholesky factor C of H
};

/// A pair of unquantized factors (backend, fp32).
struct LowRankPair {
  linalg::Matrix<float> l;  ///< m×k
  linalg::Matrix<float> r;  ///< k×n
};

/// Spec §2.1: L₀R₀ = argmin_{rank X ≤ k} ‖(A − X)C‖_F = U_k U_kᵀ A, with U_k the top-k left
/// singular vectors of Ã = A·C (identical to the spec's Y = A·H½·V formulation, without H^{-½}).
/// `sketch` seeds the Gaussian test matrix of kRandomized (unused by kExact). Requires
/// 1 <= rank <= min(m, n). Enqueued on `backend`; synchronises for the small eigensolves.
[[nodiscard]] LowRankPair lr_init(linalg::Backend& backend, const LrProblem& problem, int64_t rank, LrSvdSolver solver,
                                  LrSplit split, const Rng& sketch);

/// Result of the LPLR loop: the best quantized pair seen.
struct LplrResult {
  QuantizedFactor l_t;              ///< quantized Lᵀ (k×m)
  QuantizedFactor r;                ///< quantized R (k×n)
  linalg::Matrix<float> l;          ///< m×k, the transpose of l_t.values
  /// Relative whitened error ‖(A − L̂R̂)C‖_F / ‖Ã‖_F of every candidate, in order: [0] is the
  /// directly quantized initialisation, [t] the t-th alternating iteration.
  std::vector<double> errors;
  int best_candidate = -1;          ///< index into `errors` of the returned pair
};

/// Options of the LPLR loop.
struct LplrOptions {
  int iters = 0;  ///< T_in >= 0
  /// FactorRounding::kLdlq: R's rows are rounded by LDLQ against `h` (n×n, the layer Hessian that C
  /// factors) with `tune_iters` sweeps, using its block LDL `h_ldl`. Null: nearest rounding (paper).
  /// With L̂ fixed, ‖(A − L̂R̂)C‖² = ‖(A − L̂R*)C‖² + tr(L̂ᵀL̂ ΔR H ΔRᵀ) (R* the least-squares R,
  /// ΔR = R* − R̂), and L̂ᵀL̂ is close to diagonal, so the H-weighted row errors LDLQ minimises are
  /// the ones that matter. (L's counterpart R̂HR̂ᵀ is itself close to diagonal, so L keeps nearest
  /// rounding.)
  const quant::BlockLdl* h_ldl = nullptr;
  MatrixView<const float> h;
  int tune_iters = 0;
};

/// Spec §2.3 LPLR loop on Lᵀ and R with `quant_l` (applied to Lᵀ) and `quant_r`:
///   L ← argmin ‖(A − LR)C‖ (fp64 k×k solve of R̃R̃ᵀ, R̃ = RC), quantize Lᵀ;
///   R ← argmin ‖A − L̂R‖   (fp64 k×k solve of L̂ᵀL̂),            quantize R;
///   e ← ‖(A − L̂R̂)C‖ by the expanded trace ‖Ã‖² − 2⟨L̂, ÃR̃ᵀ⟩ + ⟨L̂ᵀL̂, R̃R̃ᵀ⟩ (no m×n product).
/// Best iterate by strict "<" over quantized candidates only (pitfall P5); the directly quantized
/// initialisation is candidate 0 (a superset of the spec's candidates, so the result is never worse
/// than quantizing the initialisation). Throws NumericError when every candidate's error is
/// non-finite.
[[nodiscard]] LplrResult lplr(linalg::Backend& backend, const LrProblem& problem, const LowRankPair& init,
                              const FactorQuantizer& quant_l, const FactorQuantizer& quant_r,
                              const LplrOptions& options);

/// b (rows×k, fp32) ← b·G⁻¹ for symmetric positive (semi)definite G (k×k, fp64), solved in fp64 by
/// Cholesky; on failure a diagonal jitter growing from 1e-12·mean(diag G) is added (logged).
void solve_spd_right(linalg::Backend& backend, MatrixView<const double> g, MatrixView<float> b);
/// b (k×cols, fp32) ← G⁻¹·b, as solve_spd_right.
void solve_spd_left(linalg::Backend& backend, MatrixView<const double> g, MatrixView<float> b);
/// G (k×k, fp64) ← xᵀx for x (rows×k, fp32), accumulated in fp64.
void gram_cols_f64(linalg::Backend& backend, MatrixView<const float> x, MatrixView<double> g);
/// G (k×k, fp64) ← x xᵀ for x (k×cols, fp32), accumulated in fp64.
void gram_rows_f64(linalg::Backend& backend, MatrixView<const float> x, MatrixView<double> g);

}  // namespace caldera::algo
