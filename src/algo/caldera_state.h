// Internal to CalderaMethod: the loop state (Q, L, R with their codes), its serialisation to the
// stored tensors documented in algo/caldera.h, and the rebuild of Q + L·R from them. One code path
// produces the dequantized matrices during compression, on resume and in reconstruct(), so the
// three agree bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "algo/factor_quant.h"
#include "core/e8p_tables.h"
#include "core/tensor_map.h"
#include "linalg/backend.h"

namespace caldera::algo::detail {

/// lr_format values of the stored tensors.
enum class LrFormat : int64_t { kFp16 = 0, kE8pPerTensor = 1, kE8pPerRow = 2, kUniform = 3 };

/// Codebook of a Q / factor bit width (2, 3, 4).
[[nodiscard]] LatticeCodebook codebook_for_bits(int bits);

/// How the factors are represented; shared by compress and reconstruct.
struct LrSpec {
  int64_t rank = 0;
  LrFormat format = LrFormat::kFp16;
  int bits = 16;
  std::unique_ptr<FactorQuantizer> quantizer;  ///< null for kFp16

  static LrSpec make(int64_t rank, int bits, FactorFormat format, FactorScaleMode scales);
  static LrSpec from_tensors(const TensorMap& in);
  /// Storage bits of the factors: k·bits·(m+n) plus per-row scale bits.
  [[nodiscard]] double storage_bits(int64_t m, int64_t n) const;
};

/// One iterate of the outer loop, in the loop's (scaled, rotated) basis; backend memory.
struct CalderaState {
  linalg::Matrix<float> q;            ///< m×n Q = q_scale·DECODE(q_codes) (zeros before the first Q update)
  linalg::Matrix<uint32_t> q_codes;   ///< m×n/8
  float q_scale = 0.0f;
  QuantizedFactor lt;                 ///< Lᵀ (k×m); for fp16 factors only `values` is used
  QuantizedFactor r;                  ///< R (k×n)
  linalg::Matrix<float> l;            ///< m×k, transpose of lt.values

  /// Zero state for an m×n matrix of rank k.
  static CalderaState zeros(linalg::Backend& backend, int64_t m, int64_t n, int64_t k);
  /// Deep copy.
  void copy_to(linalg::Backend& backend, CalderaState& dst) const;
  /// Ŵ = Q + L·R into w_hat (m×n).
  void compose(linalg::Backend& backend, MatrixView<float> w_hat) const;
};

/// Q = scale · DECODE(codes) into q (m×n).
void dequantize_q(linalg::Backend& backend, MatrixView<const uint32_t> codes, LatticeCodebook codebook, float scale,
                  MatrixView<float> q);

/// Writes the state's Q and factor tensors (names of algo/caldera.h, prefixed) into `out`.
void store_state(linalg::Backend& backend, const CalderaState& state, int bits_q, const LrSpec& lr,
                 const std::string& prefix, TensorMap& out);
/// Inverse of store_state for an m×n matrix; throws Error naming a missing or malformed tensor.
[[nodiscard]] CalderaState load_state(linalg::Backend& backend, const TensorMap& in, int bits_q, const LrSpec& lr,
                                      const std::string& prefix, int64_t m, int64_t n);

}  // namespace caldera::algo::detail
