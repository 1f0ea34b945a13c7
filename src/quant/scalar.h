// Uniform min-max scalar quantization per group of columns (spqr.md §4.1; the GPTQ/RTN variant of
// asvd-svdllm.md §7) and bit packing of 1..8-bit codes. The rounding rules are those of
// scalar::grid_from_range / scalar::quantize in core/e8p_tables.h (round half to even).
#pragma once

#include <cstdint>

#include "core/e8p_tables.h"
#include "linalg/backend.h"
#include "linalg/quant_kernels.h"

namespace caldera::quant {

/// A min-max group quantizer configuration. group_size 0 means one group per row.
struct GroupQuantizer {
  int bits = 4;             ///< 1..8
  int64_t group_size = 0;   ///< consecutive columns of one row sharing (scale, zero); 0 = whole row
  ScalarSymmetry symmetry = ScalarSymmetry::kAsymmetric;
  ScalarRange range = ScalarRange::kDataOnly;
  ZeroPoint zero_point = ZeroPoint::kFloat;

  /// SpQR's first-order quantizer (asymmetric, data range, fractional zero).
  static GroupQuantizer spqr(int bits, int64_t group_size) {
    return {bits, group_size, ScalarSymmetry::kAsymmetric, ScalarRange::kDataOnly, ZeroPoint::kFloat};
  }
  /// The GPTQ / RTN baseline quantizer (range contains 0, integer zero point).
  static GroupQuantizer gptq(int bits, int64_t group_size) {
    return {bits, group_size, ScalarSymmetry::kAsymmetric, ScalarRange::kIncludeZero, ZeroPoint::kRounded};
  }
  /// Throws ConfigError naming the bad field.
  void validate() const;
  /// The facet's fit parameters for a matrix with `cols` columns.
  [[nodiscard]] linalg::ScalarFitSpec fit_spec(int64_t cols) const;
};

/// Result of quantizing a whole matrix; all matrices in backend memory.
struct GroupQuantResult {
  linalg::Matrix<uint8_t> codes;  ///< rows × cols, values 0..2^bits − 1
  linalg::Matrix<float> scale;    ///< rows × n_groups
  linalg::Matrix<float> zero;     ///< rows × n_groups
  linalg::Matrix<float> xhat;     ///< rows × cols dequantized
  int bits = 0;
  int64_t group_size = 0;         ///< effective group size (cols when the quantizer said 0)
  /// The grid of this result (views into scale / zero), for scalar_quantize / LDLQ.
  [[nodiscard]] linalg::ScalarGrid grid() const {
    return {bits, group_size, 0, scale.cview(), zero.cview()};
  }
};

/// Fits the statistics of every group of x (rows × cols, backend memory) and rounds to nearest
/// (RTN). Throws ConfigError for an invalid quantizer.
[[nodiscard]] GroupQuantResult group_quantize(linalg::Backend& backend, MatrixView<const float> x,
                                              const GroupQuantizer& quantizer);

/// Packs host codes (rows × cols, each < 2^bits) LSB-first into a bit stream per row: code j of a row
/// occupies bits [j·bits, (j+1)·bits) of the row's stream, word w holding stream bits [32w, 32w+32)
/// (codes may straddle two words). Each row starts a new word: rows × ceil(cols·bits/32) words.
/// bits in 1..8; throws Error for an out-of-range code.
[[nodiscard]] HostMatrix<uint32_t> pack_bits(MatrixView<const uint8_t> codes, int bits);
/// Inverse of pack_bits for rows of `cols` codes.
[[nodiscard]] HostMatrix<uint8_t> unpack_bits(MatrixView<const uint32_t> packed, int bits, int64_t cols);

}  // namespace caldera::quant
