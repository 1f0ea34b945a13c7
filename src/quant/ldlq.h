// LDLQ: Hessian-aware rounding with block feedback and block Gauss-Seidel tune sweeps (spec
// caldera-quipsharp.md §3.4-§3.6).
//
// Initial pass, blocks j = n/8−1 … 0:   T_j = X_j + Σ_{k>j} (X − Ŵ)_k 𝐋[k, j],  Ŵ_j = 𝒬(T_j).
// Tune sweep (block Gauss-Seidel on tr((X−Ŵ)H'(X−Ŵ)ᵀ)), blocks j = n/8−1 … 0:
//                                        T_j = Ŵ_j + (X − Ŵ) H'[:, j] (H'_jj)⁻¹,  Ŵ_j = 𝒬(T_j).
// Implementation (the same on every backend): 128-column panels from right to left. The initial
// pass keeps F = Σ_{panels done} (X−Ŵ)_panel 𝐋[panel, :] up to date with one GEMM per panel; a tune
// sweep computes P = (X−Ŵ) H'[:, panel] with one GEMM at each panel start. Inside a panel the
// facet's ldlq_panel_* kernel runs the 16 sequential block steps per row, adding the feedback of
// the blocks already done in the panel. After the initial pass (X − Ŵ)𝐋 = E, the per-block rounding
// errors, so tr((X−Ŵ)H'(X−Ŵ)ᵀ) = tr(E D Eᵀ). Indices always match the returned Ŵ.
#pragma once

#include <cstdint>

#include "core/e8p_tables.h"
#include "linalg/backend.h"
#include "linalg/quant_kernels.h"
#include "quant/ldl.h"

namespace caldera::quant {

/// Columns per LDLQ panel (16 blocks of 8).
inline constexpr int64_t kLdlqPanelCols = 128;

/// The rounding 𝒬 used inside LDLQ: a lattice codebook, or a scalar grid whose (scale, zero)
/// statistics were fitted beforehand (e.g. with scalar_fit on X) and stay fixed.
struct LdlqQuantizer {
  enum class Kind : uint8_t { kLattice, kScalar };
  Kind kind = Kind::kLattice;
  LatticeCodebook codebook = LatticeCodebook::kE8P12;
  float residual_scale = 0.0f;
  linalg::ScalarGrid grid;  ///< kScalar: stats for the whole m × n matrix (col_offset 0)

  /// Lattice rounding with the codebook's residual scale σ_r (§5.7) unless one is given.
  static LdlqQuantizer lattice(LatticeCodebook cb) { return lattice(cb, lattice_default_residual_scale(cb)); }
  static LdlqQuantizer lattice(LatticeCodebook cb, float residual_scale) {
    LdlqQuantizer q;
    q.kind = Kind::kLattice;
    q.codebook = cb;
    q.residual_scale = residual_scale;
    return q;
  }
  static LdlqQuantizer scalar(const linalg::ScalarGrid& grid) {
    LdlqQuantizer q;
    q.kind = Kind::kScalar;
    q.grid = grid;
    return q;
  }
};

struct LdlqResult {
  linalg::Matrix<float> what;             ///< m × n Ŵ, in X's units
  linalg::Matrix<uint32_t> codes;         ///< kLattice: m × n/8 (layout of quant/lattice.h); else empty
  linalg::Matrix<uint8_t> scalar_codes;   ///< kScalar: m × n grid codes; else empty
};

/// LDLQ of x (m × n, n % 8 == 0) against h (n × n, the H' that `ldl` was computed from), both in
/// backend memory, followed by `tune_iters` tune sweeps (≥ 0; the reference uses 10). Deterministic.
/// Throws Error on shape mismatches.
[[nodiscard]] LdlqResult ldlq(linalg::Backend& backend, MatrixView<const float> x, MatrixView<const float> h,
                              const BlockLdl& ldl, const LdlqQuantizer& quantizer, int tune_iters);

/// tr((W − Ŵ) H (W − Ŵ)ᵀ) (the proxy loss), computed as Σ((E H) ⊙ E) with E = W − Ŵ.
[[nodiscard]] double proxy_loss(linalg::Backend& backend, MatrixView<const float> w, MatrixView<const float> what,
                                MatrixView<const float> h);

/// §3.4 + §3.5 for a lattice codebook: s = RMS(a), ρ = input_rms (the codebook's opt_scale 1.03 /
/// 0.98 / 1.03 when ≤ 0; QuIP#'s 2-bit recipe uses 0.9, pitfall P7), X = a·ρ/s, Ŵ = LDLQ(X),
/// Q = Ŵ·s/ρ. A zero matrix gives Q = 0 and scale 0.
struct LatticeLdlq {
  linalg::Matrix<float> q;          ///< m × n dequantized Q (units of a)
  linalg::Matrix<uint32_t> codes;   ///< m × n/8
  float scale = 0.0f;               ///< Q_scale = s/ρ: Q = Q_scale · DECODE(codes)
};
struct LatticeLdlqOptions {
  LatticeCodebook codebook = LatticeCodebook::kE8P12;
  float input_rms = 0.0f;  ///< ρ; ≤ 0 selects lattice_opt_scale(codebook)
  int tune_iters = 10;
};
[[nodiscard]] LatticeLdlq ldlq_lattice_scaled(linalg::Backend& backend, MatrixView<const float> a,
                                              MatrixView<const float> h, const BlockLdl& ldl,
                                              const LatticeLdlqOptions& options);

}  // namespace caldera::quant
