// Quantization of the low-rank factors L and R (spec caldera-quipsharp.md §2.4 QUANT_FACTOR),
// built on the quant module's lattice and scalar primitives.
//
// A factor is always quantized in "row" form: Lᵀ (k×m) or R (k×n), so that consecutive 8-vectors
// run along a row (spec §2.4) and a row is one rank component.
//  - FactorFormat::kE8p with FactorScaleMode::kPerTensor is the paper's recipe: one RMS scale s for
//    the whole factor (fp32), X̂ = s·DECODE(NEAREST(X/s)) with the E8P codebook of the bit width.
//  - FactorFormat::kE8p with FactorScaleMode::kPerRow: one RMS scale per row = per rank component,
//    rounded to fp16 before use (so the stored fp16 value is exactly the one applied). The paper's
//    single scale crushes the rows of R that carry small singular values; per-row scales do not.
//  - FactorFormat::kUniform: min-max scalar quantization, one (scale, zero) pair per row, both
//    rounded to fp16 before use.
// Rows (or a tensor) that are entirely 0 get scale 0 and dequantize to exactly 0 (pitfall P4).
// In every format `values` is produced by dequantize(), so a factor rebuilt from its stored codes
// and scales is bit-identical to the one used during compression.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/matrix.h"
#include "core/tensor_map.h"
#include "linalg/backend.h"
#include "quant/ldl.h"

namespace caldera::algo {

/// Number format of quantized factors (`--factor-format`).
enum class FactorFormat : uint8_t {
  kE8p,      ///< E8P lattice codebook family (spec §5): 2 → E8P12, 3 → E8P12RVQ3B, 4 → E8P12RVQ4B
  kUniform,  ///< scalar min-max uniform quantizer, one group per row, 2..8 bits
};
/// Scale granularity of E8P-quantized factors (`--factor-scales`).
enum class FactorScaleMode : uint8_t { kPerTensor, kPerRow };
/// Rounding of R in the LPLR loop (`--factor-rounding`).
enum class FactorRounding : uint8_t {
  kNearest,  ///< paper: nearest codeword, not data-aware (spec §2.4)
  kLdlq,     ///< R's rows by LDLQ against the layer Hessian H (spec §3.5 applied to R; see lplr())
};

std::string_view to_string(FactorFormat f) noexcept;
std::string_view to_string(FactorScaleMode s) noexcept;
std::string_view to_string(FactorRounding r) noexcept;

/// A quantized factor X̂ (rows×cols, Lᵀ or R) in backend memory.
struct QuantizedFactor {
  linalg::Matrix<float> values;        ///< rows×cols dequantized factor
  linalg::Matrix<uint32_t> codes;      ///< kE8p: rows×cols/8 lattice codes (quant/lattice.h layout)
  linalg::Matrix<uint8_t> grid_codes;  ///< kUniform: rows×cols grid codes
  linalg::Matrix<float> scales;        ///< kE8p: 1×1 (per tensor) or rows×1; kUniform: rows×1
  linalg::Matrix<float> zeros;         ///< kUniform: rows×1 zero points; else empty
};

/// Deep copy of `src` into `dst` (reallocating members whose shapes differ), on `backend`'s stream.
void copy_factor(linalg::Backend& backend, const QuantizedFactor& src, QuantizedFactor& dst);

/// Quantizer for factors. Implementations are stateless and deterministic.
class FactorQuantizer {
 public:
  virtual ~FactorQuantizer() = default;
  /// Quantizes x (rows×cols, backend fp32) into `out` (members reallocated as needed). Throws Error
  /// when the shape violates the format's rules (cols % 8 for lattice codes).
  virtual void quantize(linalg::Backend& backend, MatrixView<const float> x, QuantizedFactor& out) const = 0;
  /// As quantize(), but each row (after its scale) is rounded by LDLQ against the cols×cols Hessian
  /// h with `tune_iters` tune sweeps (spec §3.5; ldl = quant::block_ldl(h)), which minimises
  /// Σ_rows ΔX_i h ΔX_iᵀ instead of Σ_rows ‖ΔX_i‖². Lattice formats only (throws Error otherwise).
  virtual void quantize_ldlq(linalg::Backend& backend, MatrixView<const float> x, MatrixView<const float> h,
                             const quant::BlockLdl& ldl, int tune_iters, QuantizedFactor& out) const = 0;
  /// Rebuilds factor.values from its codes, scales (and zeros).
  virtual void dequantize(linalg::Backend& backend, QuantizedFactor& factor) const = 0;
  /// Bits per factor entry of the codes (excluding scales).
  virtual int code_bits() const noexcept = 0;
  /// Storage bits of the scales of a factor with `rows` rows that grow with the rank (fp16 per-row
  /// scales and zeros); a single per-tensor scale is excluded like the paper's scalars (0).
  virtual double scale_bits(int64_t rows) const noexcept = 0;
  /// Short description for logs and parameters(), e.g. "e8p4/per-row".
  virtual std::string describe() const = 0;

  /// Stored tensors of `factor` under `prefix` ("lt" or "r"): <prefix>_codes (int64: §5.5-packed
  /// lattice codes, rows % 16 == 0 and cols % 64 == 0; or LSB-first bit-packed grid codes stored as
  /// int32 words), <prefix>_scales (F32 [1] per tensor, or F16 [rows]), <prefix>_zeros (F16 [rows],
  /// uniform only). Downloads (synchronises).
  virtual void store(linalg::Backend& backend, const QuantizedFactor& factor, const std::string& prefix,
                     TensorMap& out) const = 0;
  /// Inverse of store(): a factor of shape rows×cols with `values` dequantized. Throws Error naming
  /// the tensor when one is missing or has the wrong shape or dtype.
  virtual QuantizedFactor load(linalg::Backend& backend, const TensorMap& in, const std::string& prefix,
                               int64_t rows, int64_t cols) const = 0;
};

/// The quantizer for (format, bits, scale mode). E8P: bits 2, 3 or 4; uniform: bits 2..8 and
/// kPerRow only. Throws ConfigError naming --factor-format / --bits-lr / --factor-scales otherwise.
[[nodiscard]] std::unique_ptr<FactorQuantizer> make_factor_quantizer(FactorFormat format, int bits,
                                                                     FactorScaleMode scales);

/// Rounds every entry of x (backend) to the nearest fp16 value, in place (via the host).
void round_to_fp16(linalg::Backend& backend, MatrixView<float> x);

}  // namespace caldera::algo
