#!/usr/bin/env bash
# sbatch of a 2-task job that runs the MPI probe with srun --mpi=pmix, waiting for it (sbatch
# --wait): the job must complete with exit code 0, write its output file and show both ranks.
#   test_sbatch.sh PROBE      (SLURM_CONF from the fixture; exit 77 when no cluster is up)
set -euo pipefail
probe=$1
command -v sbatch >/dev/null && [[ -n ${SLURM_CONF:-} && -f $SLURM_CONF ]] && sinfo -h >/dev/null 2>&1 ||
  { echo "SKIP: no local SLURM cluster (tools/slurm-local/start.sh)"; exit 77; }

dir=$(mktemp -d /tmp/caldera-sbatch.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/job.sbatch" <<JOB
#!/bin/bash
#SBATCH --job-name=caldera-probe
#SBATCH --ntasks=2
#SBATCH --time=2
#SBATCH --output=$dir/job-%j.out
echo "batch step on \$(hostname), SLURM_NTASKS=\$SLURM_NTASKS"
srun --mpi=pmix "$probe"
JOB

set +e
submit=$(sbatch --parsable --wait "$dir/job.sbatch" 2>&1)
rc=$?
set -e
job_id=$(head -n1 <<<"$submit" | cut -d';' -f1)
echo "sbatch: $submit (exit $rc)"
cat "$dir"/job-*.out 2>/dev/null || true
[[ $rc -eq 0 ]] || { echo "FAIL: job $job_id did not complete with exit code 0"; exit 1; }
[[ -f $dir/job-$job_id.out ]] || { echo "FAIL: no output file job-$job_id.out"; exit 1; }
grep -q "SLURM_NTASKS=2" "$dir/job-$job_id.out" || { echo "FAIL: batch step did not run"; exit 1; }
grep -q "caldera-probe: world=2 sum=3 expected=3" "$dir/job-$job_id.out" || { echo "FAIL: MPI step result missing"; exit 1; }
state=$(scontrol show job "$job_id" 2>/dev/null | grep -o "JobState=[A-Z]*" || true)
echo "scontrol: ${state:-job already purged}"
[[ -z $state || $state == "JobState=COMPLETED" ]] || { echo "FAIL: expected COMPLETED, got $state"; exit 1; }
echo "PASS"
