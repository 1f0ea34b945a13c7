#!/usr/bin/env bash
# srun --mpi=pmix -n 2 of the MPI probe on the local cluster: both ranks must join one world of 2
# (allreduce of rank + 1 gives 3). Then a launch where every task sees a world of one must be
# rejected by check_launch with the `--mpi=pmix` advice.
#   test_srun_mpi.sh PROBE      (SLURM_CONF from the fixture; exit 77 when no cluster is up)
set -euo pipefail
probe=$1
command -v srun >/dev/null && [[ -n ${SLURM_CONF:-} && -f $SLURM_CONF ]] && sinfo -h >/dev/null 2>&1 ||
  { echo "SKIP: no local SLURM cluster (tools/slurm-local/start.sh)"; exit 77; }

out=$(srun --mpi=pmix -n 2 --time=2 "$probe" 2>&1) || { echo "$out"; echo "FAIL: srun --mpi=pmix exited with $?"; exit 1; }
echo "$out"
grep -q "caldera-probe: world=2 sum=3 expected=3" <<<"$out" || { echo "FAIL: expected a world of 2 summing to 3"; exit 1; }
for r in 0 1; do
  grep -q "caldera-probe: rank $r of 2 on " <<<"$out" || { echo "FAIL: rank $r did not report"; exit 1; }
done

set +e
out=$(srun --mpi=pmix -n 2 --time=2 "$probe" --no-mpi 2>&1)
rc=$?
set -e
echo "$out"
[[ $rc -ne 0 ]] || { echo "FAIL: a world of 1 under srun -n 2 was accepted"; exit 1; }
grep -q 'srun started 2 tasks but MPI sees a world of 1: launch with `srun --mpi=pmix` (or set MpiDefault=pmix)' \
  <<<"$out" || { echo "FAIL: check_launch message missing"; exit 1; }
echo "PASS"
