// CUDA backend: cuBLAS + cuSOLVER + kernels/ behind the Backend interface (DESIGN §5, style C6).
//
// Stream and device. One non-blocking CUDA stream per backend; every operation is enqueued on it,
// and the cuBLAS and cuSOLVER handles are bound to it. The device is BackendOptions::device, or
// local_rank modulo the number of visible devices; every entry point makes it current in the
// calling thread first. A backend is used from one thread at a time (it is not thread-safe).
//
// Memory. Device memory comes from a stream-ordered pool owned by the backend
// (cudaMallocFromPoolAsync / cudaFreeAsync on the backend's stream, release threshold "never", so
// freed memory is reused without going back to the driver). Allocations are tracked with their
// labels: memory_stats() reports current and peak bytes, and running out of memory throws CudaError
// naming the label, the size, the device's free/total memory and the largest live allocations.
// Matrices and DeviceBuffers must not outlive the backend that allocated them.
//
// Synchronization. copy_2d(kBackendToHost) and every function that returns a scalar or can fail
// numerically (cholesky, cholesky_inverse, eigh, svd, qr_orthonormalize read cuSOLVER's devInfo)
// synchronize the stream; everything else is asynchronous. synchronize() rethrows asynchronous
// errors; sticky errors (illegal address, ...) call caldera::fatal (cuda_check.h).
//
// Row-major handling (the one place it is done for CUDA). cuBLAS and cuSOLVER are column-major; a
// row-major m×n buffer with leading dimension ld is, to them, the column-major n×m matrix Aᵀ with
// the same ld.
//  - gemm: C = op(A) op(B) row-major is Cᵀ = op(B)ᵀ op(A)ᵀ column-major, so cuBLAS gets the
//    operands swapped (B first), the same transpose flags and the dimensions (n, m, k).
//  - triangular_solve: op(A) X = αB row-major is Xᵀ op(A)ᵀ = αBᵀ column-major: side and uplo flip
//    (row-major lower = column-major upper), the transpose flag stays.
//  - gram_accumulate: x (tokens×n row-major) is column-major xᵀ (n×tokens), so h += xᵀx is syrk
//    with CUBLAS_OP_N filling the column-major upper = row-major lower triangle, then mirrored.
//  - cholesky / cholesky_inverse: potrf/potri('U') on the column-major view factor Aᵀ = Uᵀ U, and
//    U column-major is L row-major (as in the CPU backend); the strict upper triangle is zeroed
//    (cholesky) or filled by mirroring (cholesky_inverse).
//  - eigh: syevd on the symmetric buffer leaves eigenvectors in columns of the column-major view =
//    rows of the row-major buffer, which is the Backend contract.
//  - svd: gesvd needs rows >= cols in column-major. For m <= n the column-major view aᵀ (n×m) is
//    used directly: aᵀ = U' S V'ᵀ gives a = V' S U'ᵀ, so U' (n×k column-major) is written straight
//    into vt (k×n row-major) and V'ᵀ (k×m column-major) into u (m×k row-major). For m > n the input
//    is transposed first (column-major a, m×n) and both factors are transposed back.
//  - qr_orthonormalize: cuSOLVER has no gelqf, so a is transposed into a column-major m×k copy,
//    geqrf + orgqr run on it and Q is transposed back.
//
// Precision. fp32 GEMM/SYRK/TRSM run in true fp32: the cuBLAS handle uses CUBLAS_DEFAULT_MATH, which
// never uses TF32 or the BF16x9 emulation (an option may allow TF32 later). fp64 routines may use
// Hopper's fp64 tensor cores (DMMA), which are IEEE fp64 FMAs. gram_accumulate(fp64) widens chunks
// of rows to double before DSYRK, so every product of two fp32 inputs is exact and only the fp64
// summation rounds. cuSOLVER runs in deterministic mode; the reductions of kernels/elementwise are
// deterministic by construction; results repeat bit for bit on the same GPU model and library.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "linalg/backend.h"

// Vendor handle types, declared exactly as cuda_runtime_api.h, cublas_api.h and cusolverDn.h do
// (static_asserts in cuda_backend.cu check it), so that this header needs no CUDA include path:
// registry.cpp includes it from a plain C++ target. cudaStream_t is CUstream_st*, and so on.
struct CUstream_st;
struct CUmemPoolHandle_st;
struct cublasContext;
struct cusolverDnContext;
struct cusolverDnParams;

namespace caldera::linalg {

class CudaQuantKernels;
class CudaNnKernels;

/// Number of visible CUDA devices; 0 (never throws) when there is no driver, no GPU, or the
/// runtime cannot initialise. Registry and tests use it to decide whether CUDA is available.
[[nodiscard]] int cuda_device_count() noexcept;

/// Properties of the backend's device that kernels and facets size themselves by.
struct CudaDeviceInfo {
  int ordinal = 0;
  std::string name;
  int compute_capability_major = 0;
  int compute_capability_minor = 0;
  int sm_count = 0;
  size_t total_memory_bytes = 0;
  size_t shared_memory_per_block_bytes = 0;        ///< default limit per block
  size_t shared_memory_per_block_optin_bytes = 0;  ///< with cudaFuncAttributeMaxDynamicSharedMemorySize
  size_t shared_memory_per_sm_bytes = 0;
  int max_threads_per_sm = 0;
  int l2_cache_bytes = 0;
};

namespace cuda_detail {
// noexcept deleters of the RAII handles; failures are logged (sticky errors are fatal).
struct StreamDeleter {
  void operator()(CUstream_st* stream) const noexcept;
};
struct MemPoolDeleter {
  void operator()(CUmemPoolHandle_st* pool) const noexcept;
};
struct CublasDeleter {
  void operator()(cublasContext* handle) const noexcept;
};
struct CusolverDeleter {
  void operator()(cusolverDnContext* handle) const noexcept;
};
struct CusolverParamsDeleter {
  void operator()(cusolverDnParams* params) const noexcept;
};
}  // namespace cuda_detail

class CudaBackend final : public Backend {
 public:
  using StreamHandle = CUstream_st*;            ///< cudaStream_t
  using CublasHandle = cublasContext*;          ///< cublasHandle_t
  using CusolverHandle = cusolverDnContext*;    ///< cusolverDnHandle_t
  using CusolverParamsHandle = cusolverDnParams*;  ///< cusolverDnParams_t

  /// Selects the device (options.device, or options.local_rank % cuda_device_count()), creates the
  /// stream, the memory pool and the cuBLAS/cuSOLVER handles. Throws ConfigError when no device is
  /// visible or options.device is out of range, CudaError/BlasError when the runtime fails.
  explicit CudaBackend(const BackendOptions& options);
  /// Synchronizes, releases the facets and the handles; logs (never throws) on failure and warns
  /// about allocations still alive (a Matrix that outlives its backend is a bug).
  ~CudaBackend() override;

  BackendKind kind() const noexcept override { return BackendKind::kCuda; }
  std::string description() const override;

  void* allocate_bytes(size_t size_bytes, std::string_view label) override;
  void free_bytes(void* data, size_t size_bytes) noexcept override;
  void copy_2d(CopyKind kind, const void* src, size_t src_pitch_bytes, void* dst, size_t dst_pitch_bytes,
               size_t width_bytes, size_t rows) override;
  void synchronize() override;
  MemoryStats memory_stats() const override;
  void reset_peak_memory() noexcept override;

  void gemm(Op op_a, Op op_b, float alpha, MatrixView<const float> a, MatrixView<const float> b, float beta,
            MatrixView<float> c) override;
  void gemm(Op op_a, Op op_b, double alpha, MatrixView<const double> a, MatrixView<const double> b, double beta,
            MatrixView<double> c) override;
  void gram_accumulate(MatrixView<const float> x, MatrixView<double> h) override;
  void gram_accumulate(MatrixView<const float> x, MatrixView<float> h) override;

  void cholesky(MatrixView<float> a) override;
  void cholesky(MatrixView<double> a) override;
  void triangular_solve(Side side, Uplo uplo, Op op, Diag diag, float alpha, MatrixView<const float> a,
                        MatrixView<float> b) override;
  void triangular_solve(Side side, Uplo uplo, Op op, Diag diag, double alpha, MatrixView<const double> a,
                        MatrixView<double> b) override;
  void cholesky_inverse(MatrixView<float> a) override;
  void cholesky_inverse(MatrixView<double> a) override;
  void eigh(MatrixView<float> a, MatrixView<float> w) override;
  void eigh(MatrixView<double> a, MatrixView<double> w) override;
  void svd(MatrixView<const float> a, MatrixView<float> u, MatrixView<float> s, MatrixView<float> vt) override;
  void svd(MatrixView<const double> a, MatrixView<double> u, MatrixView<double> s, MatrixView<double> vt) override;
  void qr_orthonormalize(MatrixView<float> a) override;
  void qr_orthonormalize(MatrixView<double> a) override;

  void fill(MatrixView<float> a, float value) override;
  void fill(MatrixView<double> a, double value) override;
  void fill_normal(MatrixView<float> a, RngKey key) override;
  void scale(MatrixView<float> a, float alpha) override;
  void scale(MatrixView<double> a, double alpha) override;
  void axpby(float alpha, MatrixView<const float> x, float beta, MatrixView<float> y) override;
  void axpby(double alpha, MatrixView<const double> x, double beta, MatrixView<double> y) override;
  void mul_rows(MatrixView<float> a, MatrixView<const float> v) override;
  void mul_rows(MatrixView<double> a, MatrixView<const double> v) override;
  void mul_cols(MatrixView<float> a, MatrixView<const float> v) override;
  void mul_cols(MatrixView<double> a, MatrixView<const double> v) override;
  void add_diagonal(MatrixView<float> a, float value) override;
  void add_diagonal(MatrixView<double> a, double value) override;
  void diagonal(MatrixView<const float> a, MatrixView<float> d) override;
  void diagonal(MatrixView<const double> a, MatrixView<double> d) override;
  void transpose(MatrixView<const float> a, MatrixView<float> at) override;
  void transpose(MatrixView<const double> a, MatrixView<double> at) override;
  void convert(MatrixView<const float> src, MatrixView<double> dst) override;
  void convert(MatrixView<const double> src, MatrixView<float> dst) override;
  double sum_squares(MatrixView<const float> a) override;
  double sum_squares(MatrixView<const double> a) override;
  double dot(MatrixView<const float> a, MatrixView<const float> b) override;
  double dot(MatrixView<const double> a, MatrixView<const double> b) override;
  void accumulate_fixed(MatrixView<const double> g, MatrixView<Fixed128> acc) override;
  void fixed_chunk(MatrixView<const Fixed128> acc, int chunk, MatrixView<double> out) override;
  bool all_finite(MatrixView<const float> a) override;
  bool all_finite(MatrixView<const double> a) override;

  QuantKernels& quant() override;
  NnKernels& nn() override;

  // ---- CUDA-specific accessors for the facets (linalg/cuda) and CUDA-only tests -----------------
  /// The backend's stream (a cudaStream_t); everything the backend does is ordered on it.
  StreamHandle stream() const noexcept { return stream_.get(); }
  /// cuBLAS handle bound to stream(), CUBLAS_DEFAULT_MATH, host pointer mode, workspace from the pool.
  CublasHandle cublas() const noexcept { return cublas_.get(); }
  /// cuSOLVER dense handle bound to stream(), deterministic mode.
  CusolverHandle cusolver() const noexcept { return cusolver_.get(); }
  /// Parameters object for cuSOLVER's 64-bit (cusolverDnX*) API, default algorithms.
  CusolverParamsHandle cusolver_params() const noexcept { return cusolver_params_.get(); }
  int device() const noexcept { return device_; }
  const CudaDeviceInfo& device_info() const noexcept { return info_; }
  /// Makes this backend's device current in the calling thread (cheap when it already is).
  void make_current() const;

 private:
  struct Allocation {
    size_t bytes = 0;
    std::string label;
  };
  /// Text for an out-of-memory error: the request, device free/total, the largest live allocations.
  std::string out_of_memory_report(size_t size_bytes, std::string_view label) const;

  int device_ = 0;
  CudaDeviceInfo info_;
  // Declaration order is destruction order reversed: the facets and the cuBLAS workspace free their
  // memory before the handles, the pool and the stream go away.
  std::unique_ptr<CUstream_st, cuda_detail::StreamDeleter> stream_;
  std::unique_ptr<CUmemPoolHandle_st, cuda_detail::MemPoolDeleter> pool_;
  std::unique_ptr<cublasContext, cuda_detail::CublasDeleter> cublas_;
  std::unique_ptr<cusolverDnContext, cuda_detail::CusolverDeleter> cusolver_;
  std::unique_ptr<cusolverDnParams, cuda_detail::CusolverParamsDeleter> cusolver_params_;
  mutable std::mutex memory_mutex_;
  std::unordered_map<void*, Allocation> live_;
  size_t current_bytes_ = 0;
  size_t peak_bytes_ = 0;
  Buffer cublas_workspace_;
  std::unique_ptr<CudaQuantKernels> quant_;
  std::unique_ptr<CudaNnKernels> nn_;
};

/// Typed, labelled, move-only device workspace of a CudaBackend: stream-ordered on
/// backend.stream() (usable by work enqueued there after construction; freed with cudaFreeAsync
/// when destroyed, after the work already enqueued). Contents start uninitialised.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  /// n_elems elements (0 gives an empty buffer); throws CudaError naming `label` when out of memory.
  DeviceBuffer(CudaBackend& backend, size_t n_elems, std::string_view label) : size_(n_elems) {
    CALDERA_CHECK(n_elems <= static_cast<size_t>(-1) / sizeof(T), "DeviceBuffer '", label, "': ", n_elems,
                  " elements overflow size_t");
    const size_t bytes = n_elems * sizeof(T);
    if (n_elems > 0) buffer_ = Buffer(&backend, backend.allocate_bytes(bytes, label), bytes);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : buffer_(std::move(other.buffer_)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    buffer_ = std::move(other.buffer_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() = default;

  T* data() const noexcept { return static_cast<T*>(buffer_.data()); }
  size_t size() const noexcept { return size_; }
  size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }
  /// Contiguous row-major rows×cols view of the first rows*cols elements (checked).
  MatrixView<T> view(int64_t rows, int64_t cols) const {
    CALDERA_CHECK(rows >= 0 && cols >= 0 && static_cast<size_t>(rows) * static_cast<size_t>(cols) <= size_,
                  "DeviceBuffer::view: ", rows, "x", cols, " does not fit in ", size_, " elements");
    return MatrixView<T>(data(), rows, cols, cols);
  }

 private:
  Buffer buffer_;
  size_t size_ = 0;
};

}  // namespace caldera::linalg
