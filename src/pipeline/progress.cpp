#include "pipeline/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace caldera::pipeline {

ProgressStyle default_progress_style(bool is_root) {
  if (!is_root) return ProgressStyle::kOff;
  return ::isatty(STDERR_FILENO) ? ProgressStyle::kBar : ProgressStyle::kLines;
}

ProgressBar::ProgressBar(std::string phase, double total_work, std::string unit_name, ProgressStyle style)
    : phase_(std::move(phase)),
      total_(std::max(total_work, 0.0)),
      unit_name_(std::move(unit_name)),
      style_(style),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::hours(1)) {}

ProgressBar::~ProgressBar() { finish(); }

std::string ProgressBar::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof(buf), "%lds", t);
  return buf;
}

std::string ProgressBar::render(double done, std::string_view detail) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ > 0 ? std::clamp(done / total_, 0.0, 1.0) : 1.0;
  const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : NAN;
  std::string out = "[" + phase_ + "] ";
  if (style_ == ProgressStyle::kBar) {
    constexpr int kWidth = 28;
    const int filled = static_cast<int>(frac * kWidth);
    out += "|";
    for (int i = 0; i < kWidth; ++i) out += i < filled ? "#" : "-";
    out += "| ";
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%5.1f%%  %.0f/%.0f %s  elapsed %s  ETA %s", 100.0 * frac, done, total_,
                unit_name_.c_str(), format_duration(elapsed).c_str(), frac >= 1.0 ? "0s" : format_duration(eta).c_str());
  out += buf;
  if (!detail.empty()) out += "  " + std::string(detail);
  return out;
}

void ProgressBar::update(double done_work, std::string_view detail) {
  done_ = done_work;
  if (style_ == ProgressStyle::kOff || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  const bool complete = total_ > 0 && done_work >= total_;
  if (style_ == ProgressStyle::kBar) {
    if (since < 0.2 && !complete) return;
    std::fprintf(stderr, "\r\033[2K%s", render(done_work, detail).c_str());
  } else {
    if (since < line_interval_s && !complete) return;
    std::fprintf(stderr, "%s\n", render(done_work, detail).c_str());
  }
  std::fflush(stderr);
  last_draw_ = now;
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (style_ == ProgressStyle::kOff) return;
  if (style_ == ProgressStyle::kBar) std::fprintf(stderr, "\r\033[2K%s\n", render(done_, "done").c_str());
  else if (done_ < total_) std::fprintf(stderr, "%s\n", render(done_, "stopped").c_str());
  std::fflush(stderr);
}

JsonlLog::JsonlLog(const std::filesystem::path& file, int rank, std::string host) : rank_(rank), host_(std::move(host)) {
  file_ = std::fopen(file.c_str(), "a");
  if (file_ == nullptr) raise<IoError>(file.string(), ": cannot open the log for appending: ", std::strerror(errno));
  sink_id_ = add_log_sink([this](LogLevel level, std::string_view message) {
    io::JsonValue rec = io::JsonValue::object();
    rec.set("level", std::string(to_string(level)));
    rec.set("msg", std::string(message));
    event("log", rec);
  });
  io::JsonValue start = io::JsonValue::object();
  start.set("host", host_);
  start.set("pid", static_cast<int64_t>(::getpid()));
  event("process_start", start);
}

JsonlLog::~JsonlLog() {
  remove_log_sink(sink_id_);
  if (file_ != nullptr) std::fclose(file_);
}

void JsonlLog::event(std::string_view type, const io::JsonValue& fields) {
  io::JsonValue rec = io::JsonValue::object();
  const double t = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  rec.set("t", std::round(t * 1000.0) / 1000.0);
  rec.set("rank", rank_);
  rec.set("event", std::string(type));
  if (fields.is_object())
    for (const auto& [k, v] : fields.as_object()) rec.set(k, v);
  write_line(rec);
}

void JsonlLog::write_line(const io::JsonValue& record) {
  std::lock_guard lock(mutex_);
  const std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace caldera::pipeline
