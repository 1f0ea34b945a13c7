#include "linalg/cuda/cuda_nn_kernels.h"

#include <cublas_v2.h>

#include <algorithm>

#include "kernels/nn.h"
#include "linalg/cuda/cuda_backend.h"
#include "linalg/cuda/cuda_check.h"

namespace caldera::linalg {
namespace {

/// Launch wrapper: checks can_implement first so a violated kernel precondition reads as an
/// argument error naming the op, not as a bare cudaErrorInvalidValue.
template <class Args, class CanImplement, class Launch>
void launch(const char* op, const Args& args, CanImplement can_implement, Launch launch_fn, void* workspace,
            cudaStream_t stream) {
  CALDERA_CHECK(can_implement(args), op, ": arguments not supported by the CUDA kernel");
  CALDERA_CUDA_CHECK(launch_fn(args, workspace, stream));
}

}  // namespace

void CudaNnKernels::embedding(MatrixView<const float> table, MatrixView<const int32_t> ids, MatrixView<float> out) {
  nn_detail::check_embedding(table, ids, out);
  if (out.empty()) return;
  backend_.make_current();
  const kernels::EmbeddingArgs a{table.data, table.rows, table.cols, table.ld, ids.data, out.data, out.rows, out.ld};
  launch("embedding", a, kernels::embedding_can_implement, kernels::embedding_launch, nullptr, backend_.stream());
}

void CudaNnKernels::rms_norm(MatrixView<const float> x, MatrixView<const float> weight, float eps,
                             MatrixView<float> y) {
  nn_detail::check_rms_norm(x, weight, y);
  if (x.empty()) return;
  backend_.make_current();
  const kernels::RmsNormArgs a{x.data, x.ld, weight.data, y.data, y.ld, x.rows, x.cols, eps};
  launch("rms_norm", a, kernels::rms_norm_can_implement, kernels::rms_norm_launch, nullptr, backend_.stream());
}

void CudaNnKernels::rope(MatrixView<float> x, int64_t n_heads, int64_t head_dim, int64_t seq_len,
                         MatrixView<const float> inv_freq) {
  nn_detail::check_rope(x, n_heads, head_dim, seq_len, inv_freq);
  if (x.empty()) return;
  backend_.make_current();
  const kernels::RopeArgs a{x.data, x.ld, x.rows, n_heads, head_dim, seq_len, inv_freq.data};
  launch("rope", a, kernels::rope_can_implement, kernels::rope_launch, nullptr, backend_.stream());
}

void CudaNnKernels::causal_attention(MatrixView<const float> q, MatrixView<const float> k, MatrixView<const float> v,
                                     const AttentionShape& shape, float scale, MatrixView<float> out) {
  nn_detail::check_attention(q, k, v, shape, out);
  if (q.rows == 0) return;
  backend_.make_current();
  const int64_t len = shape.seq_len, hd = shape.head_dim;
  CALDERA_CHECK(len <= 0x7fffffff && hd <= 0x7fffffff && q.ld <= 0x7fffffff && k.ld <= 0x7fffffff &&
                    v.ld <= 0x7fffffff && out.ld <= 0x7fffffff,
                "causal_attention: sizes exceed cuBLAS's int range");
  const int64_t pairs = (q.rows / len) * shape.n_heads;
  const size_t matrix_bytes = static_cast<size_t>(len) * static_cast<size_t>(len) * sizeof(float);
  const int64_t max_pairs =
      std::clamp<int64_t>(static_cast<int64_t>(kAttentionWorkspaceBytes / matrix_bytes), 1, pairs);
  DeviceBuffer<float> scores(backend_, static_cast<size_t>(max_pairs) * static_cast<size_t>(len * len),
                             "attention scores");
  DeviceBuffer<const float*> q_ptrs(backend_, static_cast<size_t>(max_pairs), "attention q pointers");
  DeviceBuffer<const float*> k_ptrs(backend_, static_cast<size_t>(max_pairs), "attention k pointers");
  DeviceBuffer<const float*> v_ptrs(backend_, static_cast<size_t>(max_pairs), "attention v pointers");
  DeviceBuffer<float*> s_ptrs(backend_, static_cast<size_t>(max_pairs), "attention score pointers");
  DeviceBuffer<float*> o_ptrs(backend_, static_cast<size_t>(max_pairs), "attention out pointers");
  cublasHandle_t handle = backend_.cublas();
  const float zero = 0.0f, one = 1.0f;
  const int n = static_cast<int>(len), d = static_cast<int>(hd);
  for (int64_t p0 = 0; p0 < pairs; p0 += max_pairs) {
    const int64_t count = std::min(max_pairs, pairs - p0);
    kernels::AttentionPointersArgs pa;
    pa.q = q.data;
    pa.k = k.data;
    pa.v = v.data;
    pa.scores = scores.data();
    pa.out = out.data;
    pa.q_ld = q.ld;
    pa.k_ld = k.ld;
    pa.v_ld = v.ld;
    pa.out_ld = out.ld;
    pa.n_heads = shape.n_heads;
    pa.n_kv_heads = shape.n_kv_heads;
    pa.head_dim = hd;
    pa.seq_len = len;
    pa.pair_begin = p0;
    pa.pair_end = p0 + count;
    pa.q_ptrs = q_ptrs.data();
    pa.k_ptrs = k_ptrs.data();
    pa.v_ptrs = v_ptrs.data();
    pa.s_ptrs = s_ptrs.data();
    pa.o_ptrs = o_ptrs.data();
    launch("causal_attention (pointer tables)", pa, kernels::attention_pointers_can_implement,
           kernels::attention_pointers_launch, nullptr, backend_.stream());
    // Row-major S (queries × keys) is column-major Sᵀ = K Qᵀ: A = K (column-major head_dim × len,
    // transposed), B = Q (column-major head_dim × len), C = Sᵀ with ld len.
    CALDERA_CUBLAS_CHECK(cublasSgemmBatched(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, &scale, k_ptrs.data(),
                                            static_cast<int>(k.ld), q_ptrs.data(), static_cast<int>(q.ld), &zero,
                                            s_ptrs.data(), n, static_cast<int>(count)));
    const kernels::CausalSoftmaxArgs sa{scores.data(), count, len};
    launch("causal_attention (softmax)", sa, kernels::causal_softmax_can_implement, kernels::causal_softmax_launch,
           nullptr, backend_.stream());
    // Row-major O (len × head_dim) = P V is column-major Oᵀ = Vᵀ Pᵀ: A = V (column-major
    // head_dim × len), B = the score buffer (column-major Pᵀ), C = Oᵀ with ld out.ld.
    CALDERA_CUBLAS_CHECK(cublasSgemmBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, d, n, n, &one, v_ptrs.data(),
                                            static_cast<int>(v.ld), s_ptrs.data(), n, &zero, o_ptrs.data(),
                                            static_cast<int>(out.ld), static_cast<int>(count)));
  }
}

void CudaNnKernels::silu_mul(MatrixView<const float> gate, MatrixView<const float> up, MatrixView<float> out) {
  nn_detail::check_silu_mul(gate, up, out);
  if (out.empty()) return;
  backend_.make_current();
  const kernels::SiluMulArgs a{gate.data, up.data, out.data, gate.ld, up.ld, out.ld, out.rows, out.cols};
  launch("silu_mul", a, kernels::silu_mul_can_implement, kernels::silu_mul_launch, nullptr, backend_.stream());
}

void CudaNnKernels::add_bias(MatrixView<float> x, MatrixView<const float> bias) {
  nn_detail::check_add_bias(x, bias);
  if (x.empty()) return;
  backend_.make_current();
  const kernels::AddBiasArgs a{x.data, x.ld, x.rows, x.cols, bias.data};
  launch("add_bias", a, kernels::add_bias_can_implement, kernels::add_bias_launch, nullptr, backend_.stream());
}

void CudaNnKernels::add_column_sums(MatrixView<const float> x, MatrixView<double> sums) {
  nn_detail::check_column_sums(x, sums);
  if (x.empty()) return;
  backend_.make_current();
  // At most 65535 row chunks per launch; larger inputs go in several launches (same fixed order).
  constexpr int64_t kMaxRows = 65535 * kernels::kColumnSumRowsPerChunk;
  for (int64_t r0 = 0; r0 < x.rows; r0 += kMaxRows) {
    const auto part = x.rows_range(r0, std::min(kMaxRows, x.rows - r0));
    const kernels::ColumnSumsArgs a{part.data, part.ld, part.rows, part.cols, sums.data};
    DeviceBuffer<double> partial(backend_, kernels::column_sums_workspace_bytes(a) / sizeof(double),
                                 "column sums partials");
    launch("add_column_sums", a, kernels::column_sums_can_implement, kernels::column_sums_launch, partial.data(),
           backend_.stream());
  }
}

void CudaNnKernels::add_column_abs_stats(MatrixView<const float> x, MatrixView<double> sum_abs,
                                         MatrixView<double> max_abs) {
  nn_detail::check_column_abs_stats(x, sum_abs, max_abs);
  if (x.empty()) return;
  backend_.make_current();
  constexpr int64_t kMaxRows = 65535 * kernels::kColumnSumRowsPerChunk;
  for (int64_t r0 = 0; r0 < x.rows; r0 += kMaxRows) {
    const auto part = x.rows_range(r0, std::min(kMaxRows, x.rows - r0));
    const kernels::ColumnAbsStatsArgs a{part.data, part.ld, part.rows, part.cols, sum_abs.data, max_abs.data};
    DeviceBuffer<double> partial(backend_, kernels::column_abs_stats_workspace_bytes(a) / sizeof(double),
                                 "column |x| statistics partials");
    launch("add_column_abs_stats", a, kernels::column_abs_stats_can_implement, kernels::column_abs_stats_launch,
           partial.data(), backend_.stream());
  }
}

void CudaNnKernels::token_nll(MatrixView<const float> hidden, MatrixView<const float> lm_head,
                              MatrixView<const int32_t> targets, int64_t vocab_chunk, MatrixView<double> nll) {
  nn_detail::check_token_nll(hidden, lm_head, targets, vocab_chunk, nll);
  const int64_t tokens = hidden.rows, vocab = lm_head.rows;
  if (tokens == 0) return;
  backend_.make_current();
  const int64_t chunk = std::min(vocab_chunk, vocab);
  DeviceBuffer<float> logits(backend_, static_cast<size_t>(tokens * chunk), "nll logits chunk");
  DeviceBuffer<float> run_max(backend_, static_cast<size_t>(tokens), "nll running max");
  DeviceBuffer<double> run_sum(backend_, static_cast<size_t>(tokens), "nll running sum");
  DeviceBuffer<float> target_logit(backend_, static_cast<size_t>(tokens), "nll target logit");
  for (int64_t v0 = 0; v0 < vocab; v0 += chunk) {
    const int64_t nv = std::min(chunk, vocab - v0);
    const MatrixView<float> lv(logits.data(), tokens, nv, chunk);
    backend_.gemm(Op::kNoTrans, Op::kTrans, 1.0f, hidden, lm_head.rows_range(v0, nv), 0.0f, lv);
    kernels::NllChunkArgs a;
    a.logits = logits.data();
    a.logits_ld = chunk;
    a.tokens = tokens;
    a.chunk_cols = nv;
    a.vocab_begin = v0;
    a.targets = targets.data;
    a.run_max = run_max.data();
    a.run_sum = run_sum.data();
    a.target_logit = target_logit.data();
    a.position = v0 == 0 ? kernels::NllChunkPosition::kFirst : kernels::NllChunkPosition::kNext;
    launch("token_nll (chunk)", a, kernels::nll_chunk_can_implement, kernels::nll_chunk_launch, nullptr,
           backend_.stream());
  }
  const kernels::NllFinalizeArgs f{targets.data, run_max.data(), run_sum.data(), target_logit.data(), nll.data,
                                   tokens, vocab};
  launch("token_nll (finalize)", f, kernels::nll_finalize_can_implement, kernels::nll_finalize_launch, nullptr,
         backend_.stream());
}

}  // namespace caldera::linalg
