// CALDERA, QuIP# and RTN on every linear matrix of the bundled minillama-tiny with real calibration
// Hessians (computed here with the model's forward pass and Hessian taps on the first 32
// calibration sequences): the spec §1.3 error must order CALDERA (rank 32, fp16 factors) < QuIP#
// (2-bit) < RTN (2-bit, groups of 64) on each of the 28 matrices, and reconstruct() must reproduce
// the reported error.
#include <gtest/gtest.h>

#include <vector>

#include "algo/gptq_core.h"
#include "algo/hessian.h"
#include "algo/method_factory.h"
#include "tiny_linears.h"

namespace caldera::algo {
namespace {

constexpr int64_t kSeqLen = 512;
constexpr int64_t kCalibSeqs = 32;

InputStats stats_of(linalg::Backend& be, const model::HessianTaps& taps, model::HessianInput input) {
  InputStats s;
  (void)be;
  s.sum_xxt = taps.sum(input);
  const auto mu = taps.mu_sum(input);
  s.sum_x = mu.storage();
  s.count = taps.count(input);
  s.n_sequences = kCalibSeqs;
  return s;
}

TEST(CalderaTiny, EveryMatrixOrdersCalderaBelowQuipBelowRtn) {
  auto& be = test::cpu_backend();
  MethodConfig rtn = MethodConfig::defaults(MethodKind::kRtn);  // 2-bit, groups of 64, min-max
  MethodConfig quip = MethodConfig::defaults(MethodKind::kQuip);
  MethodConfig cal = MethodConfig::defaults(MethodKind::kCaldera);
  cal.caldera.rank = 32;
  cal.caldera.bits_lr = 16;
  cal.caldera.iters = 2;
  const auto m_rtn = make_method(rtn), m_quip = make_method(quip), m_cal = make_method(cal);

  const int checked = test::for_each_tiny_linear(be, kCalibSeqs, kSeqLen, [&](const test::TinyLinear& x) {
    const InputStats stats = stats_of(be, x.taps, x.input);
    const MethodContext ctx{be, x.rng, x.unit, nullptr, {}, {}};
    const auto r = m_rtn->compress(ctx, x.w.cview(), stats);
    const auto q = m_quip->compress(ctx, x.w.cview(), stats);
    const auto c = m_cal->compress(ctx, x.w.cview(), stats);
    EXPECT_LT(c.metrics.rel_error, q.metrics.rel_error) << x.unit.name();
    EXPECT_LT(q.metrics.rel_error, r.metrics.rel_error) << x.unit.name();
    EXPECT_GT(c.metrics.rel_error, 0.0) << x.unit.name();
    // The stored tensors reproduce the reported error in the original basis.
    const double rebuilt = hessian_relative_error(be, x.w.cview(), m_cal->reconstruct(be, c.tensors).cview(), stats);
    EXPECT_NEAR(rebuilt, c.metrics.rel_error, 1e-3 * c.metrics.rel_error) << x.unit.name();
  });
  EXPECT_EQ(checked, test::tiny_linear_count());
}

}  // namespace
}  // namespace caldera::algo
