// The Backend interface (DESIGN §5, style C6): every heavy operation the algorithms need, with a
// CPU implementation (OpenBLAS + LAPACKE, the reference) and a CUDA one (cuBLAS + cuSOLVER +
// kernels/). Algorithms are written once against Backend&.
//
// Conventions for every operation below:
//  - Matrices are row-major views (core/matrix.h) into memory of THIS backend (host memory for the
//    CPU backend, device memory for CUDA). Vectors are 1×n or n×1 contiguous views.
//  - Operations are enqueued in order on the backend's single stream; results are visible to the
//    host after download() or synchronize(). Functions returning a scalar synchronize.
//  - Shape mismatches throw caldera::Error; numerical failures throw NumericError; vendor failures
//    throw BlasError / CudaError.
//  - Overloads exist for float and double wherever both are listed.
//  - quant() and nn() are facets with the quantization and neural-network kernels
//    (linalg/quant_kernels.h, linalg/nn_kernels.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/fixed_point.h"
#include "core/matrix.h"
#include "core/rng.h"

namespace caldera::linalg {

enum class BackendKind : uint8_t { kCpu, kCuda };
std::string_view to_string(BackendKind kind) noexcept;
/// "cpu" or "cuda"; throws ConfigError otherwise.
BackendKind parse_backend_kind(std::string_view text);

enum class Op : bool { kNoTrans, kTrans };
enum class Uplo : bool { kLower, kUpper };
enum class Side : bool { kLeft, kRight };
enum class Diag : bool { kNonUnit, kUnit };
enum class CopyKind : uint8_t { kHostToBackend, kBackendToHost, kBackendToBackend };

class Backend;
class QuantKernels;
class NnKernels;

/// Move-only owner of bytes allocated by a backend. Freed (never throwing) on destruction.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, void* data, size_t size_bytes) noexcept : owner_(owner), data_(data), size_bytes_(size_bytes) {}
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    Buffer tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const noexcept { return data_; }
  size_t size_bytes() const noexcept { return size_bytes_; }

 private:
  void swap(Buffer& o) noexcept {
    std::swap(owner_, o.owner_);
    std::swap(data_, o.data_);
    std::swap(size_bytes_, o.size_bytes_);
  }
  Backend* owner_ = nullptr;
  void* data_ = nullptr;
  size_t size_bytes_ = 0;
};

/// Contiguous row-major rows×cols matrix in a backend's memory. Contents start uninitialised.
template <class T>
class Matrix {
 public:
  Matrix() = default;
  Matrix(Backend& backend, int64_t rows, int64_t cols, std::string_view label);

  int64_t rows() const noexcept { return rows_; }
  int64_t cols() const noexcept { return cols_; }
  int64_t size() const noexcept { return rows_ * cols_; }
  bool empty() const noexcept { return size() == 0; }
  T* data() noexcept { return static_cast<T*>(buffer_.data()); }
  const T* data() const noexcept { return static_cast<const T*>(buffer_.data()); }

  MatrixView<T> view() noexcept { return MatrixView<T>(data(), rows_, cols_, cols_); }
  MatrixView<const T> view() const noexcept { return MatrixView<const T>(data(), rows_, cols_, cols_); }
  MatrixView<const T> cview() const noexcept { return view(); }
  operator MatrixView<T>() noexcept { return view(); }
  operator MatrixView<const T>() const noexcept { return view(); }

 private:
  Buffer buffer_;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
};

struct MemoryStats {
  size_t current_bytes = 0;  ///< bytes allocated through this backend now
  size_t peak_bytes = 0;     ///< high-water mark since creation or reset_peak_memory()
  size_t device_total_bytes = 0;  ///< capacity of the device (host RAM for CPU)
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual BackendKind kind() const noexcept = 0;
  /// Human-readable description, e.g. "cpu (OpenBLAS, 16 threads)" or "cuda:0 NVIDIA H100 80GB HBM3".
  virtual std::string description() const = 0;

  // ---- memory ------------------------------------------------------------------------------
  /// Allocates size_bytes (>0) of backend memory; throws (naming `label`) when out of memory.
  virtual void* allocate_bytes(size_t size_bytes, std::string_view label) = 0;
  virtual void free_bytes(void* data, size_t size_bytes) noexcept = 0;
  /// 2-D copy of `rows` rows of `width_bytes` each between pitched buffers.
  virtual void copy_2d(CopyKind kind, const void* src, size_t src_pitch_bytes, void* dst, size_t dst_pitch_bytes,
                       size_t width_bytes, size_t rows) = 0;
  /// Waits until all enqueued work is done; rethrows asynchronous errors.
  virtual void synchronize() = 0;
  virtual MemoryStats memory_stats() const = 0;
  virtual void reset_peak_memory() noexcept = 0;

  template <class T>
  Matrix<T> make(int64_t rows, int64_t cols, std::string_view label) {
    return Matrix<T>(*this, rows, cols, label);
  }
  /// Host -> new backend matrix.
  template <class T>
  Matrix<T> upload(MatrixView<const T> host, std::string_view label) {
    Matrix<T> m(*this, host.rows, host.cols, label);
    upload(host, m.view());
    return m;
  }
  /// Host view -> backend view of the same shape.
  template <class T>
  void upload(MatrixView<const T> host, MatrixView<T> dst) {
    CALDERA_CHECK(same_shape(host, dst), "upload: shape ", host.rows, "x", host.cols, " vs ", dst.rows, "x", dst.cols);
    if (host.empty()) return;
    copy_2d(CopyKind::kHostToBackend, host.data, sizeof(T) * host.ld, dst.data, sizeof(T) * dst.ld,
            sizeof(T) * host.cols, host.rows);
  }
  /// Backend view -> host view of the same shape (synchronizes).
  template <class T>
  void download(MatrixView<const T> src, MatrixView<T> host) {
    CALDERA_CHECK(same_shape(src, host), "download: shape ", src.rows, "x", src.cols, " vs ", host.rows, "x", host.cols);
    if (src.empty()) return;
    copy_2d(CopyKind::kBackendToHost, src.data, sizeof(T) * src.ld, host.data, sizeof(T) * host.ld,
            sizeof(T) * src.cols, src.rows);
  }
  template <class T>
  HostMatrix<std::remove_const_t<T>> download(MatrixView<T> src) {
    HostMatrix<std::remove_const_t<T>> h(src.rows, src.cols);
    download(MatrixView<const std::remove_const_t<T>>(src), h.view());
    return h;
  }
  template <class T>
  HostMatrix<T> download(const Matrix<T>& src) {
    return download(src.view());
  }
  /// Backend view -> backend view of the same shape.
  template <class T>
  void copy(MatrixView<const T> src, MatrixView<T> dst) {
    CALDERA_CHECK(same_shape(src, dst), "copy: shape ", src.rows, "x", src.cols, " vs ", dst.rows, "x", dst.cols);
    if (src.empty()) return;
    copy_2d(CopyKind::kBackendToBackend, src.data, sizeof(T) * src.ld, dst.data, sizeof(T) * dst.ld,
            sizeof(T) * src.cols, src.rows);
  }
  template <class T>
  Matrix<T> clone(MatrixView<const T> src, std::string_view label) {
    Matrix<T> m(*this, src.rows, src.cols, label);
    copy(src, m.view());
    return m;
  }

  // ---- BLAS --------------------------------------------------------------------------------
  /// c = alpha * op(a) * op(b) + beta * c. With beta == 0, c is not read (may hold NaN).
  virtual void gemm(Op op_a, Op op_b, float alpha, MatrixView<const float> a, MatrixView<const float> b, float beta,
                    MatrixView<float> c) = 0;
  virtual void gemm(Op op_a, Op op_b, double alpha, MatrixView<const double> a, MatrixView<const double> b,
                    double beta, MatrixView<double> c) = 0;
  /// h += xᵀ x for x (tokens × n); h (n × n) stays fully symmetric (both triangles written).
  /// The double overload accumulates products of the float inputs exactly in fp64.
  virtual void gram_accumulate(MatrixView<const float> x, MatrixView<double> h) = 0;
  virtual void gram_accumulate(MatrixView<const float> x, MatrixView<float> h) = 0;

  /// acc(i,j) += to_fixed(g(i,j)) (core/fixed_point.h): exact, order-independent accumulation of
  /// fp64 partial sums (phase 1 adds each sequence's Gram matrix, so Hessians do not depend on how
  /// sequences are split over ranks). Throws NumericError when an entry of g is not finite or
  /// |g| >= kFixedMaxMagnitude (acc is then unspecified).
  virtual void accumulate_fixed(MatrixView<const double> g, MatrixView<Fixed128> acc) = 0;
  /// out(i,j) = chunk `chunk` (0, 1 or 2) of fixed_to_chunks(acc(i,j)): integers below 2^43 in
  /// magnitude held exactly in doubles, so fixed-point sums can be added over ranks by ordinary
  /// fp64 reductions without rounding (chunks_to_fixed recombines them).
  virtual void fixed_chunk(MatrixView<const Fixed128> acc, int chunk, MatrixView<double> out) = 0;

  // ---- LAPACK ------------------------------------------------------------------------------
  /// In place: a (n×n symmetric positive definite) -> lower Cholesky factor L with a = L Lᵀ; the
  /// strict upper triangle is set to 0. Throws NumericError naming the first non-positive pivot.
  virtual void cholesky(MatrixView<float> a) = 0;
  virtual void cholesky(MatrixView<double> a) = 0;
  /// Solves op(a) x = alpha b (Side::kLeft) or x op(a) = alpha b (Side::kRight) for triangular a;
  /// b is overwritten with x.
  virtual void triangular_solve(Side side, Uplo uplo, Op op, Diag diag, float alpha, MatrixView<const float> a,
                                MatrixView<float> b) = 0;
  virtual void triangular_solve(Side side, Uplo uplo, Op op, Diag diag, double alpha, MatrixView<const double> a,
                                MatrixView<double> b) = 0;
  /// In place: lower Cholesky factor L -> (L Lᵀ)⁻¹, fully symmetric.
  virtual void cholesky_inverse(MatrixView<float> a) = 0;
  virtual void cholesky_inverse(MatrixView<double> a) = 0;
  /// Symmetric eigendecomposition. In: a symmetric n×n (both triangles equal). Out: row i of a is
  /// the unit eigenvector of eigenvalue w[i]; w (n entries) ascending. So a_in = aᵀ diag(w) a.
  virtual void eigh(MatrixView<float> a, MatrixView<float> w) = 0;
  virtual void eigh(MatrixView<double> a, MatrixView<double> w) = 0;
  /// Thin SVD a = u diag(s) vt with k = min(m, n): u m×k, s k entries descending, vt k×n. a is read only.
  virtual void svd(MatrixView<const float> a, MatrixView<float> u, MatrixView<float> s, MatrixView<float> vt) = 0;
  virtual void svd(MatrixView<const double> a, MatrixView<double> u, MatrixView<double> s, MatrixView<double> vt) = 0;
  /// In place: a (m×k, m >= k) -> Q of its thin QR (orthonormal columns spanning the same space).
  virtual void qr_orthonormalize(MatrixView<float> a) = 0;
  virtual void qr_orthonormalize(MatrixView<double> a) = 0;

  // ---- elementwise and reductions -----------------------------------------------------------
  virtual void fill(MatrixView<float> a, float value) = 0;
  virtual void fill(MatrixView<double> a, double value) = 0;
  /// a(i,j) = standard normal number (i * a.cols + j) of the stream `key` (identical on every backend).
  virtual void fill_normal(MatrixView<float> a, RngKey key) = 0;
  virtual void scale(MatrixView<float> a, float alpha) = 0;
  virtual void scale(MatrixView<double> a, double alpha) = 0;
  /// y = alpha x + beta y (same shapes).
  virtual void axpby(float alpha, MatrixView<const float> x, float beta, MatrixView<float> y) = 0;
  virtual void axpby(double alpha, MatrixView<const double> x, double beta, MatrixView<double> y) = 0;
  /// a(i,j) *= v[i]  (v has a.rows entries).
  virtual void mul_rows(MatrixView<float> a, MatrixView<const float> v) = 0;
  virtual void mul_rows(MatrixView<double> a, MatrixView<const double> v) = 0;
  /// a(i,j) *= v[j]  (v has a.cols entries).
  virtual void mul_cols(MatrixView<float> a, MatrixView<const float> v) = 0;
  virtual void mul_cols(MatrixView<double> a, MatrixView<const double> v) = 0;
  /// a(i,i) += value for i < min(rows, cols).
  virtual void add_diagonal(MatrixView<float> a, float value) = 0;
  virtual void add_diagonal(MatrixView<double> a, double value) = 0;
  /// d[i] = a(i,i) for i < min(rows, cols).
  virtual void diagonal(MatrixView<const float> a, MatrixView<float> d) = 0;
  virtual void diagonal(MatrixView<const double> a, MatrixView<double> d) = 0;
  /// at = aᵀ (at: cols×rows, must not alias a).
  virtual void transpose(MatrixView<const float> a, MatrixView<float> at) = 0;
  virtual void transpose(MatrixView<const double> a, MatrixView<double> at) = 0;
  /// Precision conversion (same shapes; double -> float rounds to nearest).
  virtual void convert(MatrixView<const float> src, MatrixView<double> dst) = 0;
  virtual void convert(MatrixView<const double> src, MatrixView<float> dst) = 0;
  /// Σ a(i,j)², accumulated in double.
  virtual double sum_squares(MatrixView<const float> a) = 0;
  virtual double sum_squares(MatrixView<const double> a) = 0;
  /// Σ a(i,j) b(i,j), accumulated in double.
  virtual double dot(MatrixView<const float> a, MatrixView<const float> b) = 0;
  virtual double dot(MatrixView<const double> a, MatrixView<const double> b) = 0;
  /// True when every entry is finite.
  virtual bool all_finite(MatrixView<const float> a) = 0;
  virtual bool all_finite(MatrixView<const double> a) = 0;

  // ---- facets ------------------------------------------------------------------------------
  virtual QuantKernels& quant() = 0;
  virtual NnKernels& nn() = 0;
};

inline Buffer::~Buffer() {
  if (data_ != nullptr && owner_ != nullptr) owner_->free_bytes(data_, size_bytes_);
}

template <class T>
Matrix<T>::Matrix(Backend& backend, int64_t rows, int64_t cols, std::string_view label) : rows_(rows), cols_(cols) {
  CALDERA_CHECK(rows >= 0 && cols >= 0, "matrix '", label, "': negative shape ", rows, "x", cols);
  const size_t bytes = static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(T);
  if (bytes > 0) buffer_ = Buffer(&backend, backend.allocate_bytes(bytes, label), bytes);
}

struct BackendOptions {
  /// CUDA device ordinal; -1 picks local_rank modulo the number of visible devices.
  int device = -1;
  /// Node-local rank of this process (the CLI takes it from MPI); used when device == -1.
  int local_rank = 0;
  /// CPU threads for BLAS/OpenMP; 0 keeps the library default.
  int cpu_threads = 0;
};

/// Creates a backend; throws ConfigError when `kind` is not compiled in or no device is present.
[[nodiscard]] std::unique_ptr<Backend> make_backend(BackendKind kind, const BackendOptions& options = {});
/// True when make_backend(kind) would succeed (compiled in and, for CUDA, a device is present).
[[nodiscard]] bool backend_available(BackendKind kind) noexcept;

}  // namespace caldera::linalg
