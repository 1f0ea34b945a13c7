#include "algo/rank_search.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

#include "algo/lowrank.h"
#include "core/error.h"

namespace caldera::algo {
namespace {

double sentinel_ratio(RankSearchMode mode, const MatrixShape& s) {
  return mode == RankSearchMode::kWeights ? 1.0 : full_rank_param_ratio(s.rows, s.cols);
}

MatrixAllocation dense_allocation(RankSearchMode mode, const MatrixShape& s) {
  MatrixAllocation a;
  a.shape = s;
  a.ratio = sentinel_ratio(mode, s);
  a.rank = MatrixAllocation::kDense;
  return a;
}

void check_target(RankSearchMode mode, double target) {
  const char* option = mode == RankSearchMode::kWeights ? "--param-ratio" : "--kv-ratio";
  CALDERA_CHECK_AS(ConfigError, std::isfinite(target) && target > 0.0 && target <= 1.0, option,
                   ": a target in (0, 1] expected, found ", target);
}

}  // namespace

int64_t compressing_rank(RankSearchMode mode, const MatrixShape& s, double ratio) {
  if (mode == RankSearchMode::kWeights && ratio >= 1.0) return MatrixAllocation::kDense;
  const int64_t r = rank_for_param_ratio(s.rows, s.cols, ratio);
  if (mode == RankSearchMode::kKvCache && r >= std::min(s.rows, s.cols)) return MatrixAllocation::kDense;
  return r;
}

void RankAllocation::update_summary() {
  RankAllocation& a = *this;
  double params = 0, numel = 0, cached = 0, original = 0, nominal = 0;
  for (const auto& m : a.matrices) {
    const double mn = static_cast<double>(m.shape.rows) * static_cast<double>(m.shape.cols);
    numel += mn;
    params += static_cast<double>(m.params());
    nominal += mn * (m.compressed() ? m.ratio : 1.0);
    if (m.shape.is_kv_projection()) {
      cached += static_cast<double>(m.cached_per_token());
      original += static_cast<double>(m.shape.rows);
    }
  }
  a.param_ratio = numel > 0 ? params / numel : 1.0;
  a.kv_cache_ratio = original > 0 ? cached / original : 1.0;
  a.achieved = a.mode == RankSearchMode::kWeights ? (numel > 0 ? nominal / numel : 1.0) : a.kv_cache_ratio;
}

namespace {

struct ListEntry {
  size_t matrix;
  size_t candidate;
  double ppl;
};

/// Evaluates config(k) of spec §5.2 for the sorted list.
class ConfigEvaluator {
 public:
  ConfigEvaluator(const SensitivityTable& table, const std::vector<ListEntry>& list) : table_(table), list_(list) {}

  RankAllocation config(int64_t k) const {
    std::vector<int64_t> best(table_.matrices.size(), -1);  // smallest admitted candidate index
    for (size_t i = static_cast<size_t>(std::max<int64_t>(k, 0)); i < list_.size(); ++i) {
      auto& b = best[list_[i].matrix];
      if (b < 0 || static_cast<int64_t>(list_[i].candidate) < b) b = static_cast<int64_t>(list_[i].candidate);
    }
    RankAllocation a;
    a.mode = table_.mode;
    for (size_t i = 0; i < table_.matrices.size(); ++i) {
      const MatrixShape& s = table_.matrices[i];
      if (best[i] < 0) {
        a.matrices.push_back(dense_allocation(table_.mode, s));
        continue;
      }
      MatrixAllocation m;
      m.shape = s;
      m.ratio = table_.candidates[static_cast<size_t>(best[i])];
      m.rank = compressing_rank(table_.mode, s, m.ratio);
      a.matrices.push_back(std::move(m));
    }
    a.update_summary();
    return a;
  }
  double quantity(int64_t k) const { return config(k).achieved; }

 private:
  const SensitivityTable& table_;
  const std::vector<ListEntry>& list_;
};

}  // namespace

std::string_view to_string(RankSearchMode mode) noexcept {
  return mode == RankSearchMode::kKvCache ? "kv-cache" : "weights";
}

std::string MatrixShape::name() const {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "L%03d.", layer);
  std::string out(buf);
  out += matrix;
  return out;
}

bool MatrixShape::is_kv_projection() const { return matrix == "self_attn.k_proj" || matrix == "self_attn.v_proj"; }

std::vector<double> default_candidates(RankSearchMode mode) {
  std::vector<double> c;
  if (mode == RankSearchMode::kWeights) {
    for (int i = 4; i <= 9; ++i) c.push_back(i / 10.0);
  } else {
    for (int i = 1; i <= 19; ++i) c.push_back(i / 10.0);
  }
  return c;
}

void SensitivityTable::validate() const {
  CALDERA_CHECK(!candidates.empty(), "sensitivity table: no candidate ratios");
  for (size_t c = 0; c < candidates.size(); ++c) {
    CALDERA_CHECK(std::isfinite(candidates[c]) && candidates[c] > 0.0, "sensitivity table: candidate ", c,
                  " must be a positive ratio, found ", candidates[c]);
    CALDERA_CHECK(c == 0 || candidates[c] > candidates[c - 1], "sensitivity table: candidates must be strictly ",
                  "ascending, found ", candidates[c - 1], " then ", candidates[c]);
  }
  CALDERA_CHECK(ppl.size() == matrices.size() * candidates.size(), "sensitivity table: ", ppl.size(),
                " perplexities for ", matrices.size(), " matrices × ", candidates.size(), " candidates");
  std::set<std::string> names;
  for (const auto& m : matrices) {
    CALDERA_CHECK(m.rows > 0 && m.cols > 0, "sensitivity table: matrix ", m.name(), " has shape ", m.rows, "x", m.cols);
    CALDERA_CHECK(mode == RankSearchMode::kWeights || m.is_kv_projection(), "sensitivity table: kv-cache mode ",
                  "searches only k_proj/v_proj, found ", m.name());
    CALDERA_CHECK(names.insert(m.name()).second, "sensitivity table: matrix ", m.name(), " listed twice");
  }
}

int64_t MatrixAllocation::params() const {
  return compressed() ? low_rank_params(shape.rows, shape.cols, rank) : shape.rows * shape.cols;
}

int64_t MatrixAllocation::cached_per_token() const { return compressed() ? rank : shape.rows; }

const MatrixAllocation* RankAllocation::find(int layer, std::string_view matrix) const {
  for (const auto& m : matrices)
    if (m.shape.layer == layer && m.shape.matrix == matrix) return &m;
  return nullptr;
}

RankAllocation allocate_ranks(const SensitivityTable& table, double target) {
  table.validate();
  check_target(table.mode, target);
  std::vector<ListEntry> list;
  for (size_t i = 0; i < table.matrices.size(); ++i) {
    for (size_t c = 0; c < table.candidates.size(); ++c) {
      const double p = table.at(i, c);
      if (!std::isfinite(p)) continue;
      if (compressing_rank(table.mode, table.matrices[i], table.candidates[c]) == MatrixAllocation::kDense) continue;
      list.push_back({i, c, p});
    }
  }
  // Most harmful first; ties broken by position so the result never depends on sort internals.
  std::sort(list.begin(), list.end(), [](const ListEntry& a, const ListEntry& b) {
    if (a.ppl != b.ppl) return a.ppl > b.ppl;
    if (a.matrix != b.matrix) return a.matrix < b.matrix;
    return a.candidate < b.candidate;
  });
  const ConfigEvaluator eval(table, list);
  if (list.empty()) {
    RankAllocation a = eval.config(0);
    a.target = target;
    a.reachable = a.achieved <= target;
    return a;
  }
  // Spec §5.2: first k with R(k) > target (R is non-decreasing in k).
  int64_t low = 0, high = static_cast<int64_t>(list.size()) - 1;
  while (low < high) {
    const int64_t mid = (low + high) / 2;
    if (eval.quantity(mid) > target) {
      high = mid;
    } else {
      low = mid + 1;
    }
  }
  RankAllocation a = eval.config(low);
  a.target = target;
  a.threshold_index = low;
  a.list_size = static_cast<int64_t>(list.size());
  a.step = low > 0 ? a.achieved - eval.quantity(low - 1) : 0.0;
  // Out of reach: even admitting every pair leaves R above the target (low = 0), or R never
  // exceeds it (low = last index with R(low) ≤ target: more compressed than asked, by ≤ one step).
  a.reachable = !(low == 0 && a.achieved > target);
  return a;
}

RankAllocation uniform_allocation(const std::vector<MatrixShape>& matrices, RankSearchMode mode, double target) {
  CALDERA_CHECK_AS(ConfigError, std::isfinite(target) && target > 0.0, "--param-ratio: a positive ratio expected, found ",
                   target);
  if (mode == RankSearchMode::kKvCache) check_target(mode, target);
  RankAllocation a;
  a.mode = mode;
  a.target = target;
  for (const auto& s : matrices) {
    CALDERA_CHECK(s.rows > 0 && s.cols > 0, "uniform_allocation: matrix ", s.name(), " has shape ", s.rows, "x", s.cols);
    if (mode == RankSearchMode::kKvCache) {
      if (!s.is_kv_projection()) continue;
      const int64_t r = static_cast<int64_t>(std::floor(target * static_cast<double>(s.rows)));
      if (r >= std::min(s.rows, s.cols)) {
        a.matrices.push_back(dense_allocation(mode, s));
      } else {
        MatrixAllocation m;
        m.shape = s;
        m.rank = r;
        m.ratio = static_cast<double>(low_rank_params(s.rows, s.cols, r)) / static_cast<double>(s.rows * s.cols);
        a.matrices.push_back(std::move(m));
      }
      continue;
    }
    MatrixAllocation m;
    m.shape = s;
    m.ratio = target >= 1.0 ? 1.0 : target;
    m.rank = compressing_rank(mode, s, target);
    a.matrices.push_back(std::move(m));
  }
  a.update_summary();
  a.reachable = true;
  return a;
}

double overall_param_ratio(const RankAllocation& allocation, const std::vector<MatrixShape>& all) {
  double params = 0, numel = 0;
  for (const auto& s : all) {
    const double mn = static_cast<double>(s.rows) * static_cast<double>(s.cols);
    numel += mn;
    const MatrixAllocation* m = allocation.find(s.layer, s.matrix);
    params += m != nullptr ? static_cast<double>(m->params()) : mn;
  }
  return numel > 0 ? params / numel : 1.0;
}

double weight_target_with_kv(const RankAllocation& kv, const std::vector<MatrixShape>& others, double overall_target) {
  check_target(RankSearchMode::kWeights, overall_target);
  double n_kv = 0, p_kv = 0, n_others = 0;
  for (const auto& m : kv.matrices) {
    n_kv += static_cast<double>(m.shape.rows) * static_cast<double>(m.shape.cols);
    p_kv += static_cast<double>(m.params());
  }
  for (const auto& s : others) n_others += static_cast<double>(s.rows) * static_cast<double>(s.cols);
  CALDERA_CHECK(n_others > 0, "weight_target_with_kv: no matrices besides the k/v projections");
  const double t = (overall_target * (n_kv + n_others) - p_kv) / n_others;
  CALDERA_CHECK_AS(ConfigError, t > 0.0, "--param-ratio ", overall_target, ": the k/v projections factorized for ",
                   "--kv-ratio keep ", p_kv, " parameters, more than the whole budget of ",
                   overall_target * (n_kv + n_others));
  return t;
}

RankAllocation combine_allocations(const RankAllocation& kv, const RankAllocation& weights) {
  RankAllocation a = weights;
  a.mode = RankSearchMode::kWeights;
  for (const auto& m : kv.matrices) {
    CALDERA_CHECK(a.find(m.shape.layer, m.shape.matrix) == nullptr, "combine_allocations: ", m.shape.name(),
                  " is in both allocations");
    a.matrices.push_back(m);
  }
  a.update_summary();
  return a;
}

}  // namespace caldera::algo
