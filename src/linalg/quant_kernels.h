// Backend facet with the quantization kernels (Hadamard transforms, E8P lattice search, LDLQ
// panels, scalar quantizers). The algorithms that drive them live in src/quant/ (see its README);
// this facet only holds the data-parallel primitives that have a CPU and a CUDA implementation.
//
// Conventions as in linalg/backend.h: every MatrixView points into THIS backend's memory, work is
// enqueued on the backend's stream, shape errors throw caldera::Error. An "empty" optional view is
// a default-constructed MatrixView (data == nullptr). Results are deterministic: they depend only on
// the inputs, never on thread counts or launch configuration.
#pragma once

#include <cstdint>
#include <vector>

#include "core/e8p_tables.h"
#include "linalg/backend.h"

namespace caldera::linalg {

/// Had_n = (1/√n) · (H_K ⊗ S_p) with n = k·p, p a power of two, S_p the natural-order Sylvester
/// matrix and H_K a k×k ±1 Hadamard matrix (spec caldera-quipsharp.md §4.1). Built by
/// quant::hadamard_factor(n); plain data so that every backend can consume it.
struct HadamardFactor {
  int64_t n = 1;            ///< transform length
  int32_t k = 1;            ///< order of H_K (1 = pure Sylvester)
  int64_t p = 1;            ///< power-of-two Sylvester order, n = k·p
  std::vector<int8_t> hk;   ///< H_K row-major, k·k entries in {+1, −1}: hk[r·k + c] = H_K[r][c]
};

/// Operands of one LDLQ panel step (QuantKernels::ldlq_panel_*); all views m rows × w columns
/// unless stated, w ≤ 128 and w % 8 == 0.
struct LdlqPanelArgs {
  /// m × w (w ≤ 128, w % 8 == 0): B, the values the panel starts from (X or the current Ŵ).
  MatrixView<const float> base;
  /// m × w: A, feedback accumulated outside the panel.
  MatrixView<const float> acc;
  /// w × w: M; only the blocks strictly below the block diagonal (M[k-block, j-block], k > j) are read.
  MatrixView<const float> mix;
  /// w × 8, optional: block j (rows 8j..8j+7) is the 8×8 matrix N_j; empty means N_j = I.
  MatrixView<const float> block_inv;
  /// m × w output Ŵ; may alias `base` (a row of base is read before that row of Ŵ is written).
  MatrixView<float> what;
  /// m × w output Δ = base − Ŵ.
  MatrixView<float> delta;
};

/// Uniform (min-max) scalar grid for per-row groups of consecutive columns (spqr.md §4.1):
/// q = clamp(rint(x / max(s, 1e-9) + z), 0, 2^bits − 1), x̂ = s·(q − z), rint = half-to-even.
/// Column j of the quantized matrix belongs to group (col_offset + j) / group_size of its row.
struct ScalarGrid {
  int bits = 4;                      ///< 1..8
  int64_t group_size = 0;            ///< columns per group (> 0)
  int64_t col_offset = 0;            ///< column of x's first column in the matrix the stats describe
  MatrixView<const float> scale;     ///< rows × n_groups
  MatrixView<const float> zero;      ///< rows × n_groups
};

/// How scalar_fit computes (scale, zero) of a group from its min and max: see
/// scalar::grid_from_range in core/e8p_tables.h (spqr.md §4.1, asvd-svdllm.md §7).
struct ScalarFitSpec {
  int bits = 4;
  int64_t group_size = 0;  ///< > 0; the last group of a row may be shorter
  ScalarSymmetry symmetry = ScalarSymmetry::kAsymmetric;
  ScalarRange range = ScalarRange::kDataOnly;
  ZeroPoint zero_point = ZeroPoint::kFloat;
};

/// Argument checks shared by every implementation of the facet (throw caldera::Error naming the op).
namespace quant_checks {

inline bool is_empty(const auto& v) { return v.data == nullptr; }

inline void sign_vector(MatrixView<const float> s, int64_t n, const char* op, const char* name) {
  if (is_empty(s)) return;
  CALDERA_CHECK(s.size() == n && (s.rows == 1 || (s.cols == 1 && s.ld == 1)), op, ": ", name, " must be a contiguous ",
                "vector of ", n, " entries, got ", s.rows, "x", s.cols);
}

inline void hadamard(MatrixView<const float> x, const HadamardFactor& f, MatrixView<const float> signs_in,
                     MatrixView<const float> signs_out) {
  CALDERA_CHECK(f.k >= 1 && f.p >= 1 && (f.p & (f.p - 1)) == 0 && f.n == f.k * f.p &&
                    static_cast<int64_t>(f.hk.size()) == int64_t{f.k} * f.k,
                "hadamard_rows: malformed factor (n ", f.n, ", k ", f.k, ", p ", f.p, ", ", f.hk.size(), " entries)");
  CALDERA_CHECK(x.cols == f.n, "hadamard_rows: rows of length ", f.n, " expected, got ", x.rows, "x", x.cols);
  sign_vector(signs_in, f.n, "hadamard_rows", "signs_in");
  sign_vector(signs_out, f.n, "hadamard_rows", "signs_out");
}

inline void lattice(MatrixView<const float> x, MatrixView<const uint32_t> codes, LatticeCodebook cb,
                    float residual_scale, const char* op) {
  CALDERA_CHECK(x.cols % 8 == 0, op, ": columns must be a multiple of 8, got ", x.rows, "x", x.cols);
  CALDERA_CHECK(codes.rows == x.rows && codes.cols * 8 == x.cols, op, ": codes must be ", x.rows, "x", x.cols / 8,
                ", got ", codes.rows, "x", codes.cols);
  CALDERA_CHECK(cb == LatticeCodebook::kE8P12 || residual_scale > 0.0f, op,
                ": RVQ codebooks need a positive residual scale, got ", residual_scale);
}

inline void ldlq_panel(const LdlqPanelArgs& a, int64_t code_cols, int64_t code_rows) {
  const int64_t m = a.base.rows, w = a.base.cols;
  CALDERA_CHECK(w % 8 == 0 && w >= 8 && w <= 128, "ldlq_panel: panel width must be 8..128 and a multiple of 8, got ",
                w);
  CALDERA_CHECK(same_shape(a.acc, a.base) && same_shape(a.what, a.base) && same_shape(a.delta, a.base),
                "ldlq_panel: base, acc, what, delta must all be ", m, "x", w);
  CALDERA_CHECK(a.mix.rows == w && a.mix.cols == w, "ldlq_panel: mix must be ", w, "x", w, ", got ", a.mix.rows, "x",
                a.mix.cols);
  CALDERA_CHECK(is_empty(a.block_inv) || (a.block_inv.rows == w && a.block_inv.cols == 8),
                "ldlq_panel: block_inv must be ", w, "x8 or empty, got ", a.block_inv.rows, "x", a.block_inv.cols);
  CALDERA_CHECK(code_rows == m && code_cols > 0, "ldlq_panel: codes have ", code_rows, " rows, expected ", m);
}

inline void scalar_grid(const ScalarGrid& g, int64_t rows, int64_t cols, const char* op) {
  CALDERA_CHECK(g.bits >= 1 && g.bits <= 8, op, ": bits must be 1..8, got ", g.bits);
  CALDERA_CHECK(g.group_size > 0 && g.col_offset >= 0, op, ": group_size must be > 0 (got ", g.group_size,
                ") and col_offset >= 0 (got ", g.col_offset, ")");
  const int64_t groups_needed = cols == 0 ? 0 : (g.col_offset + cols - 1) / g.group_size + 1;
  CALDERA_CHECK(same_shape(g.scale, g.zero) && g.scale.rows == rows && g.scale.cols >= groups_needed, op,
                ": scale/zero must be ", rows, "x(>=", groups_needed, "), got ", g.scale.rows, "x", g.scale.cols,
                " and ", g.zero.rows, "x", g.zero.cols);
}

}  // namespace quant_checks

class QuantKernels {
 public:
  virtual ~QuantKernels() = default;

  // ---- Hadamard (spec §4.1, §4.3) ---------------------------------------------------------------
  /// In place on each row r of x (rows × f.n, any ld ≥ n):
  ///   x_r ← (Had(x_r ⊙ signs_in)) ⊙ signs_out,  Had = Had_n (Op::kNoTrans, "hadU") or Had_nᵀ
  ///   (Op::kTrans, "hadUt"), orthonormal (1/√n). signs_in / signs_out: optional 1×n vectors.
  virtual void hadamard_rows(MatrixView<float> x, const HadamardFactor& f, Op op, MatrixView<const float> signs_in,
                             MatrixView<const float> signs_out) = 0;

  // ---- lattice codebooks (spec §5) --------------------------------------------------------------
  /// Nearest-codeword encoding of every consecutive 8-vector of every row of x (rows × 8k):
  /// codes (rows × k) as in e8p::lattice_encode8, xhat (rows × 8k, may alias x; optional) the
  /// decoded values. residual_scale: σ_r for RVQ codebooks (ignored for E8P12).
  virtual void lattice_quantize(MatrixView<const float> x, LatticeCodebook cb, float residual_scale,
                                MatrixView<float> xhat, MatrixView<uint32_t> codes) = 0;
  /// xhat (rows × 8k) ← decode of codes (rows × k).
  virtual void lattice_decode(MatrixView<const uint32_t> codes, LatticeCodebook cb, float residual_scale,
                              MatrixView<float> xhat) = 0;

  // ---- LDLQ panel (spec §3.5; src/quant/ldlq.h drives it) ----------------------------------------
  /// For every row independently and for the w/8 blocks of the panel from last to first:
  ///   T_j = B_j + (A_j + Σ_{k>j} Δ_k M[k, j]) · N_j,  Ŵ_j = 𝒬(T_j),  Δ_j = B_j − Ŵ_j,
  /// with 𝒬 the nearest-codeword rounding of `cb` (codes: m × w/8).
  virtual void ldlq_panel_lattice(const LdlqPanelArgs& args, LatticeCodebook cb, float residual_scale,
                                  MatrixView<uint32_t> codes) = 0;
  /// Same recurrence with 𝒬 = element-wise rounding onto `grid` (codes: m × w, one per element).
  virtual void ldlq_panel_scalar(const LdlqPanelArgs& args, const ScalarGrid& grid, MatrixView<uint8_t> codes) = 0;

  // ---- scalar quantizers (spqr.md §4.1) ----------------------------------------------------------
  /// Fits (scale, zero) of every group of every row of x (rows × cols) → scale, zero (rows ×
  /// ceil(cols / group_size)).
  virtual void scalar_fit(MatrixView<const float> x, const ScalarFitSpec& spec, MatrixView<float> scale,
                          MatrixView<float> zero) = 0;
  /// codes (optional, rows × cols) and xhat (optional, rows × cols, may alias x) of x on the grid.
  virtual void scalar_quantize(MatrixView<const float> x, const ScalarGrid& grid, MatrixView<uint8_t> codes,
                               MatrixView<float> xhat) = 0;
  /// xhat ← s·(q − z) for codes (rows × cols).
  virtual void scalar_dequantize(MatrixView<const uint8_t> codes, const ScalarGrid& grid, MatrixView<float> xhat) = 0;
};

}  // namespace caldera::linalg
