// Progress reporting: a bar with ETA per phase on rank 0 when stderr is a terminal, plain lines
// otherwise; and the per-rank JSON-lines log in the workdir (logs/rank-NNNN.jsonl), which receives
// every log message of its rank plus structured events (phase start/end, unit done, timings).
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "io/json_value.h"

namespace caldera::pipeline {

enum class ProgressStyle { kOff, kBar, kLines };

/// Bar when `is_root` and stderr is a terminal, lines when `is_root` otherwise, off elsewhere.
ProgressStyle default_progress_style(bool is_root);

class ProgressBar {
 public:
  /// `total_work` in any unit (tokens, units, estimated cost); `unit_name` labels the counts.
  ProgressBar(std::string phase, double total_work, std::string unit_name, ProgressStyle style);
  ~ProgressBar();
  /// Reports cumulative work done; redraws the bar at most 5 times a second, or prints a line at
  /// most every `line_interval_s` (and always at 100 %).
  void update(double done_work, std::string_view detail = {});
  /// Prints the final state and elapsed time (idempotent; also called by the destructor).
  void finish();
  /// "3m12s", "1h02m" or "12s".
  static std::string format_duration(double seconds);

  double line_interval_s = 30.0;

 private:
  std::string render(double done, std::string_view detail) const;
  std::string phase_;
  double total_;
  std::string unit_name_;
  ProgressStyle style_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  double done_ = 0;
  bool finished_ = false;
};

/// logs/rank-NNNN.jsonl: one JSON object per line, appended, flushed per line.
class JsonlLog {
 public:
  JsonlLog(const std::filesystem::path& file, int rank, std::string host);
  ~JsonlLog();
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  /// Appends {"t": <unix seconds>, "rank": r, "event": type, ...fields}.
  void event(std::string_view type, const io::JsonValue& fields = io::JsonValue::object());

 private:
  void write_line(const io::JsonValue& record);
  std::mutex mutex_;
  std::FILE* file_ = nullptr;
  int rank_;
  std::string host_;
  int sink_id_ = 0;
};

}  // namespace caldera::pipeline
