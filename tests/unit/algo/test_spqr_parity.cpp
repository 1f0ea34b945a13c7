// GPTQ and SpQR on CUDA against the CPU reference (labels parity;gpu; skips without a GPU). The Cholesky
// factors and the lazy-update GEMMs sum in a different order on the GPU, so a few codes near a
// rounding boundary may differ; the results must agree in error, bits and nearly every code.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "algo/gptq.h"
#include "algo/spqr.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using linalg::BackendKind;

constexpr double kMinSameCodes = 0.99;       // fraction of identical codes
constexpr double kMaxRelErrorGap = 0.01;     // relative difference of REL_ERR
constexpr double kMaxOutlierCountGap = 0.05; // relative difference of the outlier count

InputStats parity_stats(int64_t n, uint64_t seed) {
  InputStats s;
  s.sum_xxt = test::random_spd(n, 1e3, seed);
  const HostMatrix<double> g = test::random_normal_f64(1, n, seed + 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) s.sum_xxt(i, j) *= std::exp(0.5 * g(0, i)) * std::exp(0.5 * g(0, j));
  s.count = 4096;
  s.n_sequences = 8;
  return s;
}

class GptqSpqrParity : public ::testing::Test {
 protected:
  void SetUp() override {
    CALDERA_REQUIRE_BACKEND(BackendKind::kCuda);
    backend_ = linalg::make_backend(BackendKind::kCuda);
  }
  std::unique_ptr<linalg::Backend> backend_;
};

double same_fraction(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
  int64_t same = 0;
  for (size_t k = 0; k < a.size(); ++k) same += a[k] == b[k];
  return static_cast<double>(same) / static_cast<double>(a.size());
}

TEST_F(GptqSpqrParity, CudaGptqMatchesCpu) {
  const int64_t m = 192, n = 320;  // 3 blocks of 128 (the last partial)
  const HostMatrix<float> w = test::random_normal(m, n, 61);
  const InputStats s = parity_stats(n, 61);
  GptqParams p;
  p.bits = 3;
  p.group_size = 64;
  const GptqResult ref = gptq_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  const GptqResult got = gptq_quantize_matrix(*backend_, w.cview(), s, p);
  EXPECT_EQ(got.encoding.perm, ref.encoding.perm);
  const std::vector<uint16_t> a(ref.encoding.codes.begin(), ref.encoding.codes.end());
  const std::vector<uint16_t> b(got.encoding.codes.begin(), got.encoding.codes.end());
  EXPECT_GE(same_fraction(a, b), kMinSameCodes);
  const double e_ref = hessian_relative_error(test::cpu_backend(), w.cview(), ref.w_hat.cview(), s);
  const double e_got = hessian_relative_error(*backend_, w.cview(), got.w_hat.cview(), s);
  EXPECT_NEAR(e_got, e_ref, kMaxRelErrorGap * e_ref);
}

TEST_F(GptqSpqrParity, CudaSpqrMatchesCpu) {
  const int64_t m = 256, n = 384;
  HostMatrix<float> w = test::random_normal(m, n, 62);
  for (int64_t k = 0; k < 200; ++k) w((k * 37) % m, (k * 101) % n) *= 8.0f;  // heavy tail
  const InputStats s = parity_stats(n, 62);
  SpqrParams p;
  p.bits = 4;
  p.outlier_threshold = 0.2;
  const SpqrResult ref = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  const SpqrResult got = spqr_quantize_matrix(*backend_, w.cview(), s, p);
  EXPECT_EQ(got.encoding.perm, ref.encoding.perm);
  EXPECT_GE(same_fraction(ref.encoding.codes, got.encoding.codes), kMinSameCodes);
  ASSERT_GT(ref.encoding.outliers(), 0);
  EXPECT_NEAR(static_cast<double>(got.encoding.outliers()), static_cast<double>(ref.encoding.outliers()),
              kMaxOutlierCountGap * static_cast<double>(ref.encoding.outliers()));
  const double e_ref = hessian_relative_error(test::cpu_backend(), w.cview(), ref.w_hat.cview(), s);
  const double e_got = hessian_relative_error(*backend_, w.cview(), got.w_hat.cview(), s);
  EXPECT_NEAR(e_got, e_ref, kMaxRelErrorGap * e_ref);
  // The method on this backend decodes (on the host) to exactly what it simulated.
  const auto method = make_spqr_method(p);
  EXPECT_EQ(method->reconstruct(*backend_, spqr_to_tensors(got.encoding)).storage(), got.w_hat.storage());
}

}  // namespace
}  // namespace caldera::algo
