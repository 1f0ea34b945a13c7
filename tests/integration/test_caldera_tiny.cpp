// CALDERA, QuIP# and RTN on every linear matrix of the bundled minillama-tiny with real calibration
// Hessians (computed here with the model's forward pass and Hessian taps on the first 32
// calibration sequences): the spec §1.3 error must order CALDERA (rank 32, fp16 factors) < QuIP#
// (2-bit) < RTN (2-bit, groups of 64) on each of the 28 matrices, and reconstruct() must reproduce
// the reported error.
#include <gtest/gtest.h>

#include <fstream>
#include <vector>

#include "algo/hessian.h"
#include "algo/method_factory.h"
#include "model/forward.h"
#include "pipeline/hf_weight_source.h"
#include "test_util.h"

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

double error_of(linalg::Backend& be, const HostMatrix<float>& w, const HostMatrix<float>& w_hat, const InputStats& s) {
  const auto h64 = process_hessian(s, w.cols(), kDefaultHessianRidge, "test");
  HostMatrix<float> h32(h64.rows(), h64.cols());
  for (int64_t i = 0; i < h32.size(); ++i) h32.data()[i] = static_cast<float>(h64.data()[i]);
  auto dh = be.upload(h32.cview(), "h");
  auto dw = be.upload(w.cview(), "w");
  auto dwh = be.upload(w_hat.cview(), "w_hat");
  ActivationErrorMeter meter(be, dw.cview(), dh.cview());
  return meter.rel_error(dwh.cview());
}

TEST(CalderaTiny, EveryMatrixOrdersCalderaBelowQuipBelowRtn) {
  auto& be = test::cpu_backend();
  const pipeline::HfWeightSource source(test::tiny_model_dir());
  const auto& cfg = source.config();
  const auto ids = model::checked_token_ids(cfg, test::read_calib_tokens(kCalibSeqs, kSeqLen), kSeqLen);
  auto hidden = model::embed_sequences(be, source, ids);
  model::ForwardOptions fwd;
  fwd.seq_len = kSeqLen;

  MethodConfig rtn = MethodConfig::defaults(MethodKind::kRtn);  // 2-bit, groups of 64, min-max
  MethodConfig quip = MethodConfig::defaults(MethodKind::kQuip);
  MethodConfig cal = MethodConfig::defaults(MethodKind::kCaldera);
  cal.caldera.rank = 32;
  cal.caldera.bits_lr = 16;
  cal.caldera.iters = 2;
  const auto m_rtn = make_method(rtn), m_quip = make_method(quip), m_cal = make_method(cal);

  int checked = 0;
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    const auto host = source.load_layer(layer);
    const auto weights = model::LayerWeights::upload(be, cfg, layer, host, source.storage_dtype());
    model::HessianTaps taps(be, cfg);
    model::forward_layer_batched(be, cfg, weights, hidden.view(), fwd, &taps);
    for (const model::LinearKind kind : model::kAllLinearKinds) {
      const InputStats stats = stats_of(be, taps, model::hessian_input(kind));
      const HostMatrix<float>& w = host[kind];
      const UnitId unit{static_cast<int>(layer), std::string(model::hf_module_name(kind)), static_cast<int>(kind)};
      const MethodContext ctx{be, Rng(0).stream({static_cast<uint64_t>(layer), static_cast<uint64_t>(kind)}), unit,
                              nullptr, {}, {}};
      const auto r = m_rtn->compress(ctx, w.cview(), stats);
      const auto q = m_quip->compress(ctx, w.cview(), stats);
      const auto c = m_cal->compress(ctx, w.cview(), stats);
      EXPECT_LT(c.metrics.rel_error, q.metrics.rel_error) << unit.name();
      EXPECT_LT(q.metrics.rel_error, r.metrics.rel_error) << unit.name();
      EXPECT_GT(c.metrics.rel_error, 0.0) << unit.name();
      // The stored tensors reproduce the reported error in the original basis.
      const double rebuilt = error_of(be, w, m_cal->reconstruct(be, c.tensors), stats);
      EXPECT_NEAR(rebuilt, c.metrics.rel_error, 1e-3 * c.metrics.rel_error) << unit.name();
      ++checked;
    }
  }
  EXPECT_EQ(checked, 7 * cfg.num_hidden_layers);
}

}  // namespace
}  // namespace caldera::algo
