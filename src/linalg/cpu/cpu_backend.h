// CPU backend: OpenBLAS (cblas) + LAPACKE, OpenMP for elementwise loops. The reference
// implementation of every Backend operation; parity tests compare CUDA against it.
//
// Row-major handling: cblas takes CblasRowMajor directly. LAPACK routines are called in column-major
// on the same buffer, which LAPACK then sees transposed; each call documents why that is correct
// (symmetric inputs, triangles swapped, SVD factors swapped, LQ in place of QR).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "linalg/backend.h"

namespace caldera::linalg {

class CpuQuantKernels;
class CpuNnKernels;

/// The kernel set OpenBLAS selected at load time (openblas_get_corename(): "SkylakeX", "Haswell", ...).
[[nodiscard]] std::string openblas_core_name();

/// Advice when OpenBLAS runs generic SSE kernels on a CPU with AVX2 / AVX-512: its runtime
/// detection falls back to "Prescott" on CPU models it does not know (seen in VMs reporting "Intel
/// Xeon Processor": sgemm 43 GFLOPS there, 233 with OPENBLAS_CORETYPE=SkylakeX). Returns the warning
/// text naming the OPENBLAS_CORETYPE value to set, or "" when `core` is not a generic pre-AVX2 one or
/// the CPU lacks AVX2. Pure (the caller passes the CPU's features) so it is testable anywhere.
[[nodiscard]] std::string openblas_kernel_advice(std::string_view core, bool cpu_has_avx2, bool cpu_has_avx512f);

/// openblas_kernel_advice for this process' OpenBLAS and CPU.
[[nodiscard]] std::string openblas_kernel_advice();

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options);
  ~CpuBackend() override;

  BackendKind kind() const noexcept override { return BackendKind::kCpu; }
  std::string description() const override;

  void* allocate_bytes(size_t size_bytes, std::string_view label) override;
  void free_bytes(void* data, size_t size_bytes) noexcept override;
  void copy_2d(CopyKind kind, const void* src, size_t src_pitch_bytes, void* dst, size_t dst_pitch_bytes,
               size_t width_bytes, size_t rows) override;
  void synchronize() override {}
  MemoryStats memory_stats() const override;
  void reset_peak_memory() noexcept override;

  void gemm(Op op_a, Op op_b, float alpha, MatrixView<const float> a, MatrixView<const float> b, float beta,
            MatrixView<float> c) override;
  void gemm(Op op_a, Op op_b, double alpha, MatrixView<const double> a, MatrixView<const double> b, double beta,
            MatrixView<double> c) override;
  void gram_accumulate(MatrixView<const float> x, MatrixView<double> h) override;
  void gram_accumulate(MatrixView<const float> x, MatrixView<float> h) override;
  void accumulate_fixed(MatrixView<const double> g, MatrixView<Fixed128> acc) override;
  void fixed_chunk(MatrixView<const Fixed128> acc, int chunk, MatrixView<double> out) override;

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
  bool all_finite(MatrixView<const float> a) override;
  bool all_finite(MatrixView<const double> a) override;

  QuantKernels& quant() override;
  NnKernels& nn() override;

 private:
  std::atomic<size_t> current_bytes_{0};
  std::atomic<size_t> peak_bytes_{0};
  std::unique_ptr<CpuQuantKernels> quant_;
  std::unique_ptr<CpuNnKernels> nn_;
};

}  // namespace caldera::linalg
