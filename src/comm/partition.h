// Pure work-splitting functions (DESIGN §4, style C11): no communication, no global state, so every
// rank computes the same answer from the same input and each function is unit-tested without MPI.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace caldera::comm {

/// Half-open index range [begin, end).
struct IndexRange {
  int64_t begin = 0;
  int64_t end = 0;
  [[nodiscard]] int64_t size() const noexcept { return end - begin; }
  bool operator==(const IndexRange&) const = default;
};

/// Contiguous balanced slice of n_items for `rank` of n_ranks (phase 1: calibration sequences).
/// Slices are consecutive in rank order and cover [0, n_items) exactly; the first
/// n_items % n_ranks ranks get one item more than the others (sizes differ by at most one; ranks
/// beyond n_items get empty slices). Throws Error unless n_items >= 0, n_ranks >= 1 and
/// 0 <= rank < n_ranks.
[[nodiscard]] IndexRange partition_range(int64_t n_items, int n_ranks, int rank);

/// Static assignment of units of work to ranks.
struct Schedule {
  /// units[r]: indices (into the cost array) of the units rank r processes, in processing order
  /// (largest first).
  std::vector<std::vector<int64_t>> units;
  /// loads[r]: sum of the costs of units[r].
  std::vector<double> loads;
  /// owner[i]: the rank that processes unit i.
  std::vector<int> owner;

  /// Largest per-rank load (the predicted time of the phase when costs are times).
  [[nodiscard]] double makespan() const noexcept;
};

/// Longest-processing-time-first list scheduling (phase 2: units = (layer, matrix) with estimated
/// costs). Units are taken by decreasing cost, ties broken by lower index; each goes to the rank
/// with the smallest load so far, ties broken by lower rank. Deterministic: the same costs and
/// n_ranks give the same schedule on every rank and every run. LPT's makespan is within 4/3 of the
/// optimum (Graham 1969). Throws Error unless n_ranks >= 1 and every cost is finite and >= 0.
[[nodiscard]] Schedule schedule_largest_first(std::span<const double> costs, int n_ranks);

/// Load balance of a schedule: total / (n_ranks * max load), in (0, 1]; 1 means perfectly even.
/// `loads` has one entry per rank. All-zero loads give 1. Throws Error when loads is empty or an
/// entry is negative or not finite.
[[nodiscard]] double schedule_efficiency(std::span<const double> loads);

}  // namespace caldera::comm
