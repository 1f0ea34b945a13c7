// STRS rank allocation (spec asvd-svdllm.md §5.2, §6, pitfalls 8, 9, 14) on hand-built and random
// sensitivity tables.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/lowrank.h"
#include "algo/rank_search.h"
#include "core/rng.h"

namespace caldera::algo {
namespace {

/// Three matrices (numel 10000, 30000, 20000), candidates {0.4, 0.6, 0.8}; sorted list (ppl desc):
/// (M2,.4,30) (M2,.6,25) (M1,.4,20) (M1,.6,15) (M0,.4,12) (M0,.6,11) (M0,.8,10.5) (M1,.8,10.2)
/// (M2,.8,10.1), so R(k) = .4, .46667, .53333, .63333, .73333, .76667, .8, .83333, .93333.
SensitivityTable hand_table() {
  SensitivityTable t;
  t.matrices = {{0, "self_attn.q_proj", 100, 100}, {0, "mlp.up_proj", 100, 300}, {1, "mlp.down_proj", 200, 100}};
  t.candidates = {0.4, 0.6, 0.8};
  t.ppl = {12, 11, 10.5, 20, 15, 10.2, 30, 25, 10.1};
  t.base_ppl = 10.0;
  return t;
}

const double kHandR[] = {0.4, 28.0 / 60, 32.0 / 60, 38.0 / 60, 44.0 / 60, 46.0 / 60, 0.8, 50.0 / 60, 56.0 / 60};

TEST(RankSearch, HandTableGivesExpectedRatios) {
  const RankAllocation a = allocate_ranks(hand_table(), 0.75);
  // First k with R(k) > 0.75 is k = 5: M0 at 0.6, M1 and M2 at 0.8.
  EXPECT_EQ(a.threshold_index, 5);
  EXPECT_EQ(a.list_size, 9);
  ASSERT_EQ(a.matrices.size(), 3u);
  EXPECT_DOUBLE_EQ(a.matrices[0].ratio, 0.6);
  EXPECT_DOUBLE_EQ(a.matrices[1].ratio, 0.8);
  EXPECT_DOUBLE_EQ(a.matrices[2].ratio, 0.8);
  EXPECT_EQ(a.matrices[0].rank, rank_for_param_ratio(100, 100, 0.6));
  EXPECT_EQ(a.matrices[1].rank, rank_for_param_ratio(100, 300, 0.8));
  EXPECT_NEAR(a.achieved, kHandR[5], 1e-12);
  EXPECT_NEAR(a.step, kHandR[5] - kHandR[4], 1e-12);
  EXPECT_TRUE(a.reachable);
  // Achieved param ratio from the integer ranks: r(m+n) per matrix.
  const double params = 30.0 * 200 + 60.0 * 400 + 53.0 * 300;
  EXPECT_EQ(a.matrices[2].rank, 53);
  EXPECT_NEAR(a.param_ratio, params / 60000.0, 1e-12);
  EXPECT_EQ(a.find(1, "mlp.down_proj"), &a.matrices[2]);
  EXPECT_EQ(a.find(1, "mlp.up_proj"), nullptr);
}

TEST(RankSearch, ReturnsConvergedBoundNotLastMid) {
  // Pitfall 9: for target 0.85 the reference's last evaluated mid is 7 (R = .8333, a config it
  // would apply); the converged bound is 8 (R = .9333 > target ≥ R(7)).
  const RankAllocation a = allocate_ranks(hand_table(), 0.85);
  EXPECT_EQ(a.threshold_index, 8);
  EXPECT_NEAR(a.achieved, kHandR[8], 1e-12);
  EXPECT_FALSE(a.matrices[0].compressed());
  EXPECT_FALSE(a.matrices[1].compressed());
  EXPECT_DOUBLE_EQ(a.matrices[1].ratio, 1.0);
  EXPECT_DOUBLE_EQ(a.matrices[2].ratio, 0.8);
  EXPECT_LE(a.achieved - a.step, 0.85);
  EXPECT_GT(a.achieved, 0.85);
}

TEST(RankSearch, UnreachableTargetIsReported) {
  const RankAllocation a = allocate_ranks(hand_table(), 0.3);
  EXPECT_EQ(a.threshold_index, 0);
  EXPECT_NEAR(a.achieved, 0.4, 1e-12);
  EXPECT_FALSE(a.reachable);
  EXPECT_THROW((void)allocate_ranks(hand_table(), 0.0), ConfigError);
  EXPECT_THROW((void)allocate_ranks(hand_table(), 1.2), ConfigError);
}

TEST(RankSearch, SingleEntryListIsWellDefined) {
  // The reference leaves `mid` undefined for a one-element list.
  SensitivityTable t;
  t.matrices = {{0, "mlp.gate_proj", 64, 64}};
  t.candidates = {0.5};
  t.ppl = {9.0};
  const RankAllocation a = allocate_ranks(t, 0.6);
  EXPECT_EQ(a.threshold_index, 0);
  EXPECT_DOUBLE_EQ(a.matrices[0].ratio, 0.5);
  EXPECT_NEAR(a.achieved, 0.5, 1e-12);
}

TEST(RankSearch, NotEvaluatedAndNonCompressingCandidatesAreSkipped) {
  SensitivityTable t = hand_table();
  t.candidates = {0.4, 0.6, 1.0};  // ρ = 1 never compresses in weight mode (pitfall 8)
  t.at(0, 0) = std::nan("");       // not evaluated
  const RankAllocation a = allocate_ranks(t, 0.5);
  EXPECT_EQ(a.list_size, 5);
  EXPECT_DOUBLE_EQ(a.matrices[0].ratio, 0.6);  // its 0.4 was never admitted
}

/// R(k) by direct evaluation of config(k) (independent of the search).
double direct_r(const SensitivityTable& t, const std::vector<std::pair<size_t, size_t>>& sorted, size_t k) {
  std::vector<double> rho(t.matrices.size(), 1.0);
  for (size_t i = k; i < sorted.size(); ++i) rho[sorted[i].first] = std::min(rho[sorted[i].first], t.candidates[sorted[i].second]);
  double num = 0, den = 0;
  for (size_t i = 0; i < rho.size(); ++i) {
    const double mn = double(t.matrices[i].rows * t.matrices[i].cols);
    num += mn * rho[i];
    den += mn;
  }
  return num / den;
}

TEST(RankSearch, RandomTablesHitTargetWithinOneStep) {
  const Rng rng(7);
  const char* names[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
  const int64_t rows[] = {64, 32, 32, 64, 176, 176, 64};
  const int64_t cols[] = {64, 64, 64, 64, 64, 64, 176};
  for (uint64_t trial = 0; trial < 40; ++trial) {
    SensitivityTable t;
    for (int layer = 0; layer < 3; ++layer)
      for (int j = 0; j < 7; ++j) t.matrices.push_back({layer, names[j], rows[j], cols[j]});
    t.candidates = default_candidates(RankSearchMode::kWeights);
    const Rng r = rng.stream({trial});
    for (size_t i = 0; i < t.matrices.size() * t.candidates.size(); ++i) t.ppl.push_back(10.0 + 5.0 * r.uniform(i));
    const double target = 0.45 + 0.5 * r.uniform(100000);
    const RankAllocation a = allocate_ranks(t, target);
    // Independent linear scan over the sorted list.
    std::vector<std::pair<size_t, size_t>> sorted;
    for (size_t i = 0; i < t.matrices.size(); ++i)
      for (size_t c = 0; c < t.candidates.size(); ++c) sorted.push_back({i, c});
    std::stable_sort(sorted.begin(), sorted.end(), [&](auto x, auto y) { return t.at(x.first, x.second) > t.at(y.first, y.second); });
    size_t first = sorted.size() - 1;
    for (size_t k = 0; k < sorted.size(); ++k)
      if (direct_r(t, sorted, k) > target) {
        first = k;
        break;
      }
    EXPECT_EQ(a.threshold_index, int64_t(first)) << "trial " << trial;
    EXPECT_NEAR(a.achieved, direct_r(t, sorted, first), 1e-12);
    // Within one step of the target: R(low − 1) ≤ target < R(low).
    EXPECT_GT(a.achieved, target);
    EXPECT_LE(a.achieved - a.step, target + 1e-15);
    EXPECT_NEAR(a.step, direct_r(t, sorted, first) - direct_r(t, sorted, first - 1), 1e-12);
    EXPECT_TRUE(a.reachable);
    // The integer-rank param ratio never exceeds the nominal one (floors) by construction.
    EXPECT_LE(a.param_ratio, a.achieved + 1e-12);
  }
}

TEST(RankSearch, KvModeUsesRankFractionOfGqaProjections) {
  // GQA: k/v project 512 → 256 (d_kv); full rank at ρ = 1.5, so 1.5..1.9 are not candidates and
  // the searched quantity is Σr / Σd_kv, not ρ/2 (pitfall 14).
  SensitivityTable t;
  t.mode = RankSearchMode::kKvCache;
  t.matrices = {{0, "self_attn.k_proj", 256, 512}, {0, "self_attn.v_proj", 256, 512}};
  t.candidates = default_candidates(RankSearchMode::kKvCache);
  for (size_t i = 0; i < 2; ++i)
    for (size_t c = 0; c < t.candidates.size(); ++c) t.ppl.push_back((i == 0 ? 20.0 : 40.0) - 10.0 * t.candidates[c]);
  const RankAllocation a = allocate_ranks(t, 0.5);
  EXPECT_EQ(a.list_size, 2 * 14);  // 0.1 .. 1.4
  int64_t cached = 0;
  for (const auto& m : a.matrices) cached += m.cached_per_token();
  EXPECT_NEAR(a.kv_cache_ratio, double(cached) / 512.0, 1e-15);
  EXPECT_NEAR(a.achieved, a.kv_cache_ratio, 1e-15);
  EXPECT_GT(a.achieved, 0.5);
  EXPECT_LE(a.achieved - a.step, 0.5);
  for (const auto& m : a.matrices)
    if (m.compressed()) EXPECT_EQ(m.rank, rank_for_param_ratio(256, 512, m.ratio));
    else EXPECT_DOUBLE_EQ(m.ratio, 1.5);
  // Non-k/v matrices do not belong in a kv table.
  t.matrices[0].matrix = "self_attn.q_proj";
  EXPECT_THROW((void)allocate_ranks(t, 0.5), Error);
}

TEST(RankSearch, UniformAllocations) {
  const std::vector<MatrixShape> shapes = {{0, "self_attn.q_proj", 512, 512}, {0, "self_attn.k_proj", 256, 512},
                                           {0, "mlp.down_proj", 512, 1408}};
  const RankAllocation w = uniform_allocation(shapes, RankSearchMode::kWeights, 0.9);
  ASSERT_EQ(w.matrices.size(), 3u);
  for (const auto& m : w.matrices) EXPECT_EQ(m.rank, rank_for_param_ratio(m.shape.rows, m.shape.cols, 0.9));
  EXPECT_NEAR(w.achieved, 0.9, 1e-15);
  const RankAllocation none = uniform_allocation(shapes, RankSearchMode::kWeights, 1.0);
  for (const auto& m : none.matrices) EXPECT_FALSE(m.compressed());
  const RankAllocation kv = uniform_allocation(shapes, RankSearchMode::kKvCache, 0.5);
  ASSERT_EQ(kv.matrices.size(), 1u);
  EXPECT_EQ(kv.matrices[0].rank, 128);
  EXPECT_DOUBLE_EQ(kv.kv_cache_ratio, 0.5);
  // Over the whole candidate set, unlisted matrices count as dense.
  const double total = 512.0 * 512 + 256.0 * 512 + 512.0 * 1408;
  EXPECT_NEAR(overall_param_ratio(kv, shapes), (total - 256.0 * 512 + 128.0 * 768) / total, 1e-15);
}

TEST(RankSearch, CombinedKvAndWeightTargets) {
  // KV allocation: k/v 256×512 at rank 128 each (r(m+n) = 98304 params, dense 131072).
  const std::vector<MatrixShape> kv_shapes = {{0, "self_attn.k_proj", 256, 512}, {0, "self_attn.v_proj", 256, 512}};
  const RankAllocation kv = uniform_allocation(kv_shapes, RankSearchMode::kKvCache, 0.5);
  const std::vector<MatrixShape> others = {{0, "self_attn.q_proj", 512, 512}, {0, "mlp.up_proj", 1408, 512}};
  const double n_others = 512.0 * 512 + 1408.0 * 512, n_kv = 2 * 131072.0, p_kv = 2 * 98304.0;
  const double t = weight_target_with_kv(kv, others, 0.9);
  EXPECT_NEAR(t, (0.9 * (n_kv + n_others) - p_kv) / n_others, 1e-15);
  // Allocating the others at exactly t gives the overall nominal ratio 0.9.
  const RankAllocation w = uniform_allocation(others, RankSearchMode::kWeights, t);
  const RankAllocation all = combine_allocations(kv, w);
  EXPECT_EQ(all.matrices.size(), 4u);
  EXPECT_DOUBLE_EQ(all.kv_cache_ratio, 0.5);
  double params = p_kv;
  for (const auto& m : w.matrices) params += double(m.params());
  EXPECT_NEAR(all.param_ratio, params / (n_kv + n_others), 1e-15);
  EXPECT_NEAR(all.param_ratio, 0.9, 0.01);
  EXPECT_THROW((void)combine_allocations(kv, kv), Error);
  EXPECT_THROW((void)weight_target_with_kv(kv, others, 0.05), ConfigError);
}

}  // namespace
}  // namespace caldera::algo
