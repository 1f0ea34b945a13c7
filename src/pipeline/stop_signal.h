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
