// CudaBackend: device selection, stream, handles, stream-ordered memory pool, copies and the
// elementwise operations and reductions (kernels/elementwise). cuBLAS calls are in cuda_blas.cpp,
// cuSOLVER calls in cuda_solver.cpp. Contracts and the row-major conventions: cuda_backend.h.
#include "linalg/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/log.h"
#include "linalg/cuda/cuda_check.h"
#include "linalg/cuda/cuda_internal.h"
#include "linalg/cuda/cuda_nn_kernels.h"
#include "linalg/cuda/cuda_quant_kernels.h"

// The forward declarations in cuda_backend.h must name the vendors' types.
static_assert(std::is_same_v<caldera::linalg::CudaBackend::StreamHandle, cudaStream_t>);
static_assert(std::is_same_v<caldera::linalg::CudaBackend::CublasHandle, cublasHandle_t>);
static_assert(std::is_same_v<caldera::linalg::CudaBackend::CusolverHandle, cusolverDnHandle_t>);
static_assert(std::is_same_v<caldera::linalg::CudaBackend::CusolverParamsHandle, cusolverDnParams_t>);
static_assert(std::is_same_v<CUmemPoolHandle_st*, cudaMemPool_t>);

namespace caldera::linalg {

using cuda_detail::run_elementwise;

namespace {

/// cuBLAS workspace taken from the pool (NVIDIA's recommendation for Hopper is 32 MiB).
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
/// Live allocations listed in an out-of-memory message.
constexpr size_t kOomListed = 6;

std::string format_bytes(size_t bytes) {
  char text[32];
  const double b = static_cast<double>(bytes);
  if (b >= 1073741824.0)
    std::snprintf(text, sizeof text, "%.2f GiB", b / 1073741824.0);
  else if (b >= 1048576.0)
    std::snprintf(text, sizeof text, "%.1f MiB", b / 1048576.0);
  else
    std::snprintf(text, sizeof text, "%zu bytes", bytes);
  return text;
}

cudaMemcpyKind to_cuda(CopyKind kind) {
  switch (kind) {
    case CopyKind::kHostToBackend: return cudaMemcpyHostToDevice;
    case CopyKind::kBackendToHost: return cudaMemcpyDeviceToHost;
    case CopyKind::kBackendToBackend: return cudaMemcpyDeviceToDevice;
  }
  return cudaMemcpyDefault;
}

/// True when `ptr` is page-locked host memory, for which a host-to-device copy is truly
/// asynchronous (pageable memory is staged before cudaMemcpyAsync returns).
bool is_pinned_host(const void* ptr) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, ptr) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeHost;
}

}  // namespace

int cuda_device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver / no device: not an error for the caller
    return 0;
  }
  return count;
}

namespace cuda_detail {
void StreamDeleter::operator()(CUstream_st* stream) const noexcept {
  CALDERA_CUDA_REPORT(cudaStreamDestroy(stream), "destroying the stream");
}
void MemPoolDeleter::operator()(CUmemPoolHandle_st* pool) const noexcept {
  CALDERA_CUDA_REPORT(cudaMemPoolDestroy(pool), "destroying the memory pool");
}
void CublasDeleter::operator()(cublasContext* handle) const noexcept {
  if (const cublasStatus_t status = cublasDestroy(handle); status != CUBLAS_STATUS_SUCCESS)
    log_error("cuda backend: cublasDestroy failed: ", cublasGetStatusName(status));
}
void CusolverDeleter::operator()(cusolverDnContext* handle) const noexcept {
  if (const cusolverStatus_t status = cusolverDnDestroy(handle); status != CUSOLVER_STATUS_SUCCESS)
    log_error("cuda backend: cusolverDnDestroy failed: ", cusolver_status_name(status));
}
void CusolverParamsDeleter::operator()(cusolverDnParams* params) const noexcept {
  if (const cusolverStatus_t status = cusolverDnDestroyParams(params); status != CUSOLVER_STATUS_SUCCESS)
    log_error("cuda backend: cusolverDnDestroyParams failed: ", cusolver_status_name(status));
}
}  // namespace cuda_detail

// ---- construction ------------------------------------------------------------------------------

CudaBackend::CudaBackend(const BackendOptions& options) {
  const int count = cuda_device_count();
  CALDERA_CHECK_AS(ConfigError, count > 0,
                   "--backend cuda: no CUDA device is visible (no driver or no GPU); use --backend cpu");
  CALDERA_CHECK_AS(ConfigError, options.device < count, "--device ", options.device, ": only ", count,
                   " CUDA device(s) are visible (ordinals 0..", count - 1, ")");
  CALDERA_CHECK_AS(ConfigError, options.device >= 0 || options.local_rank >= 0,
                   "cuda backend: node-local rank must be >= 0 to pick a device, got ", options.local_rank);
  device_ = options.device >= 0 ? options.device : options.local_rank % count;
  CALDERA_CUDA_CHECK(cudaSetDevice(device_));

  cudaDeviceProp prop{};
  CALDERA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  info_.ordinal = device_;
  info_.name = prop.name;
  info_.compute_capability_major = prop.major;
  info_.compute_capability_minor = prop.minor;
  info_.sm_count = prop.multiProcessorCount;
  info_.total_memory_bytes = prop.totalGlobalMem;
  info_.shared_memory_per_block_bytes = prop.sharedMemPerBlock;
  info_.shared_memory_per_block_optin_bytes = prop.sharedMemPerBlockOptin;
  info_.shared_memory_per_sm_bytes = prop.sharedMemPerMultiprocessor;
  info_.max_threads_per_sm = prop.maxThreadsPerMultiProcessor;
  info_.l2_cache_bytes = prop.l2CacheSize;

  cudaStream_t stream = nullptr;
  CALDERA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_.reset(stream);

  cudaMemPoolProps pool_props{};
  pool_props.allocType = cudaMemAllocationTypePinned;
  pool_props.location.type = cudaMemLocationTypeDevice;
  pool_props.location.id = device_;
  cudaMemPool_t pool = nullptr;
  CALDERA_CUDA_CHECK(cudaMemPoolCreate(&pool, &pool_props));
  pool_.reset(pool);
  uint64_t keep_all = UINT64_MAX;  // never hand freed memory back to the driver on synchronization
  CALDERA_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));

  cublasHandle_t blas = nullptr;
  CALDERA_CUBLAS_CHECK(cublasCreate(&blas));
  cublas_.reset(blas);
  CALDERA_CUBLAS_CHECK(cublasSetStream(blas, stream));
  CALDERA_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));  // true fp32: no TF32, no emulation
  CALDERA_CUBLAS_CHECK(cublasSetPointerMode(blas, CUBLAS_POINTER_MODE_HOST));
  // cuBLAS wants a 256-byte aligned workspace; over-allocate so that alignment never depends on the pool.
  constexpr size_t kAlign = 256;
  cublas_workspace_ = Buffer(this, allocate_bytes(kCublasWorkspaceBytes + kAlign, "cublas workspace"),
                             kCublasWorkspaceBytes + kAlign);
  const auto base = reinterpret_cast<std::uintptr_t>(cublas_workspace_.data());
  void* aligned = reinterpret_cast<void*>((base + kAlign - 1) / kAlign * kAlign);
  CALDERA_CUBLAS_CHECK(cublasSetWorkspace(blas, aligned, kCublasWorkspaceBytes));

  cusolverDnHandle_t solver = nullptr;
  CALDERA_CUSOLVER_CHECK(cusolverDnCreate(&solver));
  cusolver_.reset(solver);
  CALDERA_CUSOLVER_CHECK(cusolverDnSetStream(solver, stream));
  CALDERA_CUSOLVER_CHECK(cusolverDnSetDeterministicMode(solver, CUSOLVER_DETERMINISTIC_RESULTS));
  cusolverDnParams_t params = nullptr;
  CALDERA_CUSOLVER_CHECK(cusolverDnCreateParams(&params));
  cusolver_params_.reset(params);

  quant_ = std::make_unique<CudaQuantKernels>(*this);
  nn_ = std::make_unique<CudaNnKernels>(*this);
  log_debug("cuda backend: ", description());
}

CudaBackend::~CudaBackend() {
  CALDERA_CUDA_REPORT(cudaSetDevice(device_), "making the device current for destruction");
  nn_.reset();
  quant_.reset();
  cublas_workspace_ = Buffer();
  CALDERA_CUDA_REPORT(cudaStreamSynchronize(stream_.get()), "synchronizing before destruction");
  std::lock_guard lock(memory_mutex_);
  if (!live_.empty()) {
    const auto& any = *live_.begin();
    log_warn("cuda backend destroyed with ", live_.size(), " allocation(s) still alive (",
             format_bytes(current_bytes_), ", e.g. '", any.second.label,
             "'); matrices and buffers must be released before their backend");
  }
}

std::string CudaBackend::description() const {
  return detail::concat("cuda:", device_, " ", info_.name, " (sm_", info_.compute_capability_major,
                        info_.compute_capability_minor, ", ", info_.sm_count, " SMs, ",
                        format_bytes(info_.total_memory_bytes), ")");
}

QuantKernels& CudaBackend::quant() { return *quant_; }
NnKernels& CudaBackend::nn() { return *nn_; }

void CudaBackend::make_current() const {
  int current = -1;
  CALDERA_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device_) CALDERA_CUDA_CHECK(cudaSetDevice(device_));
}

// ---- memory ------------------------------------------------------------------------------------

void* CudaBackend::allocate_bytes(size_t size_bytes, std::string_view label) {
  CALDERA_CHECK(size_bytes > 0, "allocate_bytes('", label, "'): zero bytes");
  make_current();
  void* data = nullptr;
  cudaError_t err = cudaMallocFromPoolAsync(&data, size_bytes, pool_.get(), stream());
  if (err == cudaErrorMemoryAllocation) {
    // Frees still pending on the stream, or a fragmented pool: wait, give the pool's unused memory
    // back to the driver, and try once more.
    (void)cudaGetLastError();
    synchronize();
    CALDERA_CUDA_CHECK(cudaMemPoolTrimTo(pool_.get(), 0));
    err = cudaMallocFromPoolAsync(&data, size_bytes, pool_.get(), stream());
  }
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    raise<CudaError>(out_of_memory_report(size_bytes, label));
  }
  if (err != cudaSuccess) {
    if (cuda_detail::is_sticky_error(err))
      cuda_detail::throw_cuda_error(err, "cudaMallocFromPoolAsync", __FILE__, __LINE__);
    (void)cudaGetLastError();
    raise<CudaError>("cuda:", device_, " cannot allocate ", format_bytes(size_bytes), " for '", label, "': ",
                     cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
  }
  try {
    std::lock_guard lock(memory_mutex_);
    live_.emplace(data, Allocation{size_bytes, std::string(label)});
    current_bytes_ += size_bytes;
    peak_bytes_ = std::max(peak_bytes_, current_bytes_);
  } catch (...) {
    CALDERA_CUDA_REPORT(cudaFreeAsync(data, stream()), "freeing an allocation that could not be tracked");
    throw;
  }
  return data;
}

void CudaBackend::free_bytes(void* data, size_t size_bytes) noexcept {
  if (data == nullptr) return;
  Allocation freed;
  {
    std::lock_guard lock(memory_mutex_);
    if (auto it = live_.find(data); it != live_.end()) {
      freed = std::move(it->second);
      live_.erase(it);
    }
    current_bytes_ -= std::min(current_bytes_, size_bytes);
  }
  const cudaError_t err = cudaFreeAsync(data, stream());
  if (err != cudaSuccess) {
    const std::string what = "freeing '" + freed.label + "' (" + format_bytes(size_bytes) + ")";
    cuda_detail::report_cuda_failure(err, "cudaFreeAsync", what.c_str(), __FILE__, __LINE__);
  }
}

std::string CudaBackend::out_of_memory_report(size_t size_bytes, std::string_view label) const {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
  std::vector<std::pair<size_t, std::string>> largest;
  size_t held = 0, peak = 0;
  {
    std::lock_guard lock(memory_mutex_);
    held = current_bytes_;
    peak = peak_bytes_;
    for (const auto& [ptr, a] : live_) largest.emplace_back(a.bytes, a.label);
  }
  std::sort(largest.begin(), largest.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  std::string listing;
  for (size_t i = 0; i < std::min(largest.size(), kOomListed); ++i)
    listing += detail::concat(i == 0 ? "" : ", ", "'", largest[i].second, "' ", format_bytes(largest[i].first));
  return detail::concat("cuda:", device_, " out of memory allocating ", format_bytes(size_bytes), " for '", label,
                        "': ", format_bytes(free_bytes), " free of ", format_bytes(total_bytes),
                        " on the device; this backend holds ", format_bytes(held), " (peak ", format_bytes(peak),
                        ")", listing.empty() ? std::string() : "; largest live allocations: " + listing);
}

void CudaBackend::copy_2d(CopyKind kind, const void* src, size_t src_pitch_bytes, void* dst, size_t dst_pitch_bytes,
                          size_t width_bytes, size_t rows) {
  if (width_bytes == 0 || rows == 0) return;
  CALDERA_CHECK(rows == 1 || (src_pitch_bytes >= width_bytes && dst_pitch_bytes >= width_bytes),
                "copy_2d: pitches ", src_pitch_bytes, " / ", dst_pitch_bytes, " smaller than the row width ",
                width_bytes);
  make_current();
  const cudaMemcpyKind direction = to_cuda(kind);
  if (rows == 1 || (src_pitch_bytes == width_bytes && dst_pitch_bytes == width_bytes))
    CALDERA_CUDA_CHECK(cudaMemcpyAsync(dst, src, width_bytes * rows, direction, stream()));
  else
    CALDERA_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch_bytes, src, src_pitch_bytes, width_bytes, rows, direction,
                                         stream()));
  // Results must be on the host when download returns; a pinned source must stay untouched until
  // the copy has read it (pageable sources are staged before cudaMemcpyAsync returns).
  if (kind == CopyKind::kBackendToHost || (kind == CopyKind::kHostToBackend && is_pinned_host(src))) synchronize();
}

void CudaBackend::synchronize() {
  make_current();
  CALDERA_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

MemoryStats CudaBackend::memory_stats() const {
  std::lock_guard lock(memory_mutex_);
  MemoryStats m;
  m.current_bytes = current_bytes_;
  m.peak_bytes = peak_bytes_;
  m.device_total_bytes = info_.total_memory_bytes;
  return m;
}

void CudaBackend::reset_peak_memory() noexcept {
  std::lock_guard lock(memory_mutex_);
  peak_bytes_ = current_bytes_;
}

// ---- elementwise -------------------------------------------------------------------------------
namespace {

using kernels::MapArgs;
using kernels::MapOp;

template <class T>
void axpby_t(CudaBackend& be, T alpha, MatrixView<const T> x, T beta, MatrixView<T> y) {
  CALDERA_CHECK(same_shape(x, y), "axpby: ", x.rows, "x", x.cols, " vs ", y.rows, "x", y.cols);
  run_elementwise(be, MapArgs<T>{.op = MapOp::kAxpby, .y = y, .x = x, .alpha = alpha, .beta = beta}, "axpby");
}

template <class T>
void mul_rows_t(CudaBackend& be, MatrixView<T> a, MatrixView<const T> v) {
  const T* pv = cuda_detail::device_vector(v, a.rows, "mul_rows");
  run_elementwise(be, MapArgs<T>{.op = MapOp::kMulRows, .y = a, .v = pv}, "mul_rows");
}

template <class T>
void mul_cols_t(CudaBackend& be, MatrixView<T> a, MatrixView<const T> v) {
  const T* pv = cuda_detail::device_vector(v, a.cols, "mul_cols");
  run_elementwise(be, MapArgs<T>{.op = MapOp::kMulCols, .y = a, .v = pv}, "mul_cols");
}

template <class T>
void diagonal_t(CudaBackend& be, MatrixView<const T> a, MatrixView<T> d) {
  T* pd = cuda_detail::device_vector(d, std::min(a.rows, a.cols), "diagonal");
  run_elementwise(be, kernels::ExtractDiagonalArgs<T>{.a = a, .d = pd}, "diagonal");
}

template <class T>
void transpose_t(CudaBackend& be, MatrixView<const T> a, MatrixView<T> at) {
  CALDERA_CHECK(at.rows == a.cols && at.cols == a.rows, "transpose: ", a.rows, "x", a.cols, " into ", at.rows, "x",
                at.cols);
  run_elementwise(be, kernels::TransposeArgs<T>{.a = a, .at = at}, "transpose");
}

template <class S, class D>
void convert_t(CudaBackend& be, MatrixView<const S> src, MatrixView<D> dst) {
  CALDERA_CHECK(same_shape(src, dst), "convert: ", src.rows, "x", src.cols, " vs ", dst.rows, "x", dst.cols);
  run_elementwise(be, kernels::ConvertArgs<S, D>{.src = src, .dst = dst}, "convert");
}

/// Runs a reduction into a one-double device buffer and returns it (synchronizes).
template <class T>
double reduce_t(CudaBackend& be, kernels::ReduceOp op, MatrixView<const T> a, MatrixView<const T> b,
                const char* what) {
  DeviceBuffer<double> result(be, 1, what);
  run_elementwise(be, kernels::ReduceArgs<T>{.op = op, .a = a, .b = b, .result = result.data()}, what);
  double host = 0.0;
  be.copy_2d(CopyKind::kBackendToHost, result.data(), sizeof(double), &host, sizeof(double), sizeof(double), 1);
  return host;
}

template <class T>
double dot_t(CudaBackend& be, MatrixView<const T> a, MatrixView<const T> b) {
  CALDERA_CHECK(same_shape(a, b), "dot: ", a.rows, "x", a.cols, " vs ", b.rows, "x", b.cols);
  return reduce_t(be, kernels::ReduceOp::kDot, a, b, "dot");
}

}  // namespace

void CudaBackend::fill(MatrixView<float> a, float value) {
  run_elementwise(*this, MapArgs<float>{.op = MapOp::kFill, .y = a, .alpha = value}, "fill");
}
void CudaBackend::fill(MatrixView<double> a, double value) {
  run_elementwise(*this, MapArgs<double>{.op = MapOp::kFill, .y = a, .alpha = value}, "fill");
}
void CudaBackend::fill_normal(MatrixView<float> a, RngKey key) {
  run_elementwise(*this, kernels::FillNormalArgs{.a = a, .key = key}, "fill_normal");
}
void CudaBackend::scale(MatrixView<float> a, float alpha) {
  run_elementwise(*this, MapArgs<float>{.op = MapOp::kScale, .y = a, .alpha = alpha}, "scale");
}
void CudaBackend::scale(MatrixView<double> a, double alpha) {
  run_elementwise(*this, MapArgs<double>{.op = MapOp::kScale, .y = a, .alpha = alpha}, "scale");
}
void CudaBackend::axpby(float alpha, MatrixView<const float> x, float beta, MatrixView<float> y) {
  axpby_t(*this, alpha, x, beta, y);
}
void CudaBackend::axpby(double alpha, MatrixView<const double> x, double beta, MatrixView<double> y) {
  axpby_t(*this, alpha, x, beta, y);
}
void CudaBackend::mul_rows(MatrixView<float> a, MatrixView<const float> v) { mul_rows_t(*this, a, v); }
void CudaBackend::mul_rows(MatrixView<double> a, MatrixView<const double> v) { mul_rows_t(*this, a, v); }
void CudaBackend::mul_cols(MatrixView<float> a, MatrixView<const float> v) { mul_cols_t(*this, a, v); }
void CudaBackend::mul_cols(MatrixView<double> a, MatrixView<const double> v) { mul_cols_t(*this, a, v); }
void CudaBackend::add_diagonal(MatrixView<float> a, float value) {
  run_elementwise(*this, kernels::AddDiagonalArgs<float>{.a = a, .value = value}, "add_diagonal");
}
void CudaBackend::add_diagonal(MatrixView<double> a, double value) {
  run_elementwise(*this, kernels::AddDiagonalArgs<double>{.a = a, .value = value}, "add_diagonal");
}
void CudaBackend::diagonal(MatrixView<const float> a, MatrixView<float> d) { diagonal_t(*this, a, d); }
void CudaBackend::diagonal(MatrixView<const double> a, MatrixView<double> d) { diagonal_t(*this, a, d); }
void CudaBackend::transpose(MatrixView<const float> a, MatrixView<float> at) { transpose_t(*this, a, at); }
void CudaBackend::transpose(MatrixView<const double> a, MatrixView<double> at) { transpose_t(*this, a, at); }
void CudaBackend::convert(MatrixView<const float> src, MatrixView<double> dst) { convert_t(*this, src, dst); }
void CudaBackend::convert(MatrixView<const double> src, MatrixView<float> dst) { convert_t(*this, src, dst); }
double CudaBackend::sum_squares(MatrixView<const float> a) {
  return reduce_t(*this, kernels::ReduceOp::kSumSquares, a, {}, "sum_squares");
}
double CudaBackend::sum_squares(MatrixView<const double> a) {
  return reduce_t(*this, kernels::ReduceOp::kSumSquares, a, {}, "sum_squares");
}
double CudaBackend::dot(MatrixView<const float> a, MatrixView<const float> b) { return dot_t(*this, a, b); }
double CudaBackend::dot(MatrixView<const double> a, MatrixView<const double> b) { return dot_t(*this, a, b); }
void CudaBackend::accumulate_fixed(MatrixView<const double> g, MatrixView<Fixed128> acc) {
  CALDERA_CHECK(same_shape(g, acc), "accumulate_fixed: ", g.rows, "x", g.cols, " vs ", acc.rows, "x", acc.cols);
  if (g.empty()) return;
  DeviceBuffer<unsigned long long> bad(*this, 1, "accumulate_fixed");
  CALDERA_CUDA_CHECK(cudaMemsetAsync(bad.data(), 0, sizeof(unsigned long long), stream()));
  run_elementwise(*this, kernels::FixedAccumulateArgs{.g = g, .acc = acc, .bad_count = bad.data()}, "accumulate_fixed");
  unsigned long long host = 0;
  copy_2d(CopyKind::kBackendToHost, bad.data(), sizeof(host), &host, sizeof(host), sizeof(host), 1);
  if (host > 0)
    raise<NumericError>("accumulate_fixed: ", host, " entries are not finite or exceed ", kFixedMaxMagnitude,
                        " in magnitude");
}

void CudaBackend::fixed_chunk(MatrixView<const Fixed128> acc, int chunk, MatrixView<double> out) {
  CALDERA_CHECK(same_shape(acc, out), "fixed_chunk: ", acc.rows, "x", acc.cols, " vs ", out.rows, "x", out.cols);
  CALDERA_CHECK(chunk >= 0 && chunk < 3, "fixed_chunk: chunk ", chunk, " is not 0, 1 or 2");
  run_elementwise(*this, kernels::FixedChunkArgs{.acc = acc, .chunk = chunk, .out = out}, "fixed_chunk");
}

bool CudaBackend::all_finite(MatrixView<const float> a) {
  return reduce_t(*this, kernels::ReduceOp::kCountNonFinite, a, {}, "all_finite") == 0.0;
}
bool CudaBackend::all_finite(MatrixView<const double> a) {
  return reduce_t(*this, kernels::ReduceOp::kCountNonFinite, a, {}, "all_finite") == 0.0;
}

}  // namespace caldera::linalg
