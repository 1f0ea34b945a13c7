// CpuBackend: memory, elementwise operations and reductions. BLAS/LAPACK calls are in cpu_lapack.cpp.
#include "linalg/cpu/cpu_backend.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/error.h"
#include "linalg/cpu/cpu_nn_kernels.h"
#include "linalg/cpu/cpu_quant_kernels.h"
#include "linalg/cpu/cpu_views.h"

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_num_threads(void);
extern "C" char* openblas_get_corename(void);

namespace caldera::linalg {

std::string openblas_core_name() {
  const char* name = openblas_get_corename();
  return name != nullptr ? std::string(name) : std::string("unknown");
}

std::string openblas_kernel_advice(std::string_view core, bool cpu_has_avx2, bool cpu_has_avx512f) {
  // OpenBLAS' x86-64 kernel sets below AVX2 (its fallbacks for CPUs it cannot identify).
  static constexpr std::string_view kGeneric[] = {"Prescott", "Core2",     "Penryn", "Dunnington",
                                                  "Nehalem",  "Atom",      "Sandybridge", "Katmai",
                                                  "Coppermine", "Northwood", "Banias"};
  const bool generic = std::find(std::begin(kGeneric), std::end(kGeneric), core) != std::end(kGeneric);
  if (!generic || !cpu_has_avx2) return {};
  const std::string_view want = cpu_has_avx512f ? "SkylakeX" : "Haswell";
  return detail::concat("OpenBLAS selected its ", core, " kernels, but this CPU has ",
                        cpu_has_avx512f ? "AVX-512" : "AVX2", ": CPU linear algebra runs several times slower than it "
                        "can (OpenBLAS did not recognise the CPU model); set OPENBLAS_CORETYPE=", want,
                        " in the environment of every rank");
}

std::string openblas_kernel_advice() {
  __builtin_cpu_init();
  return openblas_kernel_advice(openblas_core_name(), __builtin_cpu_supports("avx2") != 0,
                                __builtin_cpu_supports("avx512f") != 0);
}

CpuBackend::CpuBackend(const BackendOptions& options)
    : quant_(std::make_unique<CpuQuantKernels>(*this)), nn_(std::make_unique<CpuNnKernels>(*this)) {
  if (options.cpu_threads > 0) {
    openblas_set_num_threads(options.cpu_threads);
    omp_set_num_threads(options.cpu_threads);
  }
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::description() const {
  return detail::concat("cpu (OpenBLAS ", openblas_core_name(), " kernels, ", openblas_get_num_threads(),
                        " threads, OpenMP ", omp_get_max_threads(), " threads)");
}

QuantKernels& CpuBackend::quant() { return *quant_; }


void CpuBackend::accumulate_fixed(MatrixView<const double> g, MatrixView<Fixed128> acc) {
  CALDERA_CHECK(same_shape(g, acc), "accumulate_fixed: ", g.rows, "x", g.cols, " vs ", acc.rows, "x", acc.cols);
  int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static) if (g.size() > 65536)
  for (int64_t i = 0; i < g.rows; ++i)
    for (int64_t j = 0; j < g.cols; ++j) {
      const double v = g(i, j);
      if (!(std::abs(v) < kFixedMaxMagnitude)) {
        ++bad;
        continue;
      }
      acc(i, j) += to_fixed(v);
    }
  if (bad > 0)
    raise<NumericError>("accumulate_fixed: ", bad, " entries are not finite or exceed ", kFixedMaxMagnitude,
                        " in magnitude");
}
NnKernels& CpuBackend::nn() { return *nn_; }

void* CpuBackend::allocate_bytes(size_t size_bytes, std::string_view label) {
  CALDERA_CHECK(size_bytes > 0, "allocate_bytes('", label, "'): zero bytes");
  constexpr size_t kAlign = 64;
  void* p = std::aligned_alloc(kAlign, (size_bytes + kAlign - 1) / kAlign * kAlign);
  if (p == nullptr)
    raise<Error>("cpu backend: out of host memory allocating ", size_bytes, " bytes for '", label, "'");
  const size_t now = current_bytes_.fetch_add(size_bytes) + size_bytes;
  size_t peak = peak_bytes_.load();
  while (now > peak && !peak_bytes_.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void CpuBackend::free_bytes(void* data, size_t size_bytes) noexcept {
  std::free(data);
  current_bytes_.fetch_sub(size_bytes);
}

void CpuBackend::copy_2d(CopyKind, const void* src, size_t src_pitch_bytes, void* dst, size_t dst_pitch_bytes,
                         size_t width_bytes, size_t rows) {
  const auto* s = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
  if (src_pitch_bytes == width_bytes && dst_pitch_bytes == width_bytes) {
    std::memmove(d, s, width_bytes * rows);
    return;
  }
  for (size_t r = 0; r < rows; ++r) std::memmove(d + r * dst_pitch_bytes, s + r * src_pitch_bytes, width_bytes);
}

MemoryStats CpuBackend::memory_stats() const {
  MemoryStats m;
  m.current_bytes = current_bytes_.load();
  m.peak_bytes = peak_bytes_.load();
  m.device_total_bytes = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGE_SIZE));
  return m;
}

void CpuBackend::reset_peak_memory() noexcept { peak_bytes_ = current_bytes_.load(); }

// ---- elementwise -----------------------------------------------------------------------------
namespace {

template <class T, class F>
void for_each(MatrixView<T> a, F f) {
#pragma omp parallel for schedule(static) if (a.size() > 65536)
  for (int64_t i = 0; i < a.rows; ++i) {
    T* row = a.row(i);
    for (int64_t j = 0; j < a.cols; ++j) f(row[j], i, j);
  }
}

template <class T>
void fill_t(MatrixView<T> a, T value) {
  for_each(a, [value](T& x, int64_t, int64_t) { x = value; });
}

template <class T>
void axpby_t(T alpha, MatrixView<const T> x, T beta, MatrixView<T> y) {
  CALDERA_CHECK(same_shape(x, y), "axpby: ", x.rows, "x", x.cols, " vs ", y.rows, "x", y.cols);
  if (beta == T(0))
    for_each(y, [&](T& v, int64_t i, int64_t j) { v = alpha * x(i, j); });
  else
    for_each(y, [&](T& v, int64_t i, int64_t j) { v = alpha * x(i, j) + beta * v; });
}

template <class T>
void mul_rows_t(MatrixView<T> a, MatrixView<const T> v) {
  const T* pv = cpu::vector_data(v, a.rows, "mul_rows");
  for_each(a, [pv](T& x, int64_t i, int64_t) { x *= pv[i]; });
}

template <class T>
void mul_cols_t(MatrixView<T> a, MatrixView<const T> v) {
  const T* pv = cpu::vector_data(v, a.cols, "mul_cols");
  for_each(a, [pv](T& x, int64_t, int64_t j) { x *= pv[j]; });
}

template <class T>
void add_diagonal_t(MatrixView<T> a, T value) {
  const int64_t n = std::min(a.rows, a.cols);
  for (int64_t i = 0; i < n; ++i) a(i, i) += value;
}

template <class T>
void diagonal_t(MatrixView<const T> a, MatrixView<T> d) {
  const int64_t n = std::min(a.rows, a.cols);
  T* pd = cpu::vector_data(d, n, "diagonal");
  for (int64_t i = 0; i < n; ++i) pd[i] = a(i, i);
}

template <class T>
void transpose_t(MatrixView<const T> a, MatrixView<T> at) {
  CALDERA_CHECK(at.rows == a.cols && at.cols == a.rows, "transpose: ", a.rows, "x", a.cols, " into ", at.rows, "x",
                at.cols);
  constexpr int64_t kTile = 32;
#pragma omp parallel for schedule(static) if (a.size() > 65536)
  for (int64_t i0 = 0; i0 < a.rows; i0 += kTile)
    for (int64_t j0 = 0; j0 < a.cols; j0 += kTile)
      for (int64_t i = i0; i < std::min(a.rows, i0 + kTile); ++i)
        for (int64_t j = j0; j < std::min(a.cols, j0 + kTile); ++j) at(j, i) = a(i, j);
}

template <class S, class D>
void convert_t(MatrixView<const S> src, MatrixView<D> dst) {
  CALDERA_CHECK(same_shape(src, dst), "convert: ", src.rows, "x", src.cols, " vs ", dst.rows, "x", dst.cols);
  for_each(dst, [&](D& v, int64_t i, int64_t j) { v = static_cast<D>(src(i, j)); });
}

// Reductions sum each row in order, then the row sums in order: the result does not depend on the
// number of OpenMP threads (runs with different rank/thread counts must give identical bits).
template <class T, class F>
double ordered_row_sum(int64_t rows, F row_sum) {
  std::vector<double> partial(static_cast<size_t>(rows));
#pragma omp parallel for schedule(static) if (rows > 64)
  for (int64_t i = 0; i < rows; ++i) partial[static_cast<size_t>(i)] = row_sum(i);
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

template <class T>
double sum_squares_t(MatrixView<const T> a) {
  return ordered_row_sum<T>(a.rows, [&](int64_t i) {
    double s = 0.0;
    const T* row = a.row(i);
    for (int64_t j = 0; j < a.cols; ++j) s += static_cast<double>(row[j]) * static_cast<double>(row[j]);
    return s;
  });
}

template <class T>
double dot_t(MatrixView<const T> a, MatrixView<const T> b) {
  CALDERA_CHECK(same_shape(a, b), "dot: ", a.rows, "x", a.cols, " vs ", b.rows, "x", b.cols);
  return ordered_row_sum<T>(a.rows, [&](int64_t i) {
    double s = 0.0;
    const T* ra = a.row(i);
    const T* rb = b.row(i);
    for (int64_t j = 0; j < a.cols; ++j) s += static_cast<double>(ra[j]) * static_cast<double>(rb[j]);
    return s;
  });
}

template <class T>
bool all_finite_t(MatrixView<const T> a) {
  int bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static) if (a.size() > 65536)
  for (int64_t i = 0; i < a.rows; ++i) {
    const T* row = a.row(i);
    for (int64_t j = 0; j < a.cols; ++j) bad += std::isfinite(row[j]) ? 0 : 1;
  }
  return bad == 0;
}

}  // namespace

void CpuBackend::fixed_chunk(MatrixView<const Fixed128> acc, int chunk, MatrixView<double> out) {
  CALDERA_CHECK(same_shape(acc, out), "fixed_chunk: ", acc.rows, "x", acc.cols, " vs ", out.rows, "x", out.cols);
  CALDERA_CHECK(chunk >= 0 && chunk < 3, "fixed_chunk: chunk ", chunk, " is not 0, 1 or 2");
  for_each(out, [&](double& y, int64_t i, int64_t j) {
    double c[3];
    fixed_to_chunks(acc(i, j), c);
    y = c[chunk];
  });
}

void CpuBackend::fill(MatrixView<float> a, float value) { fill_t(a, value); }
void CpuBackend::fill(MatrixView<double> a, double value) { fill_t(a, value); }
void CpuBackend::fill_normal(MatrixView<float> a, RngKey key) {
  const int64_t cols = a.cols;
  for_each(a, [key, cols](float& x, int64_t i, int64_t j) {
    x = static_cast<float>(rng_normal(key, static_cast<uint64_t>(i * cols + j)));
  });
}
void CpuBackend::scale(MatrixView<float> a, float alpha) {
  for_each(a, [alpha](float& x, int64_t, int64_t) { x *= alpha; });
}
void CpuBackend::scale(MatrixView<double> a, double alpha) {
  for_each(a, [alpha](double& x, int64_t, int64_t) { x *= alpha; });
}
void CpuBackend::axpby(float alpha, MatrixView<const float> x, float beta, MatrixView<float> y) { axpby_t(alpha, x, beta, y); }
void CpuBackend::axpby(double alpha, MatrixView<const double> x, double beta, MatrixView<double> y) {
  axpby_t(alpha, x, beta, y);
}
void CpuBackend::mul_rows(MatrixView<float> a, MatrixView<const float> v) { mul_rows_t(a, v); }
void CpuBackend::mul_rows(MatrixView<double> a, MatrixView<const double> v) { mul_rows_t(a, v); }
void CpuBackend::mul_cols(MatrixView<float> a, MatrixView<const float> v) { mul_cols_t(a, v); }
void CpuBackend::mul_cols(MatrixView<double> a, MatrixView<const double> v) { mul_cols_t(a, v); }
void CpuBackend::add_diagonal(MatrixView<float> a, float value) { add_diagonal_t(a, value); }
void CpuBackend::add_diagonal(MatrixView<double> a, double value) { add_diagonal_t(a, value); }
void CpuBackend::diagonal(MatrixView<const float> a, MatrixView<float> d) { diagonal_t(a, d); }
void CpuBackend::diagonal(MatrixView<const double> a, MatrixView<double> d) { diagonal_t(a, d); }
void CpuBackend::transpose(MatrixView<const float> a, MatrixView<float> at) { transpose_t(a, at); }
void CpuBackend::transpose(MatrixView<const double> a, MatrixView<double> at) { transpose_t(a, at); }
void CpuBackend::convert(MatrixView<const float> src, MatrixView<double> dst) { convert_t(src, dst); }
void CpuBackend::convert(MatrixView<const double> src, MatrixView<float> dst) { convert_t(src, dst); }
double CpuBackend::sum_squares(MatrixView<const float> a) { return sum_squares_t(a); }
double CpuBackend::sum_squares(MatrixView<const double> a) { return sum_squares_t(a); }
double CpuBackend::dot(MatrixView<const float> a, MatrixView<const float> b) { return dot_t(a, b); }
double CpuBackend::dot(MatrixView<const double> a, MatrixView<const double> b) { return dot_t(a, b); }
bool CpuBackend::all_finite(MatrixView<const float> a) { return all_finite_t(a); }
bool CpuBackend::all_finite(MatrixView<const double> a) { return all_finite_t(a); }

}  // namespace caldera::linalg
