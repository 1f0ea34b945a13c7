// Shared inputs of the ASVD / SVD-LLM tests: calibration-like activations and their phase-1
// statistics.
#pragma once

#include <algorithm>
#include <cmath>

#include "algo/method.h"
#include "core/matrix.h"
#include "test_util.h"

namespace caldera::algo {

/// Calibration-like inputs: tokens × n, correlated channels with scales spread over 10^{-1..1}
/// (what makes activation-aware truncation differ from plain SVD).
inline HostMatrix<float> correlated_inputs(int64_t tokens, int64_t n, uint64_t seed) {
  const HostMatrix<double> z = test::random_normal_f64(tokens, n, seed);
  HostMatrix<double> mix = test::random_normal_f64(n, n, seed + 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) mix(i, j) = (i == j ? 1.0 : 0.0) + 0.4 * mix(i, j) / std::sqrt(double(n));
  HostMatrix<double> x = test::matmul(z.view(), mix.view());
  HostMatrix<float> out(tokens, n);
  for (int64_t j = 0; j < n; ++j) {
    const double scale = std::pow(10.0, 2.0 * double(j) / double(n - 1) - 1.0);
    for (int64_t t = 0; t < tokens; ++t) out(t, j) = static_cast<float>(x(t, j) * scale);
  }
  return out;
}

/// Phase-1-style statistics of x (tokens × n) split into `sequences` equal sequences.
inline InputStats stats_of(const HostMatrix<float>& x, int64_t sequences) {
  const int64_t n = x.cols();
  InputStats s;
  s.sum_xxt = HostMatrix<double>(n, n);
  test::cpu_backend().gram_accumulate(x.view(), s.sum_xxt.view());
  s.sum_x.assign(size_t(n), 0.0);
  s.sum_abs_x.assign(size_t(n), 0.0);
  s.max_abs_x.assign(size_t(n), 0.0);
  for (int64_t t = 0; t < x.rows(); ++t)
    for (int64_t j = 0; j < n; ++j) {
      s.sum_x[size_t(j)] += x(t, j);
      s.sum_abs_x[size_t(j)] += std::fabs(x(t, j));
      s.max_abs_x[size_t(j)] = std::max(s.max_abs_x[size_t(j)], double(std::fabs(x(t, j))));
    }
  s.count = x.rows();
  s.n_sequences = sequences;
  return s;
}

}  // namespace caldera::algo
