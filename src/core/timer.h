// Wall-clock stopwatch.
#pragma once

#include <chrono>

namespace caldera {

class Stopwatch {
 public:
  Stopwatch() : start_(clock::now()) {}
  void reset() { start_ = clock::now(); }
  /// Seconds since construction or the last reset().
  double elapsed_s() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point start_;
};

}  // namespace caldera
