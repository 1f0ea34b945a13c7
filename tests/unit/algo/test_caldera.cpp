// CalderaMethod (spec §1-§3) on small synthetic layers: QuIP# path, best iterate, determinism,
// checkpoint/resume bit-identity, reconstruct vs reported metric, and the error ordering.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "algo/caldera.h"
#include "algo/hessian.h"
#include "algo/method_factory.h"
#include "algo_test_util.h"
#include "quant/lattice.h"
#include "quant/ldl.h"
#include "quant/ldlq.h"
#include "quant/rht.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;
using test_methods::MemoryCheckpointStore;
using test_methods::same_tensors;

constexpr int64_t kM = 64, kN = 128;

class CalderaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    w_ = test_methods::synthetic_weight(kM, kN, 3);
    stats_ = test_methods::synthetic_stats(kN, 512, 4);
  }
  MethodContext context(CheckpointStore* store = nullptr) {
    MethodContext c{cpu_backend(), Rng(42).stream({7, 2}), UnitId{7, "self_attn.v_proj", 2}, store, {}, {}};
    return c;
  }
  static CalderaParams small(int rank, int bits_lr) {
    CalderaParams p;
    p.rank = rank;
    p.bits_lr = bits_lr;
    p.iters = 3;
    p.lplr_iters = 4;
    p.tune_iters = 2;
    return p;
  }
  // Spec §1.3 error of a reconstruction in the original basis with the processed Hessian.
  double original_basis_error(const HostMatrix<float>& w_hat) {
    auto& be = cpu_backend();
    const auto h64 = process_hessian(stats_, kN, 0.01, "test");
    auto h = be.upload(test::cast_matrix<float>(h64).cview(), "h");
    auto w = be.upload(w_.cview(), "w");
    auto wh = be.upload(w_hat.cview(), "wh");
    ActivationErrorMeter meter(be, w.cview(), h.cview());
    return meter.rel_error(wh.cview());
  }
  HostMatrix<float> w_;
  InputStats stats_;
};

TEST_F(CalderaTest, RankZeroIsTheQuipSharpPath) {
  // The QuIP# path assembled by hand from the quant primitives (spec §1.2 preamble, §3.4-§3.5).
  auto& be = cpu_backend();
  const auto ctx = context();
  const CalderaParams quip = CalderaParams::quip_sharp(2);
  const auto got = CalderaMethod(quip, "quip").compress(ctx, w_.cview(), stats_);

  const auto h64 = process_hessian(stats_, kN, quip.hessian_ridge, "test");
  auto w = be.upload(w_.cview(), "w");
  const float s_g = static_cast<float>(std::sqrt(be.sum_squares(w.cview()) / (kM * kN)));
  be.scale(w.view(), 1.0f / s_g);
  const auto signs = quant::make_rht_signs(ctx.rng, kM, kN);
  auto w_r = quant::rht_weight(be, w.cview(), signs);
  auto h0 = be.upload(test::cast_matrix<float>(h64).cview(), "h");
  auto h_r = quant::rht_hessian(be, h0.cview(), signs);
  const auto ldl = quant::block_ldl(be, h_r.cview());
  quant::LatticeLdlqOptions opts;
  opts.codebook = LatticeCodebook::kE8P12;
  opts.input_rms = 0.9f;
  opts.tune_iters = quip.tune_iters;
  const auto ref = quant::ldlq_lattice_scaled(be, w_r.cview(), h_r.cview(), ldl, opts);
  const auto packed = quant::pack_lattice_codes(be.download(ref.codes).cview(), LatticeCodebook::kE8P12);

  const Tensor& codes = got.tensors.at("q_codes");
  ASSERT_EQ(codes.shape, std::vector<int64_t>({kM, kN / 32}));
  EXPECT_EQ(std::vector<int64_t>(codes.as<int64_t>(), codes.as<int64_t>() + codes.numel()), packed.storage());
  EXPECT_EQ(got.tensors.at("q_scale").as<float>()[0], ref.scale);
  EXPECT_EQ(got.tensors.at("global_scale").as<float>()[0], s_g);
  EXPECT_EQ(got.tensors.at("rank").as<int64_t>()[0], 0);
  EXPECT_EQ(std::vector<float>(got.tensors.at("su").as<float>(), got.tensors.at("su").as<float>() + kN), signs.su);
  // The same through the CALDERA entry point with rank 0.
  CalderaParams c = CalderaParams::paper();
  c.rank = 0;
  c.iters = 1;
  c.q_input_rms = 0.9;
  c.tune_iters = quip.tune_iters;
  EXPECT_TRUE(same_tensors(CalderaMethod(c, "caldera").compress(ctx, w_.cview(), stats_).tensors, got.tensors));
  EXPECT_EQ(got.metrics.bits, 2.0 * kM * kN);
}

TEST_F(CalderaTest, BestIterateIsTheMinimumOverCompleteSteps) {
  const auto out = CalderaMethod(small(16, 4), "caldera").compress(context(), w_.cview(), stats_);
  const auto& h = out.metrics.error_history;
  ASSERT_EQ(h.size(), 6u);  // LR, Q per outer iteration
  const double best = *std::min_element(h.begin() + 1, h.end());
  EXPECT_EQ(out.metrics.rel_error, best);
  double best_step = -1;
  for (const auto& [k, v] : out.metrics.extra)
    if (k == "best_step") best_step = v;
  ASSERT_GE(best_step, 1.0);  // the LR-only state of iteration 1 (Q = 0) is never a candidate
  EXPECT_EQ(h[static_cast<size_t>(best_step)], best);
  // Step 0 is LR alone with Q = 0: a rank-16 fit of the weight is worse than the full state.
  EXPECT_GT(h[0], best);
}

TEST_F(CalderaTest, SameSeedGivesIdenticalTensorsDifferentSeedDoesNot) {
  const CalderaMethod method(small(16, 4), "caldera");
  const auto a = method.compress(context(), w_.cview(), stats_);
  const auto b = method.compress(context(), w_.cview(), stats_);
  EXPECT_TRUE(same_tensors(a.tensors, b.tensors));
  EXPECT_EQ(a.metrics.error_history, b.metrics.error_history);
  MethodContext other = context();
  other.rng = Rng(43).stream({7, 2});
  const auto c = method.compress(other, w_.cview(), stats_);
  EXPECT_NE(a.tensors.at("su").bytes, c.tensors.at("su").bytes);
}

TEST_F(CalderaTest, ResumeAfterStopIsBitIdentical) {
  for (const auto& [rank, bits] : {std::pair{16, 4}, std::pair{16, 16}}) {
    CalderaParams p = small(rank, bits);
    p.factor_scales = FactorScaleMode::kPerRow;
    const CalderaMethod method(p, "caldera");
    const auto straight = method.compress(context(), w_.cview(), stats_);

    MemoryCheckpointStore store;
    MethodContext stopping = context(&store);
    int polls = 0;
    stopping.stop_requested = [&] { return ++polls == 1; };  // stop after the first outer iteration
    EXPECT_THROW((void)method.compress(stopping, w_.cview(), stats_), StopRequested);
    EXPECT_EQ(store.saves(), 1);
    MethodContext resuming = context(&store);
    const auto resumed = method.compress(resuming, w_.cview(), stats_);
    EXPECT_EQ(store.saves(), 3);
    EXPECT_TRUE(same_tensors(resumed.tensors, straight.tensors)) << "bits_lr " << bits;
    EXPECT_EQ(resumed.metrics.error_history, straight.metrics.error_history);
    EXPECT_EQ(resumed.metrics.rel_error, straight.metrics.rel_error);
  }
}

TEST_F(CalderaTest, ReconstructionErrorEqualsReportedMetric) {
  for (const auto& [bits, scales] : {std::pair{4, FactorScaleMode::kPerTensor}, std::pair{4, FactorScaleMode::kPerRow},
                                     std::pair{16, FactorScaleMode::kPerTensor}}) {
    CalderaParams p = small(16, bits);
    p.factor_scales = scales;
    const CalderaMethod method(p, "caldera");
    const auto out = method.compress(context(), w_.cview(), stats_);
    const auto w_hat = method.reconstruct(cpu_backend(), out.tensors);
    ASSERT_EQ(w_hat.rows(), kM);
    ASSERT_EQ(w_hat.cols(), kN);
    EXPECT_NEAR(original_basis_error(w_hat), out.metrics.rel_error, 1e-4 * out.metrics.rel_error)
        << "bits " << bits << " " << to_string(scales);
  }
}

TEST_F(CalderaTest, LowRankSplitAddsUpToTheReconstruction) {
  for (int bits : {4, 16}) {
    const CalderaMethod method(small(16, bits), "caldera");
    const auto out = method.compress(context(), w_.cview(), stats_);
    const auto split = method.split_low_rank(cpu_backend(), out.tensors);
    ASSERT_TRUE(split.has_value());
    ASSERT_EQ(split->lora_b.rows(), kM);
    ASSERT_EQ(split->lora_b.cols(), 16);
    ASSERT_EQ(split->lora_a.rows(), 16);
    ASSERT_EQ(split->lora_a.cols(), kN);
    const auto lr = test::host_matmul(split->lora_b.cview(), split->lora_a.cview());
    HostMatrix<double> sum(kM, kN);
    for (int64_t i = 0; i < sum.size(); ++i) sum.data()[i] = split->base.data()[i] + lr.data()[i];
    const auto w_hat = method.reconstruct(cpu_backend(), out.tensors);
    EXPECT_LT(test::rel_diff(sum, w_hat), 1e-5) << "bits " << bits;
    // The low-rank term is a substantial part of the matrix, not a rounding artefact.
    EXPECT_GT(test::rel_diff(split->base, w_hat), 0.1);
  }
  const auto quip = CalderaMethod(CalderaParams::quip_sharp(2), "quip");
  EXPECT_FALSE(quip.split_low_rank(cpu_backend(), quip.compress(context(), w_.cview(), stats_).tensors).has_value());
}

TEST_F(CalderaTest, ErrorOrderingCalderaBelowQuipBelowRtn) {
  MethodConfig rtn = MethodConfig::defaults(MethodKind::kRtn);
  const double e_rtn = make_method(rtn)->compress(context(), w_.cview(), stats_).metrics.rel_error;
  MethodConfig quip = MethodConfig::defaults(MethodKind::kQuip);
  quip.caldera.tune_iters = 2;
  const double e_quip = make_method(quip)->compress(context(), w_.cview(), stats_).metrics.rel_error;
  const double e_cal = CalderaMethod(small(16, 16), "caldera").compress(context(), w_.cview(), stats_).metrics.rel_error;
  EXPECT_LT(e_cal, e_quip);
  EXPECT_LT(e_quip, e_rtn);
}

TEST_F(CalderaTest, BitsFollowTheSpecAccountingPlusPerRowScales) {
  CalderaParams p = small(16, 4);
  const auto a = CalderaMethod(p, "caldera").compress(context(), w_.cview(), stats_);
  EXPECT_EQ(a.metrics.bits, 2.0 * kM * kN + 16.0 * 4 * (kM + kN));
  p.factor_scales = FactorScaleMode::kPerRow;
  const auto b = CalderaMethod(p, "caldera").compress(context(), w_.cview(), stats_);
  EXPECT_EQ(b.metrics.bits, 2.0 * kM * kN + 16.0 * 4 * (kM + kN) + 2 * 16.0 * 16);
  EXPECT_EQ(a.metrics.params, 16 * (kM + kN));
}

TEST_F(CalderaTest, RejectsShapesThatCannotBePacked) {
  const auto w = test_methods::synthetic_weight(40, kN, 5);
  EXPECT_THROW((void)CalderaMethod(small(16, 4), "caldera").compress(context(), w.cview(), stats_), ConfigError);
  EXPECT_THROW((void)CalderaMethod(small(80, 4), "caldera").compress(context(), w_.cview(), stats_), ConfigError);
}

}  // namespace
}  // namespace caldera::algo
