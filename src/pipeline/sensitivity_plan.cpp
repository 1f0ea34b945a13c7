// allocate_low_rank_ranks and allocation_json (pipeline/sensitivity.h): the rank-allocation step
// of the low-rank methods, combining the KV-cache and weight searches (spec §5.2, §6).
#include <algorithm>

#include "comm/partition.h"
#include "core/error.h"
#include "core/log.h"
#include "pipeline/sensitivity.h"

namespace caldera::pipeline {
namespace {

using algo::MatrixShape;
using algo::RankAllocation;
using algo::RankSearchMode;

/// Σ cached / Σ d_kv over every k/v projection of `all` (those the allocation does not list are
/// dense and cache d_kv floats per token).
double overall_kv_cache_ratio(const RankAllocation& allocation, const std::vector<MatrixShape>& all) {
  double cached = 0, original = 0;
  for (const auto& s : all) {
    if (!s.is_kv_projection()) continue;
    original += static_cast<double>(s.rows);
    const algo::MatrixAllocation* m = allocation.find(s.layer, s.matrix);
    cached += static_cast<double>(m != nullptr ? m->cached_per_token() : s.rows);
  }
  return original > 0 ? cached / original : 1.0;
}

/// Weight-mode allocation of `others` at `target`, all dense when the target is ≥ 1.
RankAllocation weights_at(const std::vector<MatrixShape>& others, double target,
                          const algo::SensitivityTable* table) {
  if (target >= 1.0 || table == nullptr)
    return algo::uniform_allocation(others, RankSearchMode::kWeights, std::min(target, 1.0));
  return algo::allocate_ranks(*table, target);
}

}  // namespace

LowRankPlan allocate_low_rank_ranks(linalg::Backend& backend, comm::Communicator& world,
                                    const model::WeightSource& source, std::span<const uint32_t> calib_tokens,
                                    const InputStatsProvider& stats, const algo::AsvdParams& params,
                                    const SensitivityOptions& options) {
  params.validate();
  const std::vector<MatrixShape> all = model_matrices(source.config());
  std::vector<MatrixShape> kv_shapes, others;
  for (const auto& s : all) {
    if (params.kv_search() && s.is_kv_projection()) {
      kv_shapes.push_back(s);
    } else {
      others.push_back(s);
    }
  }
  LowRankPlan plan;
  std::optional<RankAllocation> kv, weights;
  if (params.rank_search == algo::RankSearch::kUniform) {
    if (params.kv_search()) kv = algo::uniform_allocation(kv_shapes, RankSearchMode::kKvCache, params.kv_ratio);
    if (params.weight_search()) {
      const double t = kv ? algo::weight_target_with_kv(*kv, others, params.param_ratio) : params.param_ratio;
      weights = weights_at(others, t, nullptr);
    }
  } else {
    const int64_t seq_len = options.forward.seq_len;
    const int64_t n_seq = params.sensitivity_sequences;
    const int64_t available = static_cast<int64_t>(calib_tokens.size()) / seq_len;
    CALDERA_CHECK_AS(ConfigError, available >= n_seq, "--sensitivity-seqs ", n_seq, ": the calibration file holds only ",
                     available, " sequences of ", seq_len, " tokens");
    const algo::AsvdParams sens = params.sensitivity_params();
    const comm::IndexRange mine = comm::partition_range(n_seq, world.size(), world.rank());
    const auto local = calib_tokens.subspan(static_cast<size_t>(mine.begin * seq_len),
                                            static_cast<size_t>(mine.size() * seq_len));
    if (params.kv_search()) {
      plan.kv_table = compute_sensitivity(backend, world, source, local, n_seq, stats, sens, RankSearchMode::kKvCache,
                                          kv_shapes, options);
      kv = algo::allocate_ranks(*plan.kv_table, params.kv_ratio);
    }
    if (params.weight_search()) {
      const double t = kv ? algo::weight_target_with_kv(*kv, others, params.param_ratio) : params.param_ratio;
      if (t < 1.0)
        plan.weight_table = compute_sensitivity(backend, world, source, local, n_seq, stats, sens,
                                                RankSearchMode::kWeights, others, options);
      weights = weights_at(others, t, plan.weight_table ? &*plan.weight_table : nullptr);
    }
  }
  if (kv && weights) {
    plan.allocation = algo::combine_allocations(*kv, *weights);
  } else {
    plan.allocation = kv ? *kv : *weights;
  }
  plan.param_ratio = algo::overall_param_ratio(plan.allocation, all);
  plan.kv_cache_ratio = overall_kv_cache_ratio(plan.allocation, all);
  if (!plan.allocation.reachable)
    log_warn("rank search: target ", plan.allocation.target, " is out of reach of the candidate ratios; achieved ",
             plan.allocation.achieved);
  int64_t compressed = 0;
  for (const auto& m : plan.allocation.matrices) compressed += m.compressed() ? 1 : 0;
  log_info("rank allocation (", algo::to_string(params.method), ", ", algo::to_string(params.rank_search), "): ",
           compressed, " of ", all.size(), " matrices factorized; param ratio ", plan.param_ratio, " (target ",
           params.param_ratio, "), KV-cache ratio ", plan.kv_cache_ratio, " (target ", params.kv_ratio,
           "); searched quantity ", plan.allocation.achieved, " within ", plan.allocation.step, " of its target");
  return plan;
}

io::JsonValue allocation_json(const RankAllocation& a) {
  io::JsonValue j = io::JsonValue::object();
  j.set("mode", std::string(algo::to_string(a.mode)));
  j.set("target", a.target);
  j.set("achieved", a.achieved);
  j.set("step", a.step);
  j.set("reachable", a.reachable);
  j.set("param_ratio", a.param_ratio);
  j.set("kv_cache_ratio", a.kv_cache_ratio);
  j.set("threshold_index", a.threshold_index);
  j.set("list_size", a.list_size);
  io::JsonValue ranks = io::JsonValue::object();
  io::JsonValue ms = io::JsonValue::array();
  for (const auto& m : a.matrices) {
    io::JsonValue e = io::JsonValue::object();
    e.set("name", m.shape.name());
    e.set("rows", m.shape.rows);
    e.set("cols", m.shape.cols);
    e.set("ratio", m.ratio);
    e.set("rank", m.compressed() ? io::JsonValue(m.rank) : io::JsonValue());
    ms.push_back(e);
    if (m.compressed()) ranks.set(m.shape.name(), m.rank);
  }
  j.set("matrices", ms);
  j.set("truncation_ranks", ranks);
  return j;
}

}  // namespace caldera::pipeline
