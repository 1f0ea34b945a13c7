#!/usr/bin/env bash
# Stand-in for caldera-dist in the sbatch template test: in the first allocation every task waits
# for SIGUSR1 (the template's --signal) and exits 75 as caldera-dist does after checkpointing; in
# the requeued allocation (SLURM_RESTART_COUNT >= 1) every task finishes at once with exit 0.
restart=${SLURM_RESTART_COUNT:-0}
task=${SLURM_PROCID:-?}
echo "fake-caldera-dist: task $task restart $restart args: $*"
if [[ $restart -eq 0 ]]; then
  trap 'echo "fake-caldera-dist: task $task got USR1, checkpointing"; exit 75' USR1
  # As caldera-dist does, SIGTERM is a stop request too: when the first task's exit 75 makes srun
  # (--kill-on-bad-exit) terminate the others before their USR1 trap ran, they still exit 75, and
  # srun's exit code stays 75 (a task killed by the signal would make it 143: no requeue).
  trap 'echo "fake-caldera-dist: task $task got TERM, checkpointing"; exit 75' TERM
  for _ in $(seq 1800); do sleep 0.1; done  # short sleeps so the trap runs promptly
  echo "fake-caldera-dist: task $task saw no SIGUSR1 within 180 s"
  exit 1
fi
echo "fake-caldera-dist: task $task resumed and finished"
exit 0
