// partition_range, schedule_largest_first, schedule_efficiency: invariants over many inputs, the
// hand-worked examples of the contracts in comm/partition.h, and argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "comm/partition.h"
#include "core/error.h"
#include "core/rng.h"

namespace caldera::comm {
namespace {

TEST(PartitionRange, CoversItemsContiguouslyWithSizesDifferingByAtMostOne) {
  for (int64_t n = 0; n <= 40; ++n) {
    for (int ranks = 1; ranks <= 9; ++ranks) {
      int64_t expected_begin = 0;
      int64_t min_size = std::numeric_limits<int64_t>::max();
      int64_t max_size = 0;
      for (int r = 0; r < ranks; ++r) {
        const IndexRange s = partition_range(n, ranks, r);
        EXPECT_EQ(s.begin, expected_begin) << "n=" << n << " ranks=" << ranks << " rank=" << r;
        EXPECT_GE(s.size(), 0);
        if (r > 0) {
          EXPECT_LE(s.size(), partition_range(n, ranks, r - 1).size()) << "larger slices come first";
        }
        expected_begin = s.end;
        min_size = std::min(min_size, s.size());
        max_size = std::max(max_size, s.size());
      }
      EXPECT_EQ(expected_begin, n) << "n=" << n << " ranks=" << ranks;
      EXPECT_LE(max_size - min_size, 1) << "n=" << n << " ranks=" << ranks;
    }
  }
}

TEST(PartitionRange, WorkedExamples) {
  EXPECT_EQ(partition_range(10, 3, 0), (IndexRange{0, 4}));
  EXPECT_EQ(partition_range(10, 3, 1), (IndexRange{4, 7}));
  EXPECT_EQ(partition_range(10, 3, 2), (IndexRange{7, 10}));
  EXPECT_EQ(partition_range(2, 4, 3), (IndexRange{2, 2}));  // more ranks than items: empty tail
  EXPECT_EQ(partition_range(7, 1, 0), (IndexRange{0, 7}));
  // 2^40 items on 3 ranks: no 32-bit overflow.
  const int64_t big = int64_t{1} << 40;
  EXPECT_EQ(partition_range(big, 3, 2).end, big);
}

TEST(PartitionRange, RejectsInvalidArguments) {
  EXPECT_THROW((void)partition_range(-1, 2, 0), Error);
  EXPECT_THROW((void)partition_range(5, 0, 0), Error);
  EXPECT_THROW((void)partition_range(5, 2, 2), Error);
  EXPECT_THROW((void)partition_range(5, 2, -1), Error);
}

std::vector<double> random_costs(int n, uint64_t seed) {
  const Rng stream = Rng(seed).stream({7, static_cast<uint64_t>(n)});
  std::vector<double> costs(static_cast<size_t>(n));
  for (size_t i = 0; i < costs.size(); ++i) costs[i] = 1.0 + 99.0 * stream.uniform(i);
  return costs;
}

void expect_consistent(const Schedule& s, const std::vector<double>& costs, int ranks) {
  ASSERT_EQ(s.units.size(), static_cast<size_t>(ranks));
  ASSERT_EQ(s.loads.size(), static_cast<size_t>(ranks));
  ASSERT_EQ(s.owner.size(), costs.size());
  std::vector<int> seen(costs.size(), 0);
  for (int r = 0; r < ranks; ++r) {
    double load = 0;
    const auto& list = s.units[static_cast<size_t>(r)];
    for (size_t k = 0; k < list.size(); ++k) {
      const auto u = static_cast<size_t>(list[k]);
      ASSERT_LT(u, costs.size());
      ++seen[u];
      EXPECT_EQ(s.owner[u], r);
      load += costs[u];
      if (k > 0) {
        EXPECT_GE(costs[static_cast<size_t>(list[k - 1])], costs[u]) << "largest first within a rank";
      }
    }
    EXPECT_DOUBLE_EQ(s.loads[static_cast<size_t>(r)], load);
  }
  for (size_t u = 0; u < costs.size(); ++u) EXPECT_EQ(seen[u], 1) << "unit " << u;
}

/// Smallest makespan over all assignments (exhaustive; small inputs only).
double optimal_makespan(const std::vector<double>& costs, int ranks) {
  const auto n = costs.size();
  std::vector<int> assign(n, 0);
  double best = std::numeric_limits<double>::infinity();
  for (;;) {
    std::vector<double> loads(static_cast<size_t>(ranks), 0.0);
    for (size_t i = 0; i < n; ++i) loads[static_cast<size_t>(assign[i])] += costs[i];
    best = std::min(best, *std::max_element(loads.begin(), loads.end()));
    size_t i = 0;
    while (i < n && ++assign[i] == ranks) assign[i++] = 0;
    if (i == n) return best;
  }
}

TEST(ScheduleLargestFirst, AssignsEveryUnitOnceAndStaysWithinGrahamBound) {
  for (int n : {0, 1, 2, 5, 8}) {
    for (int ranks : {1, 2, 3}) {
      const auto costs = random_costs(n, 100 + static_cast<uint64_t>(n));
      const Schedule s = schedule_largest_first(costs, ranks);
      expect_consistent(s, costs, ranks);
      if (n == 0) continue;
      const double opt = optimal_makespan(costs, ranks);
      EXPECT_LE(s.makespan(), (4.0 / 3.0 - 1.0 / (3.0 * ranks)) * opt * (1 + 1e-12)) << "n=" << n << " ranks=" << ranks;
      EXPECT_GE(s.makespan(), opt * (1 - 1e-12));
    }
  }
}

TEST(ScheduleLargestFirst, LargeInputsStayWithinListSchedulingBound) {
  const auto costs = random_costs(560, 3);  // 80 layers x 7 matrices
  for (int ranks : {1, 7, 64}) {
    const Schedule s = schedule_largest_first(costs, ranks);
    expect_consistent(s, costs, ranks);
    const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
    const double max_cost = *std::max_element(costs.begin(), costs.end());
    EXPECT_LE(s.makespan(), total / ranks + max_cost);
    EXPECT_GE(s.makespan(), std::max(total / ranks, max_cost) * (1 - 1e-12));
  }
}

TEST(ScheduleLargestFirst, WorkedExampleIsLptNotOptimal) {
  // Graham's tight case for two machines: LPT puts 3|3, then 2|2, then the last 2 on rank 0.
  const std::vector<double> costs = {2, 3, 2, 3, 2};
  const Schedule s = schedule_largest_first(costs, 2);
  EXPECT_EQ(s.units[0], (std::vector<int64_t>{1, 0, 4}));
  EXPECT_EQ(s.units[1], (std::vector<int64_t>{3, 2}));
  EXPECT_DOUBLE_EQ(s.makespan(), 7.0);
  EXPECT_DOUBLE_EQ(optimal_makespan(costs, 2), 6.0);
}

TEST(ScheduleLargestFirst, TiesGoToLowerIndexAndLowerRank) {
  const std::vector<double> costs = {1, 1, 1, 1, 1};
  const Schedule s = schedule_largest_first(costs, 2);
  EXPECT_EQ(s.units[0], (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(s.units[1], (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(s.owner, (std::vector<int>{0, 1, 0, 1, 0}));
}

TEST(ScheduleLargestFirst, IsDeterministic) {
  const auto costs = random_costs(300, 11);
  const Schedule a = schedule_largest_first(costs, 13);
  const Schedule b = schedule_largest_first(costs, 13);
  EXPECT_EQ(a.units, b.units);
  EXPECT_EQ(a.loads, b.loads);
  EXPECT_EQ(a.owner, b.owner);
}

TEST(ScheduleLargestFirst, MoreRanksThanUnitsLeavesIdleRanks) {
  const std::vector<double> costs = {5, 9};
  const Schedule s = schedule_largest_first(costs, 4);
  EXPECT_EQ(s.units[0], (std::vector<int64_t>{1}));
  EXPECT_EQ(s.units[1], (std::vector<int64_t>{0}));
  EXPECT_TRUE(s.units[2].empty());
  EXPECT_TRUE(s.units[3].empty());
  EXPECT_DOUBLE_EQ(s.makespan(), 9.0);
}

TEST(ScheduleLargestFirst, RejectsInvalidArguments) {
  const std::vector<double> ok = {1, 2};
  EXPECT_THROW((void)schedule_largest_first(ok, 0), Error);
  const std::vector<double> negative = {1, -2};
  EXPECT_THROW((void)schedule_largest_first(negative, 2), Error);
  const std::vector<double> nan = {1, std::nan("")};
  EXPECT_THROW((void)schedule_largest_first(nan, 2), Error);
  const std::vector<double> inf = {std::numeric_limits<double>::infinity()};
  EXPECT_THROW((void)schedule_largest_first(inf, 2), Error);
}

TEST(ScheduleEfficiency, IsTotalOverRanksTimesMax) {
  EXPECT_DOUBLE_EQ(schedule_efficiency(std::vector<double>{4, 4, 4}), 1.0);
  EXPECT_DOUBLE_EQ(schedule_efficiency(std::vector<double>{2, 1}), 0.75);
  EXPECT_DOUBLE_EQ(schedule_efficiency(std::vector<double>{8, 0, 0, 0}), 0.25);
  EXPECT_DOUBLE_EQ(schedule_efficiency(std::vector<double>{0, 0}), 1.0);
  const auto costs = random_costs(200, 5);
  const Schedule s = schedule_largest_first(costs, 8);
  const double eff = schedule_efficiency(s.loads);
  EXPECT_GT(eff, 0.95);  // 200 units of cost 1-100 on 8 ranks balance to within a few percent
  EXPECT_LE(eff, 1.0);
}

TEST(ScheduleEfficiency, RejectsInvalidLoads) {
  EXPECT_THROW((void)schedule_efficiency(std::vector<double>{}), Error);
  EXPECT_THROW((void)schedule_efficiency(std::vector<double>{1, -1}), Error);
  EXPECT_THROW((void)schedule_efficiency(std::vector<double>{1, std::nan("")}), Error);
}

}  // namespace
}  // namespace caldera::comm
