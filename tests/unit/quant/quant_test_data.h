// Synthetic inputs shared by the quantization tests: correlated Hessians processed as in spec §6.5.
#pragma once

#include <cmath>

#include "linalg/backend.h"
#include "test_util.h"

namespace caldera::test {

/// An SPD "Hessian" with correlated channels: random eigenvectors, eigenvalues log-spaced over
/// `condition`, normalised to mean diagonal 1 and ridged by 0.01 (spec §6.5). Host, fp32.
inline HostMatrix<float> correlated_hessian(int64_t n, double condition, uint64_t seed) {
  auto h = random_spd(n, condition, seed);
  double tr = 0;
  for (int64_t i = 0; i < n; ++i) tr += h(i, i);
  const double inv = static_cast<double>(n) / tr;
  HostMatrix<float> out(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) out(i, j) = static_cast<float>(h(i, j) * inv + (i == j ? 0.01 : 0.0));
  return out;
}

/// m × n weights with RMS `rms`.
inline HostMatrix<float> scaled_normal(int64_t m, int64_t n, float rms, uint64_t seed) {
  auto w = random_normal(m, n, seed);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] *= rms;
  return w;
}

}  // namespace caldera::test
