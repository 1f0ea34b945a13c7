// E8P12 lattice codebook and its RVQ variants (spec caldera-quipsharp.md §5): encoding through
// the backend, index packing (§5.5) and QUANT_FACTOR (§2.4).
//
// Code matrices (Matrix<uint32_t>, rows × cols/8): one code per consecutive 8-vector of a row.
//   kE8P12:       the 16-bit E8P code c (§5.3-§5.4);
//   kE8P12RVQ4B:  (c₁ << 16) | c₂, both 16-bit E8P codes (§5.6);
//   kE8P12RVQ3B:  (c₁ << 16) | g,  g the 8-bit E81B index of the residual (§5.6).
// The residual scale σ_r is a per-codebook constant (lattice_default_residual_scale: 2.04, 3.45)
// stored with the layer; CALDERA's 0.9 override is deliberately not reproduced (pitfall P6).
#pragma once

#include <cstdint>

#include "core/e8p_tables.h"
#include "linalg/backend.h"
#include "linalg/quant_kernels.h"

namespace caldera::quant {

/// Nearest-codeword rounding of every 8-vector of every row of x (rows × 8k, backend memory):
/// xhat (rows × 8k, may alias x) and codes (rows × k). Exact search of §5.4 with the
/// deterministic tie rules of core/e8p_tables.h, identical on every backend.
void lattice_quantize(linalg::Backend& backend, MatrixView<const float> x, LatticeCodebook codebook,
                      float residual_scale, MatrixView<float> xhat, MatrixView<uint32_t> codes);

/// QUANT_FACTOR(X, B) of §2.4: s = RMS(x); X̂ = s·DECODE(NEAREST(X/s)) with the codebook's default
/// residual scale, no Hessian, no opt_scale. A zero matrix gives s = 0 and X̂ = 0 (codes of 0).
struct FactorQuant {
  linalg::Matrix<float> xhat;      ///< rows × cols, backend memory
  linalg::Matrix<uint32_t> codes;  ///< rows × cols/8, backend memory
  float scale = 0.0f;              ///< s
};
[[nodiscard]] FactorQuant quant_factor(linalg::Backend& backend, MatrixView<const float> x, LatticeCodebook codebook);

/// RMS of a matrix (sqrt of the mean square, accumulated in double); 0 for an empty matrix.
[[nodiscard]] double rms(linalg::Backend& backend, MatrixView<const float> x);

/// Packs a host code matrix (rows × cols/8, layout above) into QuIP#'s int64 layout (§5.5):
/// rows × cols/32 (E8P12), rows × 3·cols/64 (RVQ3B: [E8P part | E81B part]), rows × cols/16
/// (RVQ4B: [first stage | residual stage]). Requires rows % 16 == 0 and cols % 64 == 0 (throws
/// Error otherwise) and codes within their field widths.
[[nodiscard]] HostMatrix<int64_t> pack_lattice_codes(MatrixView<const uint32_t> codes, LatticeCodebook codebook);
/// Exact inverse of pack_lattice_codes; `cols` is the number of weights per row.
[[nodiscard]] HostMatrix<uint32_t> unpack_lattice_codes(MatrixView<const int64_t> packed, LatticeCodebook codebook,
                                                        int64_t cols);

}  // namespace caldera::quant
