#!/usr/bin/env bash
# The single-node sbatch template end to end on the local cluster, with a stand-in for caldera-dist
# (fake_caldera_dist.sh): SIGUSR1 ahead of the time limit must reach every task of the srun step,
# exit code 75 must make the script requeue the job, and the requeued run must append to the same
# log and complete. The template's GPU request is removed (the local node has no GPUs); sizes and
# the time limit are overridden on the sbatch command line (--time=1 with --signal=USR1@50 signals
# ~10 s after the start; SLURM checks signal times periodically, so allow a few minutes).
#   test_sbatch_template.sh TEMPLATE FAKE_CALDERA_DIST      (SLURM_CONF from the fixture)
set -euo pipefail
template=$1
fake=$2
command -v sbatch >/dev/null && [[ -n ${SLURM_CONF:-} && -f $SLURM_CONF ]] && sinfo -h >/dev/null 2>&1 ||
  { echo "SKIP: no local SLURM cluster (tools/slurm-local/start.sh)"; exit 77; }

dir=$(mktemp -d /tmp/caldera-template.XXXXXX)
job_id=""
cleanup() {
  [[ -n $job_id ]] && scancel "$job_id" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
sed '/--gpus-per-node/d' "$template" >"$dir/job.sbatch"
echo "[run]" >"$dir/test.ini"

job_id=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=1 --signal=USR1@50 \
  --output="$dir/%x-%j.out" --chdir="$dir" \
  --export=ALL,CONFIG="$dir/test.ini",WORKDIR="$dir/work",CALDERA_DIST="$fake" "$dir/job.sbatch")
job_id=${job_id%%;*}
echo "submitted job $job_id"

state="" restarts=""
for _ in $(seq 600); do
  info=$(scontrol show job "$job_id" 2>/dev/null || true)
  state=$(grep -o "JobState=[A-Z_]*" <<<"$info" | cut -d= -f2 || true)
  restarts=$(grep -o "Restarts=[0-9]*" <<<"$info" | cut -d= -f2 || true)
  [[ $state == COMPLETED || $state == FAILED || $state == CANCELLED || $state == TIMEOUT ]] && break
  sleep 0.5
done
log=$(ls "$dir"/*.out 2>/dev/null | head -n1 || true)
echo "---- job $job_id: state $state, restarts $restarts, log $log"
[[ -n $log ]] && cat "$log"
echo "----"
[[ $state == COMPLETED ]] || { echo "FAIL: expected COMPLETED, got '$state'"; exit 1; }
[[ $restarts == 1 ]] || { echo "FAIL: expected exactly one requeue, got '$restarts'"; exit 1; }
for t in 0 1; do
  grep -q "fake-caldera-dist: task $t got USR1" "$log" || { echo "FAIL: task $t did not get SIGUSR1"; exit 1; }
  grep -q "fake-caldera-dist: task $t resumed and finished" "$log" || { echo "FAIL: task $t did not finish after the requeue"; exit 1; }
done
grep -q "step ended .* with exit code 75" "$log" || { echo "FAIL: srun did not return 75"; exit 1; }
grep -q "requeueing job $job_id" "$log" || { echo "FAIL: the script did not requeue"; exit 1; }
grep -q -- "--workdir $dir/work --resume auto" "$log" || { echo "FAIL: caldera-dist arguments missing"; exit 1; }
grep -q "restart 0 on" "$log" && grep -q "restart 1 on" "$log" || { echo "FAIL: log not appended across the requeue"; exit 1; }
job_id=""
echo "PASS"
