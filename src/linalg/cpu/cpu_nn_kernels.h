// CPU implementation of the neural-network facet (linalg/nn_kernels.h): the reference for the
// CUDA kernels. Loops are OpenMP-parallel over tokens; GEMMs go through CpuBackend::gemm
// (OpenBLAS). Host memory; everything is complete when a call returns.
#pragma once

#include "linalg/nn_kernels.h"

namespace caldera::linalg {

class CpuBackend;

class CpuNnKernels final : public NnKernels {
 public:
  explicit CpuNnKernels(CpuBackend& backend) : backend_(backend) {}

  void embedding(MatrixView<const float> table, MatrixView<const int32_t> ids, MatrixView<float> out) override;
  void rms_norm(MatrixView<const float> x, MatrixView<const float> weight, float eps, MatrixView<float> y) override;
  void rope(MatrixView<float> x, int64_t n_heads, int64_t head_dim, int64_t seq_len,
            MatrixView<const float> inv_freq) override;
  /// Per (sequence, head), in row blocks of kAttentionBlockRows queries: S = scale·Q Kᵀ over the
  /// keys up to the block's last query only, masked softmax, O = P V (about half the flops of the
  /// full square).
  void causal_attention(MatrixView<const float> q, MatrixView<const float> k, MatrixView<const float> v,
                        const AttentionShape& shape, float scale, MatrixView<float> out) override;
  void silu_mul(MatrixView<const float> gate, MatrixView<const float> up, MatrixView<float> out) override;
  void add_bias(MatrixView<float> x, MatrixView<const float> bias) override;
  void add_column_sums(MatrixView<const float> x, MatrixView<double> sums) override;
  void add_column_abs_stats(MatrixView<const float> x, MatrixView<double> sum_abs, MatrixView<double> max_abs) override;
  void token_nll(MatrixView<const float> hidden, MatrixView<const float> lm_head, MatrixView<const int32_t> targets,
                 int64_t vocab_chunk, MatrixView<double> nll) override;

  static constexpr int64_t kAttentionBlockRows = 64;

 private:
  CpuBackend& backend_;
};

}  // namespace caldera::linalg
