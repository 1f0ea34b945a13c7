#include "pipeline/stop_signal.h"

#include <atomic>
#include <csignal>

namespace caldera::pipeline {
namespace {
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal flag must be lock-free");

extern "C" void on_stop_signal(int signal_number) { g_signal.store(signal_number, std::memory_order_relaxed); }
}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool stop_signal_received() noexcept { return g_signal.load(std::memory_order_relaxed) != 0; }
int stop_signal_number() noexcept { return g_signal.load(std::memory_order_relaxed); }
void set_stop_signal_for_testing(int signal_number) noexcept { g_signal.store(signal_number); }

}  // namespace caldera::pipeline

#include <fstream>

namespace caldera::pipeline {

StopCoordinator::StopCoordinator(std::filesystem::path stop_file) : stop_file_(std::move(stop_file)) {}

bool StopCoordinator::requested() {
  if (seen_) return true;
  if (stop_signal_received()) {
    seen_ = true;
    std::ofstream(stop_file_) << "signal " << stop_signal_number() << "\n";
    return true;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - last_poll_ < std::chrono::seconds(1)) return false;
  last_poll_ = now;
  std::error_code ec;
  seen_ = std::filesystem::exists(stop_file_, ec);
  return seen_;
}

void StopCoordinator::clear() const noexcept {
  std::error_code ec;
  std::filesystem::remove(stop_file_, ec);
}

}  // namespace caldera::pipeline
