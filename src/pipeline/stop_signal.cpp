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
