// Block LDL decomposition with block size 8 (spec caldera-quipsharp.md §3.3):
//   C = chol(H') (lower), T_j = C[blk j, blk j], D_j = T_j T_jᵀ, 𝐋[:, blk j] = C[:, blk j] T_j⁻¹,
// so H' = 𝐋 D 𝐋ᵀ with 𝐋 unit block-lower-triangular (identity diagonal blocks, zero above).
#pragma once

#include <cstdint>

#include "linalg/backend.h"

namespace caldera::quant {

/// Side of one block of the decomposition (the E8 dimension).
inline constexpr int64_t kLdlBlock = 8;

struct BlockLdl {
  linalg::Matrix<float> l;        ///< n × n 𝐋: identity diagonal blocks, zero above them
  linalg::Matrix<float> d;        ///< n × 8: rows 8j..8j+7 hold D_j
  linalg::Matrix<float> hjj_inv;  ///< n × 8: rows 8j..8j+7 hold (H'[blk j, blk j])⁻¹ (tune sweeps)
  bool used_fp64 = false;         ///< the fp32 Cholesky failed and the fp64 retry was used
};

/// Block LDL of a symmetric positive definite h (n × n, n % 8 == 0, backend memory). The Cholesky
/// runs in fp32 and is retried in fp64 on failure (pitfall P1); 8×8 inverses are formed in fp64.
/// Throws NumericError (naming n) when h is not positive definite in fp64 or 𝐋 is not finite.
[[nodiscard]] BlockLdl block_ldl(linalg::Backend& backend, MatrixView<const float> h);

/// n × 8 stacked diagonal 8×8 blocks of a (n × n, backend memory), downloaded to the host.
[[nodiscard]] HostMatrix<float> download_diagonal_blocks(linalg::Backend& backend, MatrixView<const float> a);

}  // namespace caldera::quant
