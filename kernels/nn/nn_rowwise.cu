// Row-wise and elementwise kernels of the Llama forward pass (kernels/include/kernels/nn.h):
//   embedding      grid-stride over tokens × cols; NaN row for an id outside [0, vocab)
//   rms_norm       one 256-thread block per row, mean square in fp64 (fixed-order tree)
//   rope           one thread per (token, head, pair); cos/sin in fp64 of the fp32 angle
//   silu_mul       grid-stride elementwise
//   add_bias       grid-stride elementwise
//   column_sums    two passes (256-row chunk partials, then fixed-order sum), fp64, no atomics
//   column_abs_stats  Σ|x| and max|x| per column, same two passes (ASVD scaling statistics)
// Constraints: leading dimensions >= cols; sizes fit in int64; no alignment requirements.
#include <cmath>

#include "kernels/nn.h"
#include "nn/block_reduce.cuh"

namespace caldera::kernels {
namespace {

using nn_detail::block_reduce;
using nn_detail::SumOp;

constexpr int kThreads = 256;

/// Grid size for a grid-stride loop over n elements (capped; the loop covers the rest).
unsigned int grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

__global__ void embedding_kernel(EmbeddingArgs a) {
  const int64_t n = a.tokens * a.cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / a.cols, j = e % a.cols;
    const int32_t id = a.ids[t];
    a.out[t * a.out_ld + j] =
        (id >= 0 && id < a.vocab) ? a.table[id * a.table_ld + j] : __int_as_float(0x7fc00000);
  }
}

__global__ void rms_norm_kernel(RmsNormArgs a) {
  const int64_t row = blockIdx.x;
  const float* x = a.x + row * a.x_ld;
  float* y = a.y + row * a.y_ld;
  double ss = 0;
  for (int64_t j = threadIdx.x; j < a.cols; j += blockDim.x) ss += static_cast<double>(x[j]) * x[j];
  ss = block_reduce(ss, SumOp{}, 0.0);
  const float mean_sq = static_cast<float>(ss / static_cast<double>(a.cols));
  const float r = 1.0f / sqrtf(mean_sq + a.eps);
  for (int64_t j = threadIdx.x; j < a.cols; j += blockDim.x) y[j] = a.weight[j] * (x[j] * r);
}

__global__ void rope_kernel(RopeArgs a) {
  const int64_t half = a.head_dim / 2;
  const int64_t n = a.rows * a.n_heads * half;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e % half;
    const int64_t h = (e / half) % a.n_heads;
    const int64_t t = e / (half * a.n_heads);
    const float angle = static_cast<float>(t % a.seq_len) * a.inv_freq[i];
    double s, c;
    sincos(static_cast<double>(angle), &s, &c);
    const float cf = static_cast<float>(c), sf = static_cast<float>(s);
    float* p = a.x + t * a.ld + h * a.head_dim;
    const float x0 = p[i], x1 = p[i + half];
    p[i] = x0 * cf - x1 * sf;
    p[i + half] = x1 * cf + x0 * sf;
  }
}

__global__ void silu_mul_kernel(SiluMulArgs a) {
  const int64_t n = a.rows * a.cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / a.cols, j = e % a.cols;
    const float g = a.gate[t * a.gate_ld + j];
    a.out[t * a.out_ld + j] = g / (1.0f + expf(-g)) * a.up[t * a.up_ld + j];
  }
}

__global__ void add_bias_kernel(AddBiasArgs a) {
  const int64_t n = a.rows * a.cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / a.cols, j = e % a.cols;
    a.x[t * a.ld + j] += a.bias[j];
  }
}

// Pass 1: partial[chunk][j] = Σ over the chunk's rows of x(t, j). grid (col blocks, chunks).
__global__ void column_sums_partial_kernel(ColumnSumsArgs a, double* partial) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= a.cols) return;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kColumnSumRowsPerChunk;
  const int64_t r1 = r0 + kColumnSumRowsPerChunk < a.rows ? r0 + kColumnSumRowsPerChunk : a.rows;
  double acc = 0;
  for (int64_t t = r0; t < r1; ++t) acc += a.x[t * a.ld + j];
  partial[static_cast<int64_t>(blockIdx.y) * a.cols + j] = acc;
}

// Pass 2: sums[j] += Σ_chunk partial[chunk][j] in chunk order.
__global__ void column_sums_final_kernel(ColumnSumsArgs a, const double* partial, int64_t n_chunks) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= a.cols) return;
  double acc = 0;
  for (int64_t c = 0; c < n_chunks; ++c) acc += partial[c * a.cols + j];
  a.sums[j] += acc;
}

int64_t column_sum_chunks(const ColumnSumsArgs& a) {
  return (a.rows + kColumnSumRowsPerChunk - 1) / kColumnSumRowsPerChunk;
}

// Pass 1 of column_abs_stats: per chunk of rows, Σ|x| into partial[chunk][j] and max|x| into
// partial[n_chunks + chunk][j].
__global__ void column_abs_partial_kernel(ColumnAbsStatsArgs a, double* partial, int64_t n_chunks) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= a.cols) return;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kColumnSumRowsPerChunk;
  const int64_t r1 = r0 + kColumnSumRowsPerChunk < a.rows ? r0 + kColumnSumRowsPerChunk : a.rows;
  double acc = 0, mx = 0;
  for (int64_t t = r0; t < r1; ++t) {
    const double v = fabs(static_cast<double>(a.x[t * a.ld + j]));
    acc += v;
    mx = v > mx ? v : mx;
  }
  partial[static_cast<int64_t>(blockIdx.y) * a.cols + j] = acc;
  partial[(n_chunks + blockIdx.y) * a.cols + j] = mx;
}

// Pass 2: in chunk order, sum_abs[j] += Σ partial sums, max_abs[j] = max(max_abs[j], partial maxima).
__global__ void column_abs_final_kernel(ColumnAbsStatsArgs a, const double* partial, int64_t n_chunks) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= a.cols) return;
  double acc = 0, mx = a.max_abs[j];
  for (int64_t c = 0; c < n_chunks; ++c) {
    acc += partial[c * a.cols + j];
    const double m = partial[(n_chunks + c) * a.cols + j];
    mx = m > mx ? m : mx;
  }
  a.sum_abs[j] += acc;
  a.max_abs[j] = mx;
}

int64_t column_abs_chunks(const ColumnAbsStatsArgs& a) {
  return (a.rows + kColumnSumRowsPerChunk - 1) / kColumnSumRowsPerChunk;
}

}  // namespace

// ---- embedding ------------------------------------------------------------------------------------
bool embedding_can_implement(const EmbeddingArgs& a) noexcept {
  return a.table && a.ids && a.out && a.vocab > 0 && a.cols >= 0 && a.table_ld >= a.cols && a.out_ld >= a.cols &&
         a.tokens >= 0;
}
std::size_t embedding_workspace_bytes(const EmbeddingArgs&) noexcept { return 0; }
cudaError_t embedding_launch(const EmbeddingArgs& a, void*, cudaStream_t stream) noexcept {
  if (!embedding_can_implement(a)) return cudaErrorInvalidValue;
  if (a.tokens == 0 || a.cols == 0) return cudaSuccess;
  embedding_kernel<<<grid_for(a.tokens * a.cols), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

// ---- rms_norm -------------------------------------------------------------------------------------
bool rms_norm_can_implement(const RmsNormArgs& a) noexcept {
  return a.x && a.weight && a.y && a.rows >= 0 && a.cols > 0 && a.x_ld >= a.cols && a.y_ld >= a.cols &&
         a.rows <= 0x7fffffff;
}
std::size_t rms_norm_workspace_bytes(const RmsNormArgs&) noexcept { return 0; }
cudaError_t rms_norm_launch(const RmsNormArgs& a, void*, cudaStream_t stream) noexcept {
  if (!rms_norm_can_implement(a)) return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned int>(a.rows), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

// ---- rope -----------------------------------------------------------------------------------------
bool rope_can_implement(const RopeArgs& a) noexcept {
  return a.x && a.inv_freq && a.n_heads > 0 && a.head_dim > 0 && a.head_dim % 2 == 0 && a.seq_len > 0 &&
         a.rows >= 0 && a.rows % a.seq_len == 0 && a.ld >= a.n_heads * a.head_dim;
}
std::size_t rope_workspace_bytes(const RopeArgs&) noexcept { return 0; }
cudaError_t rope_launch(const RopeArgs& a, void*, cudaStream_t stream) noexcept {
  if (!rope_can_implement(a)) return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  rope_kernel<<<grid_for(a.rows * a.n_heads * (a.head_dim / 2)), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

// ---- silu_mul -------------------------------------------------------------------------------------
bool silu_mul_can_implement(const SiluMulArgs& a) noexcept {
  return a.gate && a.up && a.out && a.rows >= 0 && a.cols >= 0 && a.gate_ld >= a.cols && a.up_ld >= a.cols &&
         a.out_ld >= a.cols;
}
std::size_t silu_mul_workspace_bytes(const SiluMulArgs&) noexcept { return 0; }
cudaError_t silu_mul_launch(const SiluMulArgs& a, void*, cudaStream_t stream) noexcept {
  if (!silu_mul_can_implement(a)) return cudaErrorInvalidValue;
  if (a.rows == 0 || a.cols == 0) return cudaSuccess;
  silu_mul_kernel<<<grid_for(a.rows * a.cols), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

// ---- add_bias -------------------------------------------------------------------------------------
bool add_bias_can_implement(const AddBiasArgs& a) noexcept {
  return a.x && a.bias && a.rows >= 0 && a.cols >= 0 && a.ld >= a.cols;
}
std::size_t add_bias_workspace_bytes(const AddBiasArgs&) noexcept { return 0; }
cudaError_t add_bias_launch(const AddBiasArgs& a, void*, cudaStream_t stream) noexcept {
  if (!add_bias_can_implement(a)) return cudaErrorInvalidValue;
  if (a.rows == 0 || a.cols == 0) return cudaSuccess;
  add_bias_kernel<<<grid_for(a.rows * a.cols), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

// ---- column_sums ----------------------------------------------------------------------------------
bool column_sums_can_implement(const ColumnSumsArgs& a) noexcept {
  return a.x && a.sums && a.rows >= 0 && a.cols >= 0 && a.ld >= a.cols && column_sum_chunks(a) <= 65535;
}
std::size_t column_sums_workspace_bytes(const ColumnSumsArgs& a) noexcept {
  return static_cast<std::size_t>(column_sum_chunks(a) * a.cols) * sizeof(double);
}
cudaError_t column_sums_launch(const ColumnSumsArgs& a, void* workspace, cudaStream_t stream) noexcept {
  if (!column_sums_can_implement(a)) return cudaErrorInvalidValue;
  if (a.rows == 0 || a.cols == 0) return cudaSuccess;
  if (workspace == nullptr) return cudaErrorInvalidValue;
  auto* partial = static_cast<double*>(workspace);
  const int64_t n_chunks = column_sum_chunks(a);
  const auto col_blocks = static_cast<unsigned int>((a.cols + kThreads - 1) / kThreads);
  column_sums_partial_kernel<<<dim3(col_blocks, static_cast<unsigned int>(n_chunks)), kThreads, 0, stream>>>(a,
                                                                                                            partial);
  column_sums_final_kernel<<<col_blocks, kThreads, 0, stream>>>(a, partial, n_chunks);
  return cudaGetLastError();
}

// ---- column_abs_stats -----------------------------------------------------------------------------
bool column_abs_stats_can_implement(const ColumnAbsStatsArgs& a) noexcept {
  return a.x && a.sum_abs && a.max_abs && a.rows >= 0 && a.cols >= 0 && a.ld >= a.cols &&
         column_abs_chunks(a) <= 65535;
}
std::size_t column_abs_stats_workspace_bytes(const ColumnAbsStatsArgs& a) noexcept {
  return static_cast<std::size_t>(2 * column_abs_chunks(a) * a.cols) * sizeof(double);
}
cudaError_t column_abs_stats_launch(const ColumnAbsStatsArgs& a, void* workspace, cudaStream_t stream) noexcept {
  if (!column_abs_stats_can_implement(a)) return cudaErrorInvalidValue;
  if (a.rows == 0 || a.cols == 0) return cudaSuccess;
  if (workspace == nullptr) return cudaErrorInvalidValue;
  auto* partial = static_cast<double*>(workspace);
  const int64_t n_chunks = column_abs_chunks(a);
  const auto col_blocks = static_cast<unsigned int>((a.cols + kThreads - 1) / kThreads);
  column_abs_partial_kernel<<<dim3(col_blocks, static_cast<unsigned int>(n_chunks)), kThreads, 0, stream>>>(
      a, partial, n_chunks);
  column_abs_final_kernel<<<col_blocks, kThreads, 0, stream>>>(a, partial, n_chunks);
  return cudaGetLastError();
}

}  // namespace caldera::kernels
