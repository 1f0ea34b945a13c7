// Logging: human-readable lines on stderr, plus optional sinks (the pipeline adds a per-rank
// JSON-lines file). Rank-aware once set_log_rank() is called; by default every rank prints
// warnings and errors and only rank 0 prints info.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace caldera {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

std::string_view to_string(LogLevel level) noexcept;
/// Parses "debug", "info", "warn", "error"; throws ConfigError otherwise.
LogLevel parse_log_level(std::string_view text);

void set_log_level(LogLevel level) noexcept;
LogLevel log_level() noexcept;
/// Identifies this process in log lines; ranks > 0 print info lines only if `all_ranks_info`.
void set_log_rank(int rank, int world_size, bool all_ranks_info = false) noexcept;

/// A sink receives every message at or above the log level, on every rank (not only those printed).
using LogSink = std::function<void(LogLevel level, std::string_view message)>;
/// Returns an id for remove_log_sink.
int add_log_sink(LogSink sink);
void remove_log_sink(int id) noexcept;

namespace detail {
void log_emit(LogLevel level, std::string message);
}

template <class... Args>
void log_debug(const Args&... args) {
  if (log_level() <= LogLevel::kDebug) detail::log_emit(LogLevel::kDebug, detail::concat(args...));
}
template <class... Args>
void log_info(const Args&... args) {
  if (log_level() <= LogLevel::kInfo) detail::log_emit(LogLevel::kInfo, detail::concat(args...));
}
template <class... Args>
void log_warn(const Args&... args) {
  if (log_level() <= LogLevel::kWarn) detail::log_emit(LogLevel::kWarn, detail::concat(args...));
}
template <class... Args>
void log_error(const Args&... args) {
  detail::log_emit(LogLevel::kError, detail::concat(args...));
}

}  // namespace caldera
