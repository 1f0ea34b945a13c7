// SIGUSR1 / SIGTERM handling for the safe-stop contract (DESIGN §3): SLURM sends SIGUSR1 ahead of
// the time limit (--signal=USR1@300) and SIGTERM on cancel; either one only sets a flag. Ranks
// agree on the flag at the next safe point (between layers, units or inner iterations), save their
// state and exit with code 75, which the sbatch template turns into `scontrol requeue`.
#pragma once

namespace caldera::pipeline {

/// Installs the handlers (idempotent). The handler is async-signal-safe: it stores the signal
/// number in a lock-free atomic and returns.
void install_stop_handlers();

/// True once SIGUSR1 or SIGTERM arrived in this process (local view; ranks must agree through
/// the communicator before acting).
bool stop_signal_received() noexcept;

/// The signal that arrived (0 if none).
int stop_signal_number() noexcept;

/// Test hook: behaves as if `signal_number` had arrived (0 clears).
void set_stop_signal_for_testing(int signal_number) noexcept;

}  // namespace caldera::pipeline

#include <chrono>
#include <filesystem>

namespace caldera::pipeline {

/// Spreads a stop request to every rank without a collective: a rank that received SIGUSR1/SIGTERM
/// creates `stop_file` (in the shared workdir); every rank polls its own signal flag and, at most
/// once a second, the file. Ranks then finish at their next safe point and agree at the end of the
/// phase (Communicator::any), so ranks that process different numbers of units never deadlock.
class StopCoordinator {
 public:
  explicit StopCoordinator(std::filesystem::path stop_file);
  /// True once this process got a stop signal or another rank published the request.
  bool requested();
  /// Removes the request file (at the start of a run).
  void clear() const noexcept;

 private:
  std::filesystem::path stop_file_;
  std::chrono::steady_clock::time_point last_poll_{};
  bool seen_ = false;
};

}  // namespace caldera::pipeline
