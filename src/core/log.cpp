#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

namespace caldera {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_rank{0};
std::atomic<int> g_world{1};
std::atomic<bool> g_all_ranks_info{false};
std::mutex g_mutex;
std::map<int, LogSink>& sinks() {
  static std::map<int, LogSink> s;
  return s;
}
int g_next_sink = 1;
const auto g_start = std::chrono::steady_clock::now();
}  // namespace

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}

LogLevel parse_log_level(std::string_view text) {
  for (auto level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError})
    if (text == to_string(level)) return level;
  raise<ConfigError>("log level: expected debug|info|warn|error, got '", text, "'");
}

void set_log_level(LogLevel level) noexcept { g_level = static_cast<int>(level); }
LogLevel log_level() noexcept { return static_cast<LogLevel>(g_level.load()); }

void set_log_rank(int rank, int world_size, bool all_ranks_info) noexcept {
  g_rank = rank;
  g_world = world_size;
  g_all_ranks_info = all_ranks_info;
}

int add_log_sink(LogSink sink) {
  std::lock_guard lock(g_mutex);
  int id = g_next_sink++;
  sinks()[id] = std::move(sink);
  return id;
}

void remove_log_sink(int id) noexcept {
  std::lock_guard lock(g_mutex);
  sinks().erase(id);
}

namespace detail {
void log_emit(LogLevel level, std::string message) {
  std::lock_guard lock(g_mutex);
  for (auto& [id, sink] : sinks()) sink(level, message);
  const bool print = g_rank == 0 || level >= LogLevel::kWarn || g_all_ranks_info;
  if (!print) return;
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  if (g_world > 1)
    std::fprintf(stderr, "[caldera r%d %8.1fs] %s: %s\n", g_rank.load(), t, to_string(level).data(),
                 message.c_str());
  else
    std::fprintf(stderr, "[caldera %8.1fs] %s: %s\n", t, to_string(level).data(), message.c_str());
  std::fflush(stderr);
}
}  // namespace detail

}  // namespace caldera
