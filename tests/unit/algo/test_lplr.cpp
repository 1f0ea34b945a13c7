// Spec §2.3 LPLR loop with the real E8P factor quantizers: only quantized candidates, best-iterate
// bookkeeping, reported errors.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/low_rank.h"
#include "lr_test_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;
using test_lr::make_problem;

// The factor equals the dequantization of its own codes and scales, bit for bit.
bool is_quantized(const FactorQuantizer& q, const QuantizedFactor& f) {
  auto& be = cpu_backend();
  QuantizedFactor copy;
  copy_factor(be, f, copy);
  be.fill(copy.values.view(), 0.0f);
  q.dequantize(be, copy);
  return be.download(copy.values).storage() == be.download(f.values).storage();
}

TEST(Lplr, ReturnsOnlyQuantizedCandidatesAndTheBestOne) {
  for (auto mode : {FactorScaleMode::kPerTensor, FactorScaleMode::kPerRow}) {
    const auto p = make_problem(64, 128, 61);
    auto& be = cpu_backend();
    const auto init = lr_init(be, p.view(), 16, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
    const auto q = make_factor_quantizer(FactorFormat::kE8p, 2, mode);
    const auto res = lplr(be, p.view(), init, *q, *q, LplrOptions{6, nullptr, {}, 0});
    ASSERT_EQ(res.errors.size(), 7u);
    ASSERT_GE(res.best_candidate, 0);
    EXPECT_TRUE(is_quantized(*q, res.l_t));
    EXPECT_TRUE(is_quantized(*q, res.r));
    const double best = res.errors[static_cast<size_t>(res.best_candidate)];
    for (double e : res.errors) EXPECT_GE(e, best);
    // Never worse than quantizing the initialisation directly, and above the unquantized optimum.
    EXPECT_LE(best, res.errors[0]);
    const double optimum = test_lr::whitened_rel_error(p, be.download(init.l), be.download(init.r));
    EXPECT_GT(best, optimum);
    // The reported error (expanded trace formula) is the true error of the returned pair.
    const auto l = be.download(res.l);
    const auto r = be.download(res.r.values);
    EXPECT_NEAR(best, test_lr::whitened_rel_error(p, l, r), 1e-4 * best + 1e-6);
    // res.l is the transpose of the quantized Lᵀ.
    const auto lt = be.download(res.l_t.values);
    for (int64_t i = 0; i < l.rows(); ++i)
      for (int64_t t = 0; t < l.cols(); ++t) ASSERT_EQ(l(i, t), lt(t, i));
  }
}

TEST(Lplr, AlternatingBeatsDirectQuantizationOfTheInitialisation) {
  // With the paper's one scale per factor, the singular values in R make direct rounding poor; the
  // alternating solves recover part of it.
  const auto p = make_problem(64, 128, 71, 0.7);
  auto& be = cpu_backend();
  const auto init = lr_init(be, p.view(), 16, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const auto q = make_factor_quantizer(FactorFormat::kE8p, 4, FactorScaleMode::kPerTensor);
  const auto res = lplr(be, p.view(), init, *q, *q, LplrOptions{5, nullptr, {}, 0});
  EXPECT_GT(res.best_candidate, 0);
  EXPECT_LT(res.errors[static_cast<size_t>(res.best_candidate)], res.errors[0]);
}

TEST(Lplr, LdlqRoundingOfRBeatsNearestRounding) {
  // With a strongly non-isotropic H the H-aware rounding of R lowers the whitened error.
  const auto p = make_problem(64, 128, 91, 0.8);
  auto& be = cpu_backend();
  const auto init = lr_init(be, p.view(), 16, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const auto q = make_factor_quantizer(FactorFormat::kE8p, 2, FactorScaleMode::kPerRow);
  const auto nearest = lplr(be, p.view(), init, *q, *q, LplrOptions{4, nullptr, {}, 0});
  const auto ldl = quant::block_ldl(be, p.h.cview());
  const auto aware = lplr(be, p.view(), init, *q, *q, LplrOptions{4, &ldl, p.h.cview(), 4});
  const double e_nearest = nearest.errors[static_cast<size_t>(nearest.best_candidate)];
  const double e_aware = aware.errors[static_cast<size_t>(aware.best_candidate)];
  EXPECT_LT(e_aware, 0.95 * e_nearest);
  EXPECT_TRUE(is_quantized(*q, aware.r));
  EXPECT_NEAR(e_aware, test_lr::whitened_rel_error(p, be.download(aware.l), be.download(aware.r.values)),
              1e-4 * e_aware);
}

TEST(Lplr, ZeroIterationsReturnsTheQuantizedInitialisation) {
  const auto p = make_problem(64, 64, 81);
  auto& be = cpu_backend();
  const auto init = lr_init(be, p.view(), 16, LrSvdSolver::kExact, LrSplit::kUnbalanced, Rng(1));
  const auto q = make_factor_quantizer(FactorFormat::kE8p, 4, FactorScaleMode::kPerRow);
  const auto res = lplr(be, p.view(), init, *q, *q, LplrOptions{0, nullptr, {}, 0});
  ASSERT_EQ(res.errors.size(), 1u);
  EXPECT_EQ(res.best_candidate, 0);
  QuantizedFactor direct;
  q->quantize(be, init.r.cview(), direct);
  EXPECT_EQ(be.download(direct.values).storage(), be.download(res.r.values).storage());
}

}  // namespace
}  // namespace caldera::algo
