// SpQR's quantizer (spqr.md §4-§6): the first-order min-max grid over small column groups, the
// second-order ("bilevel") quantization of its statistics, the outlier criterion with the
// leave-one-out pre-filter, the exact bit accounting, and the encoding SpQR stores per matrix.
//
// Everything here is host code on plain spans; the GPTQ engine (gptq_core.h) drives
// SpqrColumnQuantizer column by column. All column indices are in PERMUTED coordinates.
//
// Statistics precision (spqr.md pitfall 5): second-order statistics (and unquantized first-order
// statistics when stat_bits == 16) are rounded to fp16 INSIDE the quantizer, before they are used,
// so GPTQ compensates for that rounding and the stored model decodes to exactly the simulated Ŵ.
// Outlier values are likewise rounded to fp16 inside the loop and stored as residuals over the
// dense code's value (spqr.md §6.4, §7.3), so decode = Deq(code) + residual with no masking.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "algo/gptq_core.h"
#include "core/dtype.h"
#include "core/e8p_tables.h"
#include "core/matrix.h"

namespace caldera::algo {

/// Shape of one SpQR configuration (spqr.md notation: b, b_s = b_z, β1, β2).
struct SpqrFormat {
  int bits = 3;                    ///< b: weight code bits, 1..16
  int stat_bits = 3;               ///< b_s = b_z: 1..8 bilevel; 16 = fp16 statistics; 32 = fp32 statistics
  int64_t group_size = 16;         ///< β1: consecutive (permuted) input columns sharing one scale/zero per row
  int64_t stat_group_size = 16;    ///< β2: consecutive rows whose statistics are quantized together

  bool bilevel() const noexcept { return stat_bits <= 8; }
  uint32_t maxq() const noexcept { return (1u << bits) - 1u; }
  int64_t column_groups(int64_t n) const noexcept { return (n + group_size - 1) / group_size; }
  int64_t row_blocks(int64_t m) const noexcept { return (m + stat_group_size - 1) / stat_group_size; }
};

/// First-order statistics of one row of one group.
struct MinMax {
  float scale = 0.0f;
  float zero = 0.0f;
};

/// spqr.md §4.1 grid of a row group with extremes lo <= hi, through the shared scalar grid
/// (core/e8p_tables.h): asymmetric, zero NOT rounded, range NOT widened to include 0, degenerate
/// lo == hi mapped to [−1, 1]. Codes: scalar::quantize (clamp(rint(x/max(s,1e-9) + z), 0, maxq),
/// half to even); values: scalar::dequantize (s·(q − z)), the one place Ŵ values are formed.
inline MinMax spqr_grid(float lo, float hi, int bits) {
  MinMax g;
  scalar::grid_from_range(lo, hi, bits, ScalarSymmetry::kAsymmetric, ScalarRange::kDataOnly, ZeroPoint::kFloat,
                          &g.scale, &g.zero);
  return g;
}

/// Fp16 pair (scale, zero) of one block of statistics (spqr.md §4.2: ss, sz or zs, zz).
struct StatPair {
  uint16_t scale_f16 = 0;
  uint16_t zero_f16 = 0;
};

/// spqr.md §4.2: quantizes `values` (the first-order scales, or zeros, of one block of β2 rows)
/// with the same min-max quantizer at `bits` bits. The pair is rounded to fp16 before use. Writes
/// codes[k] in [0, 2^bits−1] and dequantized[k] = ss·(codes[k] − sz) in fp32; the block's min and
/// max map to codes 0 and 2^bits−1. Should fp16 not hold the reference pair (ss below the fp16
/// range or |sz| above it, only for blocks whose values agree to ~1e-4), the range is widened to
/// include 0, which keeps both finite. Spans have equal sizes >= 1.
StatPair quantize_statistics(std::span<const float> values, int bits, std::span<uint8_t> codes,
                             std::span<float> dequantized);

/// spqr.md §5.2: for one row of a group (x: its g current values, d: U_jj of its columns), the
/// squared-error reduction r[k] = base − loo_k of keeping weight k in fp16, where base is the
/// 1/d-weighted squared error of the plain min-max quantizer fit on all g values and loo_k that of
/// the quantizer fit without x[k] (on the other values only). g == 1: r[0] = base. Only a unique
/// min or max changes the grid when left out, so the others cost O(1) each (r[k] = own term).
void leave_one_out_reduction(std::span<const float> x, std::span<const float> d, int bits, std::span<float> r);

/// spqr.md §5.1: σ² = mean_j(var_i(W_ij) / d_j²), variance over rows, unbiased; w is the permuted,
/// dead-zeroed, not yet quantized matrix. Returns +inf for a single row (no variance: no outliers).
double outlier_scale(MatrixView<const float> w, std::span<const float> d);

/// spqr.md §6.1 nominal average bits per weight:
///   b + (b_s + b_z)/β1 + 64/(β1·β2) + 32·r_o   (bilevel statistics), or
///   b + 2·stat_bits/β1 + 32·r_o                 (fp16 or fp32 statistics).
double spqr_average_bits(const SpqrFormat& format, double outlier_rate);

/// Exact bits of the §6.1 components for an m×n matrix with `outliers` outliers: codes, per
/// (row, group) statistics, 64 bits per (row block, group) of second-order pairs, 32 per outlier.
/// Equals spqr_average_bits·m·n when β1 | n and β2 | m; partial groups and blocks count as whole.
double spqr_storage_bits(const SpqrFormat& format, int64_t m, int64_t n, int64_t outliers);

/// The bits §6.1 leaves out (spqr.md pitfall 13): CSR row pointers (32·(m+1)) and the permutation
/// (16 bits per column for n <= 65536, else 32).
double spqr_index_bits(int64_t m, int64_t n);

/// What SpQR stores for one m×n matrix (spqr.md §7.1/§7.3), in permuted column coordinates.
struct SpqrEncoding {
  SpqrFormat format;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int32_t> perm;          ///< cols: permuted column j is original column perm[j]
  std::vector<uint16_t> codes;        ///< rows×cols, row-major, in [0, 2^bits − 1]
  // Bilevel statistics (format.bilevel()): G = column_groups(cols), R = row_blocks(rows).
  std::vector<uint8_t> scale_codes;   ///< rows×G: s_code of (row, group)
  std::vector<uint8_t> zero_codes;    ///< rows×G: z_code of (row, group)
  std::vector<uint16_t> scale_stats;  ///< R×G×2 fp16: (ss, sz) of (row block, group)
  std::vector<uint16_t> zero_stats;   ///< R×G×2 fp16: (zs, zz) of (row block, group)
  // Unquantized statistics (stat_bits 16 or 32): fp32 values, fp16-exact when stat_bits == 16.
  std::vector<float> scales;          ///< rows×G
  std::vector<float> zeros;           ///< rows×G
  // Outliers, CSR over rows, columns ascending within a row.
  std::vector<int32_t> row_ptr;       ///< rows+1
  std::vector<int32_t> outlier_cols;  ///< nnz, permuted column index
  std::vector<uint16_t> outlier_residuals;  ///< nnz fp16: Ŵ_ij − Deq(code_ij)

  int64_t outliers() const noexcept { return static_cast<int64_t>(outlier_cols.size()); }
  /// Throws IoError naming the first inconsistency (sizes, code ranges, CSR order, permutation).
  void validate() const;
};

/// Ŵ in permuted coordinates (rows×cols host): Deq(code) with the decoded statistics, plus the
/// outlier residuals. Bit-identical to the values SpqrColumnQuantizer returned while encoding.
HostMatrix<float> decode_permuted(const SpqrEncoding& encoding);

/// How outlier candidates are excluded from the statistics (spqr.md §5.2).
enum class OutlierSelection : uint8_t {
  kLeaveOneOut,  ///< default: LOO pre-filter, candidates replaced by the row mean before the fit
  kSimplified,   ///< fit on the raw group (faster, "generally worse")
};

/// The SpQR rule for "quantize column j" (spqr.md §4, §5.2, §5.3) plugged into gptq_quantize().
/// Records codes, statistics and outliers; take them with release_encoding() afterwards.
class SpqrColumnQuantizer final : public ColumnQuantizer {
 public:
  /// rows×cols matrix; threshold θ = τ·σ² (+inf: no outliers, statistics fit on raw groups).
  SpqrColumnQuantizer(const SpqrFormat& format, int64_t rows, int64_t cols, double threshold,
                      OutlierSelection selection);

  int64_t group_size() const override { return format_.group_size; }
  void begin_group(int64_t j0, MatrixView<const float> group, std::span<const float> d) override;
  float quantize(int64_t row, int64_t col, float w, float d) override;

  int64_t outliers() const;
  /// The encoding (CSR assembled); `perm` is copied in. Call once, after the GPTQ loop.
  SpqrEncoding release_encoding(std::span<const int32_t> perm);

 private:
  SpqrFormat format_;
  int64_t rows_;
  int64_t cols_;
  double threshold_;
  OutlierSelection selection_;
  int64_t groups_;
  SpqrEncoding enc_;
  std::vector<float> scale_;  ///< rows: dequantized scale of the current group
  std::vector<float> zero_;   ///< rows: dequantized zero of the current group
  struct Outlier {
    int32_t col;
    uint16_t residual;
  };
  std::vector<std::vector<Outlier>> row_outliers_;
};

}  // namespace caldera::algo
