// Kernel family "hadamard": Had_n = (1/√n)(G ⊗ S_p) applied to every row of a row-major matrix in
// device memory (spec caldera-quipsharp.md §4.1), n = k·p, p a power of two, G a k×k ±1 matrix
// (H_K for hadU, H_Kᵀ for hadUt; the caller passes whichever it needs), style C7.
//
//   x_r ← ((Had(x_r ⊙ signs_in)) · scale) ⊙ signs_out
//
// Arithmetic order (shared with the CPU facet, so both give the same bits): multiply by signs_in,
// FWHT of each length-p segment with stages h = 1, 2, 4, … (x[j] = a + b, x[j+h] = a − b), then
// y[r] = ±x[0] ± x[1] … ± x[k−1] accumulated in r' order, then · scale, then · signs_out.
// All functions are noexcept; launch enqueues on `stream`, never allocates, never synchronizes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/matrix.h"

namespace caldera::kernels {

struct HadamardArgs {
  MatrixView<float> x;              ///< rows × n, in place
  int64_t p = 1;                    ///< power of two
  int32_t k = 1;                    ///< order of G (1: pure Sylvester)
  const uint32_t* g_neg = nullptr;  ///< k rows × hadamard_g_words(k) words: bit c of row r set iff G[r][c] = −1
  const float* signs_in = nullptr;  ///< optional, n entries
  const float* signs_out = nullptr; ///< optional, n entries
  float scale = 1.0f;               ///< 1/√n
};

/// Words per row of the G bit matrix.
constexpr int64_t hadamard_g_words(int32_t k) { return (k + 31) / 32; }

/// False when the shapes are inconsistent or one row (plus G) does not fit in the current
/// device's opt-in shared memory (n up to about 56K floats).
[[nodiscard]] bool hadamard_can_implement(const HadamardArgs& args) noexcept;
[[nodiscard]] std::size_t hadamard_workspace_bytes(const HadamardArgs& args) noexcept;
[[nodiscard]] cudaError_t hadamard_launch(const HadamardArgs& args, void* workspace, cudaStream_t stream) noexcept;

}  // namespace caldera::kernels
