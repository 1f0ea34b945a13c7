// CUDA implementation of the neural-network facet (linalg/nn_kernels.h); kernels in kernels/nn,
// reached through their C7 launchers with the backend's stream; GEMMs through cuBLAS.
//
// Attention is computed with batched cuBLAS GEMMs rather than a fused kernel: for chunks of
// (sequence, head) pairs, S = scale·Q Kᵀ (cublasSgemmBatched over pointer tables built on the
// device), an in-place causal softmax kernel, then O = P V. The score workspace is at most
// kAttentionWorkspaceBytes (at least one seq_len² matrix); the full square is computed (the masked
// half is wasted work, about 1/8 of a Llama-2-7B layer's fp32 flops at seq_len 4096). All fp32,
// cuBLAS in its default (non-TF32) math mode, so results match the CPU reference to fp32 rounding.
//
// Every call is asynchronous on the backend's stream; temporary workspaces are stream-ordered
// DeviceBuffers freed after the enqueued work. Out-of-range ids (embedding) and targets (token_nll)
// produce NaN instead of an exception (see linalg/nn_kernels.h).
#pragma once

#include <cstddef>

#include "linalg/nn_kernels.h"

namespace caldera::linalg {

class CudaBackend;

class CudaNnKernels final : public NnKernels {
 public:
  explicit CudaNnKernels(CudaBackend& backend) : backend_(backend) {}

  void embedding(MatrixView<const float> table, MatrixView<const int32_t> ids, MatrixView<float> out) override;
  void rms_norm(MatrixView<const float> x, MatrixView<const float> weight, float eps, MatrixView<float> y) override;
  void rope(MatrixView<float> x, int64_t n_heads, int64_t head_dim, int64_t seq_len,
            MatrixView<const float> inv_freq) override;
  void causal_attention(MatrixView<const float> q, MatrixView<const float> k, MatrixView<const float> v,
                        const AttentionShape& shape, float scale, MatrixView<float> out) override;
  void silu_mul(MatrixView<const float> gate, MatrixView<const float> up, MatrixView<float> out) override;
  void add_bias(MatrixView<float> x, MatrixView<const float> bias) override;
  void add_column_sums(MatrixView<const float> x, MatrixView<double> sums) override;
  void add_column_abs_stats(MatrixView<const float> x, MatrixView<double> sum_abs, MatrixView<double> max_abs) override;
  void token_nll(MatrixView<const float> hidden, MatrixView<const float> lm_head, MatrixView<const int32_t> targets,
                 int64_t vocab_chunk, MatrixView<double> nll) override;

  /// Upper bound of the attention score workspace per call (one seq_len² matrix when larger).
  static constexpr size_t kAttentionWorkspaceBytes = size_t{512} << 20;

 private:
  CudaBackend& backend_;
};

}  // namespace caldera::linalg
