// Quantization of the low-rank factors L and R (spec caldera-quipsharp.md §2.4 QUANT_FACTOR).
//
// A factor is always quantized in "row" form: Lᵀ (k×m) or R (k×n), so that consecutive 8-vectors
// run along a row (spec §2.4) and a row is one rank component. Two scale modes:
//  - kPerTensor: the paper's recipe, one RMS scale for the whole factor (fp32);
//  - kPerRow:    one scale per row = per rank component (stored as fp16, and the fp16-rounded
//                value is the one used, so the dequantized factor equals what is stored).
// Rows (or the tensor) with RMS 0 get scale 0 and dequantize to exactly 0 (pitfall P4).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/matrix.h"
#include "core/tensor_map.h"
#include "linalg/backend.h"

namespace caldera::algo {

/// Number format of quantized factors (`--factor-format`).
enum class FactorFormat : uint8_t {
  kE8p,      ///< E8P lattice codebook family (spec §5): 2 → E8P12, 3 → RVQ3B, 4 → RVQ4B
  kUniform,  ///< scalar min-max uniform quantizer per row
};
/// Scale granularity of quantized factors (`--factor-scales`).
enum class FactorScaleMode : uint8_t { kPerTensor, kPerRow };

std::string_view to_string(FactorFormat f) noexcept;
std::string_view to_string(FactorScaleMode s) noexcept;

/// A quantized factor X̂ (rows×cols, Lᵀ or R) in backend memory. `values` always equals
/// dequantize(codes, scales) bit for bit.
struct QuantizedFactor {
  linalg::Matrix<float> values;   ///< rows×cols dequantized factor
  linalg::Matrix<int64_t> codes;  ///< packed codes, format-specific shape (see the quantizer)
  linalg::Matrix<float> scales;   ///< 1×1 (per tensor) or rows×1 (per row)
};

/// Deep copy of `src` into `dst` (reallocating `dst` when shapes differ), on `backend`'s stream.
void copy_factor(linalg::Backend& backend, const QuantizedFactor& src, QuantizedFactor& dst);

/// Quantizer for factors. Implementations are stateless and deterministic.
class FactorQuantizer {
 public:
  virtual ~FactorQuantizer() = default;
  /// Quantizes x (rows×cols, backend fp32) into `out` (reallocated as needed). Throws Error when
  /// the shape violates the format's divisibility rules (named in the message).
  virtual void quantize(linalg::Backend& backend, MatrixView<const float> x, QuantizedFactor& out) const = 0;
  /// Rebuilds out.values from out.codes and out.scales (used on resume and in reconstruct).
  virtual void dequantize(linalg::Backend& backend, QuantizedFactor& factor) const = 0;
  /// Bits per factor entry of the codes (excluding scales).
  virtual int code_bits() const noexcept = 0;
  /// Storage bits of the scales of a rows×cols factor that grow with the rank (per-row fp16 scales:
  /// 16·rows; a per-tensor scale is a single scalar, excluded like the paper's, so 0).
  virtual double scale_bits(int64_t rows) const noexcept = 0;
  /// Short description for logs and parameters(), e.g. "e8p-rvq4b/per-row".
  virtual std::string describe() const = 0;
};

}  // namespace caldera::algo
