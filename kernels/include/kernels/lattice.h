// Kernel family "lattice": quantization grids on row-major device matrices (style C7) — the E8P12
// lattice codebook and its RVQ variants (spec caldera-quipsharp.md §5) and the uniform min-max
// scalar grid (spqr.md §4.1). Encoding uses the codecs of core/e8p_tables.h, so codes equal the
// CPU facet's bit for bit; the per-element scalar arithmetic is the same shared code.
// All functions are noexcept; launch enqueues on `stream`, never allocates, never synchronizes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/e8p_tables.h"
#include "core/matrix.h"

namespace caldera::kernels {

/// codes(i, b) / xhat(i, 8b..8b+7) ← nearest codeword of x(i, 8b..8b+7) (e8p::lattice_encode8).
struct LatticeEncodeArgs {
  MatrixView<const float> x;   ///< rows × 8k
  MatrixView<float> xhat;      ///< rows × 8k or empty (data == nullptr); may alias x
  MatrixView<uint32_t> codes;  ///< rows × k
  LatticeCodebook codebook = LatticeCodebook::kE8P12;
  float residual_scale = 0.0f;
};

/// xhat ← decode(codes) (e8p::lattice_decode8).
struct LatticeDecodeArgs {
  MatrixView<const uint32_t> codes;  ///< rows × k
  MatrixView<float> xhat;            ///< rows × 8k
  LatticeCodebook codebook = LatticeCodebook::kE8P12;
  float residual_scale = 0.0f;
};

/// (scale, zero) of each group of group_size consecutive columns of each row (scalar::grid_from_range).
struct ScalarFitArgs {
  MatrixView<const float> x;   ///< rows × cols
  MatrixView<float> scale;     ///< rows × ⌈cols / group_size⌉
  MatrixView<float> zero;      ///< same shape as scale
  int bits = 4;
  int64_t group_size = 1;
  ScalarSymmetry symmetry = ScalarSymmetry::kAsymmetric;
  ScalarRange range = ScalarRange::kDataOnly;
  ZeroPoint zero_point = ZeroPoint::kFloat;
};

/// codes / xhat of x on a grid (scalar::quantize, scalar::dequantize); column j uses group
/// (col_offset + j) / group_size. kQuantize: x → codes_out (optional) and xhat (optional).
/// kDequantize: codes_in → xhat.
enum class ScalarDirection : uint8_t { kQuantize, kDequantize };
struct ScalarGridArgs {
  ScalarDirection direction = ScalarDirection::kQuantize;
  MatrixView<const float> x;           ///< rows × cols (kQuantize)
  MatrixView<uint8_t> codes_out;       ///< rows × cols (kQuantize, optional)
  MatrixView<const uint8_t> codes_in;  ///< rows × cols (kDequantize)
  MatrixView<float> xhat;              ///< rows × cols; optional for kQuantize (may alias x), required otherwise
  MatrixView<const float> scale;   ///< rows × n_groups
  MatrixView<const float> zero;    ///< rows × n_groups
  int bits = 4;
  int64_t group_size = 1;
  int64_t col_offset = 0;
};

[[nodiscard]] bool lattice_can_implement(const LatticeEncodeArgs& args) noexcept;
[[nodiscard]] std::size_t lattice_workspace_bytes(const LatticeEncodeArgs& args) noexcept;
[[nodiscard]] cudaError_t lattice_launch(const LatticeEncodeArgs& args, void* workspace, cudaStream_t stream) noexcept;

[[nodiscard]] bool lattice_can_implement(const LatticeDecodeArgs& args) noexcept;
[[nodiscard]] std::size_t lattice_workspace_bytes(const LatticeDecodeArgs& args) noexcept;
[[nodiscard]] cudaError_t lattice_launch(const LatticeDecodeArgs& args, void* workspace, cudaStream_t stream) noexcept;

[[nodiscard]] bool lattice_can_implement(const ScalarFitArgs& args) noexcept;
[[nodiscard]] std::size_t lattice_workspace_bytes(const ScalarFitArgs& args) noexcept;
[[nodiscard]] cudaError_t lattice_launch(const ScalarFitArgs& args, void* workspace, cudaStream_t stream) noexcept;

[[nodiscard]] bool lattice_can_implement(const ScalarGridArgs& args) noexcept;
[[nodiscard]] std::size_t lattice_workspace_bytes(const ScalarGridArgs& args) noexcept;
[[nodiscard]] cudaError_t lattice_launch(const ScalarGridArgs& args, void* workspace, cudaStream_t stream) noexcept;

}  // namespace caldera::kernels
