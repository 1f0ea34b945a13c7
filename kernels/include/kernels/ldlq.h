// Kernel family "ldlq": one 128-column panel of the LDLQ recurrence (spec caldera-quipsharp.md
// §3.5; driven by src/quant/ldlq.cpp through CudaQuantKernels), style C7.
//
// For every row independently and blocks j = w/8−1 … 0 of the panel:
//   T_j = B_j + (A_j + Σ_{k>j} Δ_k M[k, j]) · N_j,   Ŵ_j = 𝒬(T_j),   Δ_j = B_j − Ŵ_j
// (N_j = I when block_inv is empty). One warp owns one row: lanes split the feedback dot products
// (8 outputs × 4 partial sums), then run the exact lattice search together (kernels/lattice/
// warp_search.cuh, same codes as the CPU for the same T_j) or the scalar grid. M and N live in shared
// memory for the whole block. Feedback sums are ordered differently from the CPU facet, so T_j may
// differ in the last bits; Ŵ and codes are always consistent with each other.
// All functions are noexcept; launch enqueues on `stream`, never allocates, never synchronizes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/e8p_tables.h"
#include "core/matrix.h"

namespace caldera::kernels {

enum class LdlqRounding : uint8_t { kLattice, kScalar };

struct LdlqPanelArgs {
  MatrixView<const float> base;       ///< m × w (w % 8 == 0, 8 ≤ w ≤ 128)
  MatrixView<const float> acc;        ///< m × w
  MatrixView<const float> mix;        ///< w × w (blocks below the block diagonal are read)
  MatrixView<const float> block_inv;  ///< w × 8 or empty (data == nullptr)
  MatrixView<float> what;             ///< m × w, may alias base
  MatrixView<float> delta;            ///< m × w
  LdlqRounding rounding = LdlqRounding::kLattice;
  // kLattice
  LatticeCodebook codebook = LatticeCodebook::kE8P12;
  float residual_scale = 0.0f;
  MatrixView<uint32_t> lattice_codes;  ///< m × w/8
  // kScalar (ScalarGrid semantics of linalg/quant_kernels.h)
  MatrixView<const float> scale;       ///< m × n_groups
  MatrixView<const float> zero;        ///< m × n_groups
  int bits = 4;
  int64_t group_size = 1;
  int64_t col_offset = 0;
  MatrixView<uint8_t> scalar_codes;    ///< m × w
};

[[nodiscard]] bool ldlq_can_implement(const LdlqPanelArgs& args) noexcept;
[[nodiscard]] std::size_t ldlq_workspace_bytes(const LdlqPanelArgs& args) noexcept;
[[nodiscard]] cudaError_t ldlq_launch(const LdlqPanelArgs& args, void* workspace, cudaStream_t stream) noexcept;

}  // namespace caldera::kernels
