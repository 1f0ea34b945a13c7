// Kernel family "elementwise" (kernels/include/kernels/elementwise.h): reductions in double.
//
// Variants: ReduceArgs<float|double> with one dispatch switch on ReduceOp (sum of squares, dot
// product, count of non-finite entries). Two launches: a 2-D grid-stride pass in which every block
// writes one partial sum to the workspace, then a single block that adds the partials in a fixed
// order and writes *result. The grid depends only on the shape (at most kReduceMaxBlocks blocks), so
// the result is bit-identical from run to run and between GPU models.
// Constraints: strided row-major views; kDot needs equal shapes; workspace of
// elementwise_workspace_bytes(args) bytes (one double per block), 8-byte aligned.
#include <cuda_runtime.h>

#include <cmath>

#include "common/block_reduce.cuh"
#include "common/launch.cuh"
#include "kernels/elementwise.h"

namespace caldera::kernels {
namespace {

constexpr int64_t kReduceMaxBlocks = 2048;

template <class T>
struct SumSquaresTerm {
  __device__ double operator()(MatrixView<const T> a, MatrixView<const T>, int64_t i, int64_t j) const {
    const double x = static_cast<double>(a(i, j));
    return x * x;
  }
};
template <class T>
struct DotTerm {
  __device__ double operator()(MatrixView<const T> a, MatrixView<const T> b, int64_t i, int64_t j) const {
    return static_cast<double>(a(i, j)) * static_cast<double>(b(i, j));
  }
};
template <class T>
struct NonFiniteTerm {
  __device__ double operator()(MatrixView<const T> a, MatrixView<const T>, int64_t i, int64_t j) const {
    return isfinite(static_cast<double>(a(i, j))) ? 0.0 : 1.0;
  }
};

template <class T, class Term>
__global__ void __launch_bounds__(kBlockThreads)
    reduce_partial_kernel(MatrixView<const T> a, MatrixView<const T> b, Term term, double* partials) {
  const int64_t row_step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  const int64_t col_step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  double acc = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < a.rows; i += row_step)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < a.cols; j += col_step)
      acc += term(a, b, i, j);
  const double block_total = block_sum<kBlockThreads>(acc);
  if (threadIdx.x == 0 && threadIdx.y == 0)
    partials[static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = block_total;
}

__global__ void __launch_bounds__(kBlockThreads)
    reduce_final_kernel(const double* partials, int64_t n, double* result) {
  double acc = 0.0;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) acc += partials[k];
  const double total = block_sum<kBlockThreads>(acc);
  if (threadIdx.x == 0) *result = total;
}

/// The views the partial pass runs over: one long row each when both are contiguous.
template <class T>
struct ReduceShape {
  MatrixView<const T> a;
  MatrixView<const T> b;
  Launch2d launch;
  int64_t blocks;
};

template <class T>
ReduceShape<T> reduce_shape(const ReduceArgs<T>& args) {
  ReduceShape<T> s{args.a, args.b, {}, 0};
  const bool with_b = args.op == ReduceOp::kDot;
  if (s.a.contiguous() && (!with_b || s.b.contiguous())) {
    s.a = as_single_row(s.a);
    if (with_b) s.b = as_single_row(s.b);
  }
  if (s.a.empty()) return s;
  s.launch = launch_2d(s.a.rows, s.a.cols, kReduceMaxBlocks);
  s.blocks = static_cast<int64_t>(s.launch.grid.x) * s.launch.grid.y;
  return s;
}

template <class T>
bool reduce_valid(const ReduceArgs<T>& a) noexcept {
  if (!valid_view(a.a) || a.result == nullptr) return false;
  switch (a.op) {
    case ReduceOp::kSumSquares:
    case ReduceOp::kCountNonFinite: return true;
    case ReduceOp::kDot: return valid_view(a.b) && same_shape(a.a, a.b);
  }
  return false;
}

template <class T, class Term>
cudaError_t launch_partials(const ReduceShape<T>& s, Term term, double* partials, cudaStream_t stream) {
  reduce_partial_kernel<<<s.launch.grid, s.launch.block, 0, stream>>>(s.a, s.b, term, partials);
  return cudaGetLastError();
}

template <class T>
cudaError_t reduce_launch(const ReduceArgs<T>& args, void* workspace, cudaStream_t stream) {
  if (!reduce_valid(args)) return cudaErrorInvalidValue;
  const ReduceShape<T> s = reduce_shape(args);
  auto* partials = static_cast<double*>(workspace);
  if (s.blocks > 0) {
    if (partials == nullptr) return cudaErrorInvalidValue;
    cudaError_t err = cudaErrorInvalidValue;
    switch (args.op) {
      case ReduceOp::kSumSquares: err = launch_partials(s, SumSquaresTerm<T>{}, partials, stream); break;
      case ReduceOp::kDot: err = launch_partials(s, DotTerm<T>{}, partials, stream); break;
      case ReduceOp::kCountNonFinite: err = launch_partials(s, NonFiniteTerm<T>{}, partials, stream); break;
    }
    if (err != cudaSuccess) return err;
  }
  reduce_final_kernel<<<1, kBlockThreads, 0, stream>>>(partials, s.blocks, args.result);
  return cudaGetLastError();
}

template <class T>
std::size_t reduce_workspace(const ReduceArgs<T>& args) noexcept {
  if (!reduce_valid(args)) return 0;
  return static_cast<std::size_t>(reduce_shape(args).blocks) * sizeof(double);
}

}  // namespace

bool elementwise_can_implement(const ReduceArgs<float>& a) noexcept { return reduce_valid(a); }
bool elementwise_can_implement(const ReduceArgs<double>& a) noexcept { return reduce_valid(a); }
std::size_t elementwise_workspace_bytes(const ReduceArgs<float>& a) noexcept { return reduce_workspace(a); }
std::size_t elementwise_workspace_bytes(const ReduceArgs<double>& a) noexcept { return reduce_workspace(a); }
cudaError_t elementwise_launch(const ReduceArgs<float>& a, void* workspace, cudaStream_t stream) noexcept {
  return reduce_launch(a, workspace, stream);
}
cudaError_t elementwise_launch(const ReduceArgs<double>& a, void* workspace, cudaStream_t stream) noexcept {
  return reduce_launch(a, workspace, stream);
}

}  // namespace caldera::kernels
