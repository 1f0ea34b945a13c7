// The sensitivity pass and rank-allocation step of the low-rank methods (pipeline/sensitivity.h,
// spec asvd-svdllm.md §5, §6) on a small synthetic Llama (GQA) on the CPU backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <map>

#include "comm/self_communicator.h"
#include "model/forward.h"
#include "model/synthetic_weights.h"
#include "pipeline/perplexity.h"
#include "pipeline/sensitivity.h"
#include "test_util.h"

namespace caldera::pipeline {
namespace {

using algo::RankSearchMode;
using model::HessianInput;

constexpr int64_t kSeqLen = 16;
constexpr int64_t kSeqs = 4;

model::LlamaConfig tiny_config() {
  model::LlamaConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;  // GQA: k/v are 16 × 32
  c.head_dim = 8;
  c.vocab_size = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500.0;
  c.max_position_embeddings = 64;
  return c;
}

std::vector<uint32_t> tokens(int64_t n_seqs, uint64_t seed) {
  const Rng r(seed);
  std::vector<uint32_t> t(static_cast<size_t>(n_seqs * kSeqLen));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint32_t>(r.uniform(i) * 64.0f) % 64u;
  return t;
}

model::ForwardOptions forward_options() {
  model::ForwardOptions f;
  f.seq_len = kSeqLen;
  f.micro_batch_seqs = 2;
  f.vocab_chunk = 32;
  return f;
}

/// Phase-1 statistics of the unmodified model (Σxxᵀ and counts from the Hessian taps).
std::map<std::pair<int64_t, HessianInput>, algo::InputStats> collect_stats(const model::WeightSource& source,
                                                                           const std::vector<uint32_t>& toks) {
  auto& be = test::cpu_backend();
  const auto& config = source.config();
  const auto ids = model::checked_token_ids(config, toks, kSeqLen);
  auto hidden = model::embed_sequences(be, source, ids);
  model::HessianTaps taps(be, config);
  std::map<std::pair<int64_t, HessianInput>, algo::InputStats> out;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    taps.reset();
    const auto w = model::LayerWeights::load(be, source, layer);
    model::forward_layer_batched(be, config, w, hidden.view(), forward_options(), &taps);
    for (HessianInput in : model::kAllHessianInputs) {
      algo::InputStats s;
      s.sum_xxt = taps.sum(in);
      s.count = taps.count(in);
      s.n_sequences = static_cast<int64_t>(toks.size()) / kSeqLen;
      s.sum_abs_x = taps.sum_abs(in).storage();
      s.max_abs_x = be.download(taps.max_abs(in)).storage();
      out.emplace(std::make_pair(layer, in), std::move(s));
    }
  }
  return out;
}

class CountingProvider {
 public:
  explicit CountingProvider(std::map<std::pair<int64_t, HessianInput>, algo::InputStats> stats) : stats_(std::move(stats)) {}
  InputStatsProvider provider() {
    return [this](int64_t layer, HessianInput in) {
      ++calls_;
      return stats_.at({layer, in});
    };
  }
  int calls() const { return calls_; }

 private:
  std::map<std::pair<int64_t, HessianInput>, algo::InputStats> stats_;
  int calls_ = 0;
};

class SensitivityTest : public ::testing::Test {
 protected:
  SensitivityTest() : source_(tiny_config(), 5), calib_(tokens(kSeqs, 9)), stats_(collect_stats(source_, calib_)) {}

  double perplexity(const model::WeightSource& source) {
    PerplexityOptions o;
    o.forward = forward_options();
    return evaluate_perplexity(test::cpu_backend(), world_, source, calib_, o).ppl;
  }

  SensitivityOptions options(const std::filesystem::path& dir = {}) {
    SensitivityOptions o;
    o.forward = forward_options();
    o.dir = dir;
    o.data_fingerprint = "synthetic-5";
    return o;
  }

  model::SyntheticWeightSource source_;
  std::vector<uint32_t> calib_;
  CountingProvider stats_;
  comm::SelfCommunicator world_;
};

TEST_F(SensitivityTest, EachEntryIsThePerplexityWithThatMatrixReplaced) {
  algo::AsvdParams p;
  p.method = algo::LowRankKind::kSvdLlm;
  p.weight_candidates = {0.3, 0.6};
  const auto matrices = model_matrices(source_.config());
  ASSERT_EQ(matrices.size(), 14u);
  const algo::SensitivityTable t = compute_sensitivity(test::cpu_backend(), world_, source_, calib_, kSeqs,
                                                       stats_.provider(), p, RankSearchMode::kWeights, matrices, options());
  EXPECT_NEAR(t.base_ppl / perplexity(source_), 1.0, 1e-9);
  const algo::LowRankMethod method(p);
  for (size_t i : {size_t(1), size_t(4), size_t(9), size_t(13)}) {  // k (l0), gate (l0), v (l1), down (l1)
    const auto& shape = matrices[i];
    const auto kind = model::kAllLinearKinds[i % 7];
    const auto w = source_.load_layer(shape.layer)[kind];
    const auto s = method.input_transform(test::cpu_backend(), stats_.provider()(shape.layer, model::hessian_input(kind)),
                                          shape.cols, shape.name());
    for (size_t c = 0; c < t.candidates.size(); ++c) {
      const int64_t r = algo::rank_for_param_ratio(shape.rows, shape.cols, t.candidates[c]);
      const auto f = algo::TruncatableSvd::compute(test::cpu_backend(), w.view(), s, r, p.svd_precision).factors(r, p.sigma_fuse);
      ReplacedWeightSource replaced(source_);
      replaced.replace(shape.layer, kind, algo::reconstruct_low_rank(test::cpu_backend(), algo::low_rank_tensors(f)));
      EXPECT_NEAR(t.at(i, c) / perplexity(replaced), 1.0, 1e-6) << shape.name() << " at " << t.candidates[c];
      EXPECT_NE(t.at(i, c), t.base_ppl);
    }
  }
}

TEST_F(SensitivityTest, TableIsResumedPerLayerAndRecomputedWhenInvalid) {
  const auto dir = test::make_temp_dir("asvd-sens");
  algo::AsvdParams p;
  p.method = algo::LowRankKind::kSvdLlm;
  p.weight_candidates = {0.4, 0.8};
  const auto matrices = model_matrices(source_.config());
  auto run = [&](const algo::AsvdParams& params) {
    return compute_sensitivity(test::cpu_backend(), world_, source_, calib_, kSeqs, stats_.provider(), params,
                               RankSearchMode::kWeights, matrices, options(dir));
  };
  const algo::SensitivityTable first = run(p);
  const int calls_first = stats_.calls();
  EXPECT_GT(calls_first, 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "weights" / "layer_000.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "weights" / "layer_001.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "weights" / "base.json"));

  // Everything on disk: nothing is recomputed (no statistics read) and the table is identical.
  const algo::SensitivityTable again = run(p);
  EXPECT_EQ(stats_.calls(), calls_first);
  EXPECT_EQ(again.ppl, first.ppl);
  EXPECT_EQ(again.base_ppl, first.base_ppl);

  // A tampered layer file fails its checksum: only that layer is recomputed, to the same values.
  {
    const auto path = dir / "weights" / "layer_001.json";
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto pos = text.find("\"ppl\"");
    ASSERT_NE(pos, std::string::npos);
    const auto digit = text.find_first_of("123456789", pos);
    text[digit] = text[digit] == '9' ? '8' : static_cast<char>(text[digit] + 1);
    std::ofstream(path) << text;
  }
  const algo::SensitivityTable repaired = run(p);
  EXPECT_EQ(stats_.calls(), calls_first + 4);  // layer 1: its qkv, o, up and down inputs
  EXPECT_EQ(repaired.ppl, first.ppl);

  // Other settings (pitfall 11): another candidate set is never served from these files.
  algo::AsvdParams other = p;
  other.weight_candidates = {0.5, 0.8};
  const int before = stats_.calls();
  const algo::SensitivityTable t2 = run(other);
  EXPECT_GT(stats_.calls(), before);
  EXPECT_NE(t2.at(0, 0), first.at(0, 0));
  EXPECT_EQ(t2.at(0, 1), first.at(0, 1));  // 0.8 recomputed to the same value
  std::filesystem::remove_all(dir);
}

TEST_F(SensitivityTest, AllocationStepMeetsTargetsInBothModes) {
  algo::AsvdParams p;
  p.method = algo::LowRankKind::kSvd;
  p.param_ratio = 0.8;
  p.sensitivity_sequences = kSeqs;
  const LowRankPlan w = allocate_low_rank_ranks(test::cpu_backend(), world_, source_, calib_, stats_.provider(), p, options());
  ASSERT_TRUE(w.weight_table.has_value());
  EXPECT_FALSE(w.kv_table.has_value());
  EXPECT_GT(w.allocation.achieved, 0.8);
  EXPECT_LE(w.allocation.achieved - w.allocation.step, 0.8);
  EXPECT_LE(w.param_ratio, w.allocation.achieved);

  // KV mode (GQA k/v 16 × 32) with weights kept dense: the cache ratio is Σr / Σd_kv.
  p.param_ratio = 1.0;
  p.kv_ratio = 0.5;
  const LowRankPlan kv = allocate_low_rank_ranks(test::cpu_backend(), world_, source_, calib_, stats_.provider(), p, options());
  ASSERT_TRUE(kv.kv_table.has_value());
  EXPECT_FALSE(kv.weight_table.has_value());
  EXPECT_EQ(kv.allocation.matrices.size(), 4u);
  EXPECT_GT(kv.kv_cache_ratio, 0.5);
  EXPECT_LE(kv.kv_cache_ratio - kv.allocation.step, 0.5);
  EXPECT_GT(kv.param_ratio, 0.0);

  // Uniform needs no forward pass and gives the nominal ratio exactly.
  p.rank_search = algo::RankSearch::kUniform;
  p.param_ratio = 0.7;
  p.kv_ratio = 1.0;
  const LowRankPlan u = allocate_low_rank_ranks(test::cpu_backend(), world_, source_, calib_, stats_.provider(), p, options());
  EXPECT_NEAR(u.allocation.achieved, 0.7, 1e-12);
  EXPECT_EQ(u.allocation.matrices.size(), 14u);
  const io::JsonValue j = allocation_json(u.allocation);
  EXPECT_EQ(j.at("matrices").size(), 14u);
}

// Spec §5.1: the sensitivity pass always measures the ASVD factorization, so plain SVD under STRS
// takes exactly the ASVD table's allocation (the reference's "SVD*"), not one from a table of its
// own truncations (which differs: checked, so the test can tell the two apart).
TEST_F(SensitivityTest, PlainSvdRanksComeFromTheAsvdTable) {
  algo::AsvdParams asvd;
  asvd.method = algo::LowRankKind::kAsvd;
  asvd.param_ratio = 0.8;
  asvd.sensitivity_sequences = kSeqs;
  algo::AsvdParams svd = asvd;
  svd.method = algo::LowRankKind::kSvd;
  const LowRankPlan a = allocate_low_rank_ranks(test::cpu_backend(), world_, source_, calib_, stats_.provider(), asvd, options());
  const LowRankPlan s = allocate_low_rank_ranks(test::cpu_backend(), world_, source_, calib_, stats_.provider(), svd, options());
  ASSERT_TRUE(a.weight_table && s.weight_table);
  EXPECT_EQ(s.weight_table->ppl, a.weight_table->ppl);
  ASSERT_EQ(s.allocation.matrices.size(), a.allocation.matrices.size());
  for (size_t i = 0; i < a.allocation.matrices.size(); ++i)
    EXPECT_EQ(s.allocation.matrices[i].rank, a.allocation.matrices[i].rank) << a.allocation.matrices[i].shape.name();

  const algo::SensitivityTable own = compute_sensitivity(test::cpu_backend(), world_, source_, calib_, kSeqs,
                                                         stats_.provider(), svd, RankSearchMode::kWeights,
                                                         s.weight_table->matrices, options());
  EXPECT_NE(own.ppl, a.weight_table->ppl);
  const auto pairs = svd.to_pairs();
  EXPECT_TRUE(std::any_of(pairs.begin(), pairs.end(), [](const auto& kv) { return kv.first == "alpha"; }))
      << "svd under STRS records the ASVD settings its ranks depend on";
}

}  // namespace
}  // namespace caldera::pipeline
