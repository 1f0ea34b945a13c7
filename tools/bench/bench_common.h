// Helpers shared by the benchmark programs of tools/bench: hand-written argv parsing (no
// Boost.Program_options, so they also build on a GPU machine that lacks it) and median timing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/timer.h"
#include "linalg/backend.h"

namespace caldera::bench {

/// The non-empty items of a comma-separated list.
inline std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> parts;
  std::string item;
  std::istringstream in{std::string(text)};
  while (std::getline(in, item, ','))
    if (!item.empty()) parts.push_back(item);
  return parts;
}

/// `text` as an integer >= min_value; otherwise a ConfigError naming `option`.
inline int64_t parse_int(std::string_view option, std::string_view text, int64_t min_value) {
  try {
    size_t used = 0;
    const long long v = std::stoll(std::string(text), &used);
    if (used == text.size() && v >= min_value) return v;
  } catch (const std::exception&) {
    // reported below with the option's name
  }
  raise<ConfigError>(option, ": expected an integer >= ", min_value, ", got '", text, "'");
}

/// Runs a program's body: its exit code, or "<program>: <message>" on stderr and 2 for bad
/// options (ConfigError), 1 for any other error.
template <class Body>
int guarded_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const ConfigError& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 1;
  }
}

/// The median of the values (the mean of the two middle ones for an even count); 0 when empty.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t k = v.size();
  return k % 2 == 1 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

/// Median over `reps` timed runs after `warmup` untimed ones: `reset` (untimed) restores the
/// inputs, `run` is timed up to the backend's synchronize().
inline double median_seconds(linalg::Backend& be, int warmup, int reps, const std::function<void()>& reset,
                             const std::function<void()>& run) {
  std::vector<double> times;
  for (int i = 0; i < warmup + reps; ++i) {
    reset();
    be.synchronize();
    const Stopwatch watch;
    run();
    be.synchronize();
    if (i >= warmup) times.push_back(watch.elapsed_s());
  }
  return median(std::move(times));
}

}  // namespace caldera::bench
