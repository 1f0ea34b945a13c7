#include "comm/partition.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <utility>

#include "core/error.h"

namespace caldera::comm {

IndexRange partition_range(int64_t n_items, int n_ranks, int rank) {
  CALDERA_CHECK(n_items >= 0, "partition_range: n_items must be >= 0, got ", n_items);
  CALDERA_CHECK(n_ranks >= 1, "partition_range: n_ranks must be >= 1, got ", n_ranks);
  CALDERA_CHECK(rank >= 0 && rank < n_ranks, "partition_range: rank ", rank, " outside [0, ", n_ranks, ")");
  const int64_t base = n_items / n_ranks;
  const int64_t extra = n_items % n_ranks;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return IndexRange{begin, begin + base + (rank < extra ? 1 : 0)};
}

double Schedule::makespan() const noexcept {
  return loads.empty() ? 0.0 : *std::max_element(loads.begin(), loads.end());
}

Schedule schedule_largest_first(std::span<const double> costs, int n_ranks) {
  CALDERA_CHECK(n_ranks >= 1, "schedule_largest_first: n_ranks must be >= 1, got ", n_ranks);
  for (size_t i = 0; i < costs.size(); ++i)
    CALDERA_CHECK(std::isfinite(costs[i]) && costs[i] >= 0, "schedule_largest_first: cost of unit ", i,
                  " must be finite and >= 0, got ", costs[i]);

  std::vector<int64_t> order(costs.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return costs[static_cast<size_t>(a)] > costs[static_cast<size_t>(b)];
  });

  Schedule s;
  s.units.resize(static_cast<size_t>(n_ranks));
  s.loads.assign(static_cast<size_t>(n_ranks), 0.0);
  s.owner.assign(costs.size(), -1);
  // Min-heap on (load, rank): the least-loaded rank, the lowest index among equals.
  using Slot = std::pair<double, int>;
  std::priority_queue<Slot, std::vector<Slot>, std::greater<>> heap;
  for (int r = 0; r < n_ranks; ++r) heap.emplace(0.0, r);
  for (int64_t unit : order) {
    auto [load, r] = heap.top();
    heap.pop();
    const auto ri = static_cast<size_t>(r);
    s.units[ri].push_back(unit);
    s.loads[ri] = load + costs[static_cast<size_t>(unit)];
    s.owner[static_cast<size_t>(unit)] = r;
    heap.emplace(s.loads[ri], r);
  }
  return s;
}

double schedule_efficiency(std::span<const double> loads) {
  CALDERA_CHECK(!loads.empty(), "schedule_efficiency: expected one load per rank, got none");
  double total = 0;
  double max_load = 0;
  for (size_t r = 0; r < loads.size(); ++r) {
    CALDERA_CHECK(std::isfinite(loads[r]) && loads[r] >= 0, "schedule_efficiency: load of rank ", r,
                  " must be finite and >= 0, got ", loads[r]);
    total += loads[r];
    max_load = std::max(max_load, loads[r]);
  }
  if (max_load == 0) return 1.0;
  return total / (static_cast<double>(loads.size()) * max_load);
}

}  // namespace caldera::comm
