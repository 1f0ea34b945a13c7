// Spec §2.3 LPLR loop: only quantized candidates, best-iterate bookkeeping, reported errors.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/low_rank.h"
#include "lr_test_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;
using test_lr::make_problem;

// Scalar rounding to the grid s·δ·ℤ with a per-tensor RMS scale s: a simple quantizer whose
// outputs are easy to recognise, standing in for any FactorQuantizer.
class GridQuantizer final : public FactorQuantizer {
 public:
  explicit GridQuantizer(float step) : step_(step) {}
  void quantize(linalg::Backend& be, MatrixView<const float> x, QuantizedFactor& out) const override {
    auto h = be.download(x);
    double ss = 0;
    for (float v : h.storage()) ss += static_cast<double>(v) * v;
    const float s = static_cast<float>(std::sqrt(ss / static_cast<double>(h.size())));
    HostMatrix<int64_t> codes(x.rows, x.cols);
    for (int64_t i = 0; i < h.size(); ++i) codes.data()[i] = std::llround(h.data()[i] / (s * step_));
    out.codes = be.upload(codes.cview(), "codes");
    out.scales = be.upload(HostMatrix<float>(1, 1, {s}).cview(), "scales");
    dequantize(be, out);
  }
  void dequantize(linalg::Backend& be, QuantizedFactor& f) const override {
    const auto codes = be.download(f.codes);
    const float s = be.download(f.scales)(0, 0);
    HostMatrix<float> v(codes.rows(), codes.cols());
    for (int64_t i = 0; i < v.size(); ++i) v.data()[i] = static_cast<float>(codes.data()[i]) * (s * step_);
    f.values = be.upload(v.cview(), "values");
  }
  int code_bits() const noexcept override { return 8; }
  double scale_bits(int64_t) const noexcept override { return 0; }
  std::string describe() const override { return "grid"; }
  float step() const { return step_; }

 private:
  float step_;
};

bool on_grid(const QuantizedFactor& f, float step) {
  auto& be = cpu_backend();
  const auto v = be.download(f.values);
  const float s = be.download(f.scales)(0, 0);
  for (float x : v.storage()) {
    const double q = x / (s * step);
    if (std::abs(q - std::round(q)) > 1e-3) return false;
  }
  return true;
}

TEST(Lplr, ReturnsOnlyQuantizedCandidatesAndTheBestOne) {
  const auto p = make_problem(48, 64, 61);
  auto& be = cpu_backend();
  const auto init = lr_init(be, p.view(), 8, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const GridQuantizer q(0.5f);
  const auto res = lplr(be, p.view(), init, q, q, 6);
  ASSERT_EQ(res.errors.size(), 7u);
  ASSERT_GE(res.best_candidate, 0);
  EXPECT_TRUE(on_grid(res.l_t, q.step()));
  EXPECT_TRUE(on_grid(res.r, q.step()));
  for (double e : res.errors) EXPECT_GE(e, res.errors[static_cast<size_t>(res.best_candidate)]);
  // Never worse than quantizing the initialisation directly, and strictly better here.
  EXPECT_LT(res.errors[static_cast<size_t>(res.best_candidate)], res.errors[0]);
  // The reported error (expanded trace formula) is the true error of the returned pair.
  const auto l = be.download(res.l);
  const auto r = be.download(res.r.values);
  const double direct = test_lr::whitened_rel_error(p, l, r);
  EXPECT_NEAR(res.errors[static_cast<size_t>(res.best_candidate)], direct, 1e-4 * direct + 1e-6);
  // res.l is the transpose of the quantized Lᵀ.
  const auto lt = be.download(res.l_t.values);
  for (int64_t i = 0; i < l.rows(); ++i)
    for (int64_t t = 0; t < l.cols(); ++t) ASSERT_EQ(l(i, t), lt(t, i));
}

TEST(Lplr, FineGridApproachesTheUnquantizedOptimum) {
  const auto p = make_problem(40, 56, 71);
  auto& be = cpu_backend();
  const auto init = lr_init(be, p.view(), 6, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const double optimum = test_lr::whitened_rel_error(p, be.download(init.l), be.download(init.r));
  const GridQuantizer fine(1e-3f);
  const auto res = lplr(be, p.view(), init, fine, fine, 3);
  const double got = res.errors[static_cast<size_t>(res.best_candidate)];
  EXPECT_GE(got, optimum - 1e-5);
  EXPECT_LT(got, optimum + 2e-3);
}

TEST(Lplr, ZeroIterationsReturnsTheQuantizedInitialisation) {
  const auto p = make_problem(32, 48, 81);
  auto& be = cpu_backend();
  const auto init = lr_init(be, p.view(), 4, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const GridQuantizer q(0.25f);
  const auto res = lplr(be, p.view(), init, q, q, 0);
  ASSERT_EQ(res.errors.size(), 1u);
  EXPECT_EQ(res.best_candidate, 0);
  QuantizedFactor direct;
  q.quantize(be, init.r.cview(), direct);
  EXPECT_EQ(be.download(direct.values).storage(), be.download(res.r.values).storage());
}

}  // namespace
}  // namespace caldera::algo
