// ASVD, SVD-LLM and plain SVD on the real minillama-small model (label slow): per-matrix truncation
// errors with its real calibration activations (spec asvd-svdllm.md §2.3, §11: the whitening
// theorem holds on real data, SVD-LLM is the activation-error minimiser, ASVD beats plain SVD) and
// the end-to-end perplexity table of the issue. Both print the tables recorded in
// docs/benchmarks.md. Skip when minillama-small is not unpacked (set CALDERA_SMALL_MODEL).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "algo/asvd.h"
#include "comm/self_communicator.h"
#include "io/token_file.h"
#include "model/forward.h"
#include "pipeline/compress_phase.h"
#include "pipeline/hessian_phase.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/perplexity.h"
#include "pipeline/sensitivity.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using model::HessianInput;
using model::LinearKind;

constexpr int64_t kSeqLen = 512;
constexpr int64_t kStatsSeqs = 32;  // the spec's 32 calibration sequences (§8.1)

/// ||(W − Ŵ)X||²_F / ||W X||²_F = tr(ΔGΔᵀ)/tr(WGWᵀ) in fp64 on the CPU backend.
double relative_activation_error(const HostMatrix<float>& w, const HostMatrix<double>& w_hat,
                                 const HostMatrix<double>& g, double* abs_sq = nullptr) {
  HostMatrix<double> delta(w.rows(), w.cols()), wd(w.rows(), w.cols());
  for (int64_t i = 0; i < w.size(); ++i) {
    wd.data()[i] = w.data()[i];
    delta.data()[i] = w.data()[i] - w_hat.data()[i];
  }
  auto trace = [&](const HostMatrix<double>& e) {
    const HostMatrix<double> eg = test::matmul(e.view(), g.view());
    double s = 0;
    for (int64_t i = 0; i < e.size(); ++i) s += eg.data()[i] * e.data()[i];
    return s;
  };
  const double num = trace(delta);
  if (abs_sq != nullptr) *abs_sq = num;
  return std::sqrt(num / trace(wd));
}

TEST(AsvdSmallModel, TruncationErrorsOnRealActivations) {
  const auto dir = test::small_model_dir();
  if (dir.empty()) GTEST_SKIP() << "minillama-small not unpacked (set CALDERA_SMALL_MODEL)";
  auto& be = test::cpu_backend();
  const pipeline::HfWeightSource source(dir);
  const auto& config = source.config();
  const auto calib = io::TokenFile::open(test::data_dir() / "calib.u32", kSeqLen, config.vocab_size, kStatsSeqs);
  const auto seqs = calib.sequences();
  const auto ids = model::checked_token_ids(
      config, std::span<const uint32_t>(seqs.data, static_cast<size_t>(seqs.size())), kSeqLen);
  model::ForwardOptions fo;
  fo.seq_len = kSeqLen;
  fo.micro_batch_seqs = 4;
  auto hidden = model::embed_sequences(be, source, ids);
  model::HessianTaps taps(be, config);

  const double ratios[] = {0.9, 0.6};
  const LowRankKind kinds[] = {LowRankKind::kSvd, LowRankKind::kAsvd, LowRankKind::kSvdLlm};
  // error_sum[ratio][method][linear kind], over layers
  std::map<std::tuple<int, int, int>, double> error_sum;
  int asvd_beats_svd = 0, total = 0;
  double worst_theorem = 0;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    taps.reset();
    const auto host = source.load_layer(layer);
    const auto weights = model::LayerWeights::upload(be, config, layer, host, source.storage_dtype());
    model::forward_layer_batched(be, config, weights, hidden.view(), fo, &taps);
    std::map<HessianInput, InputStats> stats;
    for (HessianInput in : model::kAllHessianInputs) {
      InputStats s;
      s.sum_xxt = taps.sum(in);
      s.count = taps.count(in);
      s.n_sequences = kStatsSeqs;
      s.sum_abs_x = taps.sum_abs(in).storage();
      s.max_abs_x = be.download(taps.max_abs(in)).storage();
      stats.emplace(in, std::move(s));
    }
    for (LinearKind lk : model::kAllLinearKinds) {
      const HostMatrix<float>& w = host[lk];
      const InputStats& st = stats.at(model::hessian_input(lk));
      for (int ri = 0; ri < 2; ++ri) {
        const int64_t r = rank_for_param_ratio(w.rows(), w.cols(), ratios[ri]);
        double err[3];
        for (int mi = 0; mi < 3; ++mi) {
          AsvdParams p;
          p.method = kinds[mi];
          const LowRankMethod method(p);
          const InputTransform s = method.input_transform(be, st, w.cols(), "test");
          const TruncatableSvd svd = TruncatableSvd::compute(be, w.view(), s, r, SvdPrecision::kF64);
          double abs_sq = 0;
          err[mi] = relative_activation_error(w, test::matmul(svd.factors(r, SigmaFuse::kUV).a.view(),
                                                              svd.factors(r, SigmaFuse::kUV).b.view()),
                                              st.sum_xxt, &abs_sq);
          error_sum[{ri, mi, static_cast<int>(lk)}] += err[mi];
          if (kinds[mi] == LowRankKind::kSvdLlm && s.damping == 0.0)  // spec §2.3 on real data
            worst_theorem = std::max(worst_theorem, std::fabs(abs_sq / svd.truncation_loss(r) - 1.0));
        }
        EXPECT_LE(err[2], err[0] * (1 + 1e-9)) << "L" << layer << " " << model::hf_module_name(lk);
        EXPECT_LE(err[2], err[1] * (1 + 1e-9)) << "L" << layer << " " << model::hf_module_name(lk);
        asvd_beats_svd += err[1] < err[0] ? 1 : 0;
        ++total;
      }
    }
  }
  EXPECT_LT(worst_theorem, 1e-6);
  EXPECT_GT(asvd_beats_svd, total * 9 / 10) << asvd_beats_svd << " of " << total;
  std::printf("\nmean relative activation error ||(W-AB)X||/||WX|| over %lld layers, minillama-small, %lld x %lld "
              "calibration tokens\n", static_cast<long long>(config.num_hidden_layers),
              static_cast<long long>(kStatsSeqs), static_cast<long long>(kSeqLen));
  std::printf("| ratio | matrix | svd | asvd | svdllm |\n|---|---|---|---|---|\n");
  for (int ri = 0; ri < 2; ++ri)
    for (LinearKind lk : model::kAllLinearKinds) {
      std::printf("| %.2f | %s |", ratios[ri], std::string(model::hf_module_name(lk)).c_str());
      for (int mi = 0; mi < 3; ++mi)
        std::printf(" %.4f |", error_sum[{ri, mi, static_cast<int>(lk)}] / double(config.num_hidden_layers));
      std::printf("\n");
    }
  std::printf("whitening theorem worst relative deviation: %.3g; ASVD < SVD on %d of %d matrices\n", worst_theorem,
              asvd_beats_svd, total);
}

// End to end without the CLI (phase 1, rank allocation, per-matrix compression, evaluation), the
// acceptance table of the issue: eval perplexity at param ratio 0.95 / 0.9 / 0.85 for plain SVD,
// ASVD and SVD-LLM (weights only, sensitivity search), and ASVD with the KV cache cut to 50%.
// Phase 1 on all 256 calibration sequences, sensitivity on the first 4 (CPU time here), eval on the
// 64 held-out sequences. Work files persist under $TMPDIR/caldera-asvd-e2e (resumable).
TEST(AsvdSmallModel, PerplexityOrderingEndToEnd) {
  constexpr int kSensitivitySeqs = 4;
  const auto dir = test::small_model_dir();
  if (dir.empty()) GTEST_SKIP() << "minillama-small not unpacked (set CALDERA_SMALL_MODEL)";
  auto& be = test::cpu_backend();
  comm::SelfCommunicator world;
  const pipeline::HfWeightSource source(dir);
  const auto& config = source.config();
  const auto calib = io::TokenFile::open(test::data_dir() / "calib.u32", kSeqLen, config.vocab_size);
  const auto eval = io::TokenFile::open(test::data_dir() / "eval.u32", kSeqLen, config.vocab_size);
  const auto span_of = [](MatrixView<const uint32_t> m) {
    return std::span<const uint32_t>(m.data, static_cast<size_t>(m.size()));
  };
  const auto work = std::filesystem::temp_directory_path() / "caldera-asvd-e2e";
  model::ForwardOptions fo;
  fo.seq_len = kSeqLen;
  fo.micro_batch_seqs = 4;

  pipeline::HessianPhaseOptions hp;
  hp.forward = fo;
  hp.workdir = work;
  hp.model_fingerprint = source.model().fingerprint().digest();
  hp.calibration_sha256 = calib.sha256();
  (void)pipeline::run_hessian_phase(be, world, source, span_of(calib.sequences()), hp);
  const pipeline::InputStatsProvider stats = [&](int64_t layer, HessianInput in) {
    return pipeline::to_input_stats(io::read_hessian_input(io::hessian_file_path(work, layer), in), kSeqLen);
  };
  pipeline::PerplexityOptions po;
  po.forward = fo;
  const double base = pipeline::evaluate_perplexity(be, world, source, span_of(eval.sequences()), po).ppl;

  auto run = [&](AsvdParams p, const std::string& tag) {
    p.sensitivity_sequences = kSensitivitySeqs;
    pipeline::SensitivityOptions so;
    so.forward = fo;
    so.dir = work / ("sensitivity-" + std::string(to_string(p.method)));
    so.data_fingerprint = hp.model_fingerprint + ":" + hp.calibration_sha256;
    const pipeline::LowRankPlan plan =
        pipeline::allocate_low_rank_ranks(be, world, source, span_of(calib.sequences()), stats, p, so);
    const LowRankMethod method(p, plan.allocation);
    pipeline::ReplacedWeightSource compressed(source);
    for (const MatrixShape& m : pipeline::model_matrices(config)) {
      const auto kind = model::kAllLinearKinds[static_cast<size_t>(
          std::find_if(model::kAllLinearKinds.begin(), model::kAllLinearKinds.end(),
                       [&](LinearKind k) { return model::hf_module_name(k) == m.matrix; }) -
          model::kAllLinearKinds.begin())];
      const auto w = source.load_layer(m.layer)[kind];
      const MethodContext ctx{be, Rng(0), UnitId{m.layer, m.matrix, static_cast<int>(kind)}, nullptr, {}, {}};
      const CompressedUnit u = method.compress(ctx, w.view(), stats(m.layer, model::hessian_input(kind)));
      compressed.replace(m.layer, kind, method.reconstruct(be, u.tensors));
    }
    const double ppl = pipeline::evaluate_perplexity(be, world, compressed, span_of(eval.sequences()), po).ppl;
    std::printf("RESULT %s param_ratio %.4f kv_cache_ratio %.4f ppl %.4f (base %.4f)\n", tag.c_str(), plan.param_ratio,
                plan.kv_cache_ratio, ppl, base);
    std::fflush(stdout);
    return ppl;
  };
  for (double ratio : {0.95, 0.9, 0.85}) {
    double ppl[3];
    const LowRankKind kinds[] = {LowRankKind::kSvd, LowRankKind::kAsvd, LowRankKind::kSvdLlm};
    for (int i = 0; i < 3; ++i) {
      AsvdParams p;
      p.method = kinds[i];
      p.param_ratio = ratio;
      ppl[i] = run(p, std::string(to_string(kinds[i])) + "@" + std::to_string(ratio));
      EXPECT_GT(ppl[i], base);
    }
    EXPECT_LE(ppl[2], ppl[1]) << "SVD-LLM vs ASVD at " << ratio;
    EXPECT_LE(ppl[1], ppl[0]) << "ASVD vs SVD at " << ratio;
  }
  AsvdParams kv;
  kv.param_ratio = 1.0;
  kv.kv_ratio = 0.5;
  const double kv_ppl = run(kv, "asvd-kv0.5");
  EXPECT_GT(kv_ppl, base);
}

}  // namespace
}  // namespace caldera::algo
