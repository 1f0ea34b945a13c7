// Synthetic layer inputs for the method tests: a weight with a decaying spectrum and calibration
// statistics of correlated activations (fp64 sums, as phase 1 produces them).
#pragma once

#include <optional>

#include "algo/method.h"
#include "test_util.h"

namespace caldera::algo::test_methods {

/// W (m×n) = G₁ diag(0.9^i) G₂ + 0.05·noise: low-rank-ish structure like trained weights.
inline HostMatrix<float> synthetic_weight(int64_t m, int64_t n, uint64_t seed) {
  const int64_t r = std::min(m, n);
  auto g1 = caldera::test::random_normal_f64(m, r, seed);
  auto g2 = caldera::test::random_normal_f64(r, n, seed + 1);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < r; ++j) g1(i, j) *= std::pow(0.9, static_cast<double>(j)) / std::sqrt(static_cast<double>(n));
  const auto w = caldera::test::matmul(g1.cview(), g2.cview());
  const auto noise = caldera::test::random_normal(m, n, seed + 2);
  HostMatrix<float> out(m, n);
  for (int64_t i = 0; i < out.size(); ++i) out.data()[i] = static_cast<float>(w.data()[i]) + 0.05f * noise.data()[i];
  return out;
}

/// Statistics of `tokens` activations x = z·M (z standard normal, M mixing channels with a few
/// dominant directions), accumulated in fp64.
inline InputStats synthetic_stats(int64_t n, int64_t tokens, uint64_t seed) {
  auto z = caldera::test::random_normal_f64(tokens, n, seed);
  auto mix = caldera::test::random_normal_f64(n, n, seed + 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) mix(i, j) = (i == j ? 1.0 : 0.0) + mix(i, j) * std::pow(0.8, static_cast<double>(i)) * 0.5;
  const auto x = caldera::test::matmul(z.cview(), mix.cview());
  InputStats s;
  s.sum_xxt = caldera::test::matmul(x.cview(), x.cview(), linalg::Op::kTrans, linalg::Op::kNoTrans);
  s.sum_x.assign(static_cast<size_t>(n), 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < n; ++j) s.sum_x[static_cast<size_t>(j)] += x(t, j);
  s.count = tokens;
  s.n_sequences = 1;
  return s;
}

/// In-memory CheckpointStore.
class MemoryCheckpointStore final : public CheckpointStore {
 public:
  std::optional<TensorMap> load() override { return state_; }
  void save(const TensorMap& state) override {
    state_ = state;
    ++saves_;
  }
  int saves() const { return saves_; }

 private:
  std::optional<TensorMap> state_;
  int saves_ = 0;
};

/// Byte equality of two tensor maps (names, dtypes, shapes, bytes).
inline ::testing::AssertionResult same_tensors(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " tensors";
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end()) return ::testing::AssertionFailure() << "missing " << name;
    if (it->second.dtype != t.dtype || it->second.shape != t.shape || it->second.bytes != t.bytes)
      return ::testing::AssertionFailure() << "tensor " << name << " differs";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace caldera::algo::test_methods
