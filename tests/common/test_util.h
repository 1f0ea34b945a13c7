// Shared helpers for the test suites: data paths, backend skips, random inputs, error measures.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "core/rng.h"
#include "linalg/backend.h"

namespace caldera::test {

/// Directory with the bundled fixtures (tests/data): $CALDERA_TEST_DATA, else the source tree's.
std::filesystem::path data_dir();
/// The bundled minillama-tiny model directory.
std::filesystem::path tiny_model_dir();
/// minillama-small unpacked from ../shared (or $CALDERA_SMALL_MODEL); empty path when absent.
std::filesystem::path small_model_dir();
/// The first n_seqs sequences of seq_len tokens of the bundled calib.u32 (a failed read is a test
/// failure naming the file).
std::vector<uint32_t> read_calib_tokens(int64_t n_seqs, int64_t seq_len);
/// A fresh empty directory under the system temp dir, removed by the caller if wanted.
std::filesystem::path make_temp_dir(const std::string& prefix);

/// Matrix with independent standard normal entries from stream (seed, kTestData).
HostMatrix<float> random_normal(int64_t rows, int64_t cols, uint64_t seed);
HostMatrix<double> random_normal_f64(int64_t rows, int64_t cols, uint64_t seed);
/// Symmetric positive definite n×n matrix Q diag(d) Qᵀ with eigenvalues log-spaced from 1 to
/// `condition` and a random orthogonal Q.
HostMatrix<double> random_spd(int64_t n, double condition, uint64_t seed);

/// The process-wide CPU reference backend (for building inputs and host references in tests).
linalg::Backend& cpu_backend();
/// op(a) * op(b) in double on the CPU reference backend.
HostMatrix<double> matmul(MatrixView<const double> a, MatrixView<const double> b,
                          linalg::Op op_a = linalg::Op::kNoTrans, linalg::Op op_b = linalg::Op::kNoTrans);

/// ||a - b||_F / ||b||_F (0 when both are zero).
template <class A, class B>
double rel_diff(MatrixView<const A> a, MatrixView<const B> b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < a.cols; ++j) {
      const double d = static_cast<double>(a(i, j)) - static_cast<double>(b(i, j));
      num += d * d;
      den += static_cast<double>(b(i, j)) * static_cast<double>(b(i, j));
    }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}
template <class A, class B>
double rel_diff(const HostMatrix<A>& a, const HostMatrix<B>& b) {
  return rel_diff(a.view(), b.view());
}

/// Host reference product (double accumulation) of row-major a (m×k) and b (k×n).
template <class T>
HostMatrix<double> host_matmul(MatrixView<const T> a, MatrixView<const T> b) {
  HostMatrix<double> c(a.rows, b.cols);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t p = 0; p < a.cols; ++p) {
      const double v = a(i, p);
      for (int64_t j = 0; j < b.cols; ++j) c(i, j) += v * static_cast<double>(b(p, j));
    }
  return c;
}

template <class T>
HostMatrix<T> cast_matrix(const HostMatrix<double>& m) {
  HostMatrix<T> out(m.rows(), m.cols());
  for (int64_t i = 0; i < m.size(); ++i) out.data()[i] = static_cast<T>(m.data()[i]);
  return out;
}

}  // namespace caldera::test

/// Skips the current test, with the reason, when `kind` is not compiled in or has no device.
#define CALDERA_REQUIRE_BACKEND(kind)                                                               \
  do {                                                                                              \
    if (!::caldera::linalg::backend_available(kind))                                                \
      GTEST_SKIP() << "backend " << ::caldera::linalg::to_string(kind)                              \
                   << " unavailable here (not compiled in, or no GPU on this machine)";             \
  } while (0)
