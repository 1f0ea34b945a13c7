// Kernel family "elementwise" (kernels/include/kernels/elementwise.h): maps, diagonal access,
// precision conversion and the Philox normal fill.
//
// Variants: MapArgs<float|double> (fill, scale, axpby, mul_rows, mul_cols; one dispatch switch on
// MapOp), AddDiagonalArgs / ExtractDiagonalArgs <float|double>, WidenArgs (float -> double),
// NarrowArgs (double -> float, round to nearest even), FillNormalArgs (float).
// Constraints: strided row-major views (ld >= cols); any shape, including empty ones. Contiguous
// views are processed as one long row so that vectors spread over the whole grid.
// Rounding: products and sums use explicitly rounded intrinsics (__fmul_rn, __dadd_rn, ...), so
// nvcc never contracts them into FMAs and results equal the CPU backend's bit for bit.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "kernels/elementwise.h"

namespace caldera::kernels {
namespace {

/// Blocks of a map pass: 4096 × 256 threads keep an H100 busy; larger matrices are grid-strided.
constexpr int64_t kMapMaxBlocks = 4096;

__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ inline double add_rn(double a, double b) { return __dadd_rn(a, b); }

/// Applies f(y(i,j), i, j) to every element of y in a 2-D grid-stride loop.
template <class T, class F>
__global__ void __launch_bounds__(kBlockThreads) map_kernel(MatrixView<T> y, F f) {
  const int64_t row_step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  const int64_t col_step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < y.rows; i += row_step) {
    T* row = y.data + i * y.ld;
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < y.cols; j += col_step)
      f(row[j], i, j);
  }
}

template <class T, class F>
cudaError_t launch_map(MatrixView<T> y, const F& f, cudaStream_t stream) {
  if (y.empty()) return cudaSuccess;
  const Launch2d l = launch_2d(y.rows, y.cols, kMapMaxBlocks);
  map_kernel<<<l.grid, l.block, 0, stream>>>(y, f);
  return cudaGetLastError();
}

template <class T>
struct FillOp {
  T value;
  __device__ void operator()(T& y, int64_t, int64_t) const { y = value; }
};
template <class T>
struct ScaleOp {
  T alpha;
  __device__ void operator()(T& y, int64_t, int64_t) const { y = mul_rn(y, alpha); }
};
template <class T>
struct AxpbyOp {
  MatrixView<const T> x;
  T alpha;
  T beta;
  __device__ void operator()(T& y, int64_t i, int64_t j) const {
    const T ax = mul_rn(alpha, x(i, j));
    y = beta == T(0) ? ax : add_rn(ax, mul_rn(beta, y));
  }
};
template <class T>
struct MulRowsOp {
  const T* v;
  __device__ void operator()(T& y, int64_t i, int64_t) const { y = mul_rn(y, v[i]); }
};
template <class T>
struct MulColsOp {
  const T* v;
  __device__ void operator()(T& y, int64_t, int64_t j) const { y = mul_rn(y, v[j]); }
};
template <class S, class D>
struct ConvertOp {
  MatrixView<const S> src;
  __device__ void operator()(D& y, int64_t i, int64_t j) const { y = static_cast<D>(src(i, j)); }
};
struct NormalOp {
  RngKey key;
  int64_t cols;  ///< of the launched view: index i * cols + j is the element's row-major number
  __device__ void operator()(float& y, int64_t i, int64_t j) const {
    y = static_cast<float>(rng_normal(key, static_cast<uint64_t>(i * cols + j)));
  }
};

template <class T>
bool map_valid(const MapArgs<T>& a) noexcept {
  if (!valid_view(a.y)) return false;
  switch (a.op) {
    case MapOp::kFill:
    case MapOp::kScale: return true;
    case MapOp::kAxpby: return valid_view(a.x) && same_shape(a.x, a.y);
    case MapOp::kMulRows:
    case MapOp::kMulCols: return a.y.empty() || a.v != nullptr;
  }
  return false;
}

template <class T>
cudaError_t map_launch(const MapArgs<T>& a, cudaStream_t stream) {
  if (!map_valid(a)) return cudaErrorInvalidValue;
  switch (a.op) {
    case MapOp::kFill: return launch_map(as_single_row(a.y), FillOp<T>{a.alpha}, stream);
    case MapOp::kScale: return launch_map(as_single_row(a.y), ScaleOp<T>{a.alpha}, stream);
    case MapOp::kAxpby:
      if (a.x.contiguous() && a.y.contiguous())
        return launch_map(as_single_row(a.y), AxpbyOp<T>{as_single_row(a.x), a.alpha, a.beta}, stream);
      return launch_map(a.y, AxpbyOp<T>{a.x, a.alpha, a.beta}, stream);
    case MapOp::kMulRows: return launch_map(a.y, MulRowsOp<T>{a.v}, stream);
    case MapOp::kMulCols: return launch_map(a.y, MulColsOp<T>{a.v}, stream);
  }
  return cudaErrorInvalidValue;
}

template <class S, class D>
cudaError_t convert_launch(const ConvertArgs<S, D>& a, cudaStream_t stream) {
  if (!elementwise_can_implement(a)) return cudaErrorInvalidValue;
  if (a.src.contiguous() && a.dst.contiguous())
    return launch_map(as_single_row(a.dst), ConvertOp<S, D>{as_single_row(a.src)}, stream);
  return launch_map(a.dst, ConvertOp<S, D>{a.src}, stream);
}

// ---- diagonal -----------------------------------------------------------------------------------
template <class T>
__global__ void add_diagonal_kernel(MatrixView<T> a, int64_t n, T value) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    a(i, i) = add_rn(a(i, i), value);
}

template <class T>
__global__ void extract_diagonal_kernel(MatrixView<const T> a, int64_t n, T* d) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    d[i] = a(i, i);
}

unsigned diagonal_blocks(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(n, kBlockThreads), 1, kMapMaxBlocks));
}

}  // namespace

// ---- MapArgs --------------------------------------------------------------------------------------
bool elementwise_can_implement(const MapArgs<float>& a) noexcept { return map_valid(a); }
bool elementwise_can_implement(const MapArgs<double>& a) noexcept { return map_valid(a); }
std::size_t elementwise_workspace_bytes(const MapArgs<float>&) noexcept { return 0; }
std::size_t elementwise_workspace_bytes(const MapArgs<double>&) noexcept { return 0; }
cudaError_t elementwise_launch(const MapArgs<float>& a, void*, cudaStream_t stream) noexcept {
  return map_launch(a, stream);
}
cudaError_t elementwise_launch(const MapArgs<double>& a, void*, cudaStream_t stream) noexcept {
  return map_launch(a, stream);
}

// ---- diagonal -------------------------------------------------------------------------------------
namespace {
template <class T>
bool add_diagonal_valid(const AddDiagonalArgs<T>& a) noexcept {
  return valid_view(a.a);
}
template <class T>
bool extract_diagonal_valid(const ExtractDiagonalArgs<T>& a) noexcept {
  return valid_view(a.a) && (a.a.empty() || a.d != nullptr);
}
template <class T>
cudaError_t add_diagonal_launch(const AddDiagonalArgs<T>& a, cudaStream_t stream) {
  if (!add_diagonal_valid(a)) return cudaErrorInvalidValue;
  const int64_t n = std::min(a.a.rows, a.a.cols);
  if (n == 0) return cudaSuccess;
  add_diagonal_kernel<<<diagonal_blocks(n), kBlockThreads, 0, stream>>>(a.a, n, a.value);
  return cudaGetLastError();
}
template <class T>
cudaError_t extract_diagonal_launch(const ExtractDiagonalArgs<T>& a, cudaStream_t stream) {
  if (!extract_diagonal_valid(a)) return cudaErrorInvalidValue;
  const int64_t n = std::min(a.a.rows, a.a.cols);
  if (n == 0) return cudaSuccess;
  extract_diagonal_kernel<<<diagonal_blocks(n), kBlockThreads, 0, stream>>>(a.a, n, a.d);
  return cudaGetLastError();
}
}  // namespace

bool elementwise_can_implement(const AddDiagonalArgs<float>& a) noexcept { return add_diagonal_valid(a); }
bool elementwise_can_implement(const AddDiagonalArgs<double>& a) noexcept { return add_diagonal_valid(a); }
std::size_t elementwise_workspace_bytes(const AddDiagonalArgs<float>&) noexcept { return 0; }
std::size_t elementwise_workspace_bytes(const AddDiagonalArgs<double>&) noexcept { return 0; }
cudaError_t elementwise_launch(const AddDiagonalArgs<float>& a, void*, cudaStream_t stream) noexcept {
  return add_diagonal_launch(a, stream);
}
cudaError_t elementwise_launch(const AddDiagonalArgs<double>& a, void*, cudaStream_t stream) noexcept {
  return add_diagonal_launch(a, stream);
}

bool elementwise_can_implement(const ExtractDiagonalArgs<float>& a) noexcept { return extract_diagonal_valid(a); }
bool elementwise_can_implement(const ExtractDiagonalArgs<double>& a) noexcept { return extract_diagonal_valid(a); }
std::size_t elementwise_workspace_bytes(const ExtractDiagonalArgs<float>&) noexcept { return 0; }
std::size_t elementwise_workspace_bytes(const ExtractDiagonalArgs<double>&) noexcept { return 0; }
cudaError_t elementwise_launch(const ExtractDiagonalArgs<float>& a, void*, cudaStream_t stream) noexcept {
  return extract_diagonal_launch(a, stream);
}
cudaError_t elementwise_launch(const ExtractDiagonalArgs<double>& a, void*, cudaStream_t stream) noexcept {
  return extract_diagonal_launch(a, stream);
}

// ---- conversion -----------------------------------------------------------------------------------
bool elementwise_can_implement(const WidenArgs& a) noexcept {
  return valid_view(a.src) && valid_view(a.dst) && same_shape(a.src, a.dst);
}
bool elementwise_can_implement(const NarrowArgs& a) noexcept {
  return valid_view(a.src) && valid_view(a.dst) && same_shape(a.src, a.dst);
}
std::size_t elementwise_workspace_bytes(const WidenArgs&) noexcept { return 0; }
std::size_t elementwise_workspace_bytes(const NarrowArgs&) noexcept { return 0; }
cudaError_t elementwise_launch(const WidenArgs& a, void*, cudaStream_t stream) noexcept {
  return convert_launch(a, stream);
}
cudaError_t elementwise_launch(const NarrowArgs& a, void*, cudaStream_t stream) noexcept {
  return convert_launch(a, stream);
}

// ---- normal fill ----------------------------------------------------------------------------------
bool elementwise_can_implement(const FillNormalArgs& a) noexcept { return valid_view(a.a); }
std::size_t elementwise_workspace_bytes(const FillNormalArgs&) noexcept { return 0; }
cudaError_t elementwise_launch(const FillNormalArgs& a, void*, cudaStream_t stream) noexcept {
  if (!elementwise_can_implement(a)) return cudaErrorInvalidValue;
  const MatrixView<float> v = as_single_row(a.a);
  return launch_map(v, NormalOp{a.key, v.cols}, stream);
}

}  // namespace caldera::kernels
