#!/usr/bin/env python3
"""`srun --mpi=pmix -n 2 caldera-dist run` on the local SLURM cluster (label slurm):

  1. the job starts (both ranks in one world of 2: each rank logs its own process_start in
     logs/rank-000R.jsonl); once phase 2 has finished at least 6 units and is between units,
     rank 1 gets kill -9; srun (--kill-on-bad-exit) ends the step with a non-zero code;
  2. the same srun command again resumes: compress_done.units_reused equals the units finished when
     the step ended (rank 0 may finish its in-flight unit before srun stops it), the task files
     finished at the kill keep their mtimes (not rewritten), no layer is recollected, and
     output/ is byte-identical to the single-process reference run (fixture e2e_reference).

Exit 77 (skipped, reason printed) when no cluster is reachable (tools/slurm-local/start.sh needs
root and Debian's slurm packages).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "lib"))
from caldera_harness import (N_UNITS, Caldera, Job, TestSkip, Workdir, check, compare_trees, last_event, log, main)


def require_cluster() -> None:
    conf = os.environ.get("SLURM_CONF", "")
    if not shutil.which("srun") or not conf or not Path(conf).is_file():
        raise TestSkip("no local SLURM cluster (SLURM_CONF unset; tools/slurm-local/start.sh)")
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        raise TestSkip(f"sinfo cannot reach the cluster of {conf}")


def srun_job(c: Caldera, w: Path) -> Job:
    argv = ["srun", "--mpi=pmix", "-n", "2", "--kill-on-bad-exit=1", "--time=10", "--job-name=caldera-e2e",
            str(c.binary), *c.run_args(w, ["--json"])]
    return Job(argv, Workdir(w), 2, c.env)


def test() -> None:
    require_cluster()
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = scratch / "work"
    wd = Workdir(w)
    w.parent.mkdir(parents=True, exist_ok=True)

    job = srun_job(c, w)
    state = {}

    def between_units() -> bool:
        done = wd.tasks_finished()
        if len(done) < 6 or len(done) >= N_UNITS - 2:
            return False
        if wd.partials() or wd.temp_files("tasks") or set(wd.task_files()) != set(done):
            return False
        state["done"] = done
        return True

    pids = job.freeze_when(between_units, "phase 2 between units, at least 6 finished")
    starts = [e for e in wd.events(job.cursor) if e.get("event") == "process_start"]
    check(sorted(e["rank"] for e in starts) == [0, 1], f"process_start events of the srun job: {starts}")
    finished = state["done"]
    mtimes = {u: wd.task(u).stat().st_mtime_ns for u in finished}
    r = job.kill_rank(pids, 1)
    # Rank 0 runs on (SIGCONT) until srun's --kill-on-bad-exit reaches it, so it may finish the unit
    # it had in flight: the rerun must reuse exactly what is finished once the step has ended.
    finished_at_end = wd.tasks_finished()
    check(set(finished) <= set(finished_at_end), f"finished units vanished: {finished} -> {finished_at_end}")
    log(f"srun exit code after kill -9 of rank 1: {r.rc}; {len(finished)} units finished at the kill, "
        f"{len(finished_at_end)} when the step ended")

    job = srun_job(c, w)
    r = job.wait(timeout_s=900)
    check(r.rc == 0, f"srun rerun: exit {r.rc}\n{r.text()}")
    s = r.summary()
    check(s["world_size"] == 2, f"rerun summary: {s}")
    compare_trees(wd.output_digest(), ref.output_digest(), f"{w}/output")
    wd.manifest_ok()
    cd = last_event(wd, job.cursor, "compress_done")
    check(cd["units_reused"] == len(finished_at_end) and cd["units_computed"] == N_UNITS - len(finished_at_end),
          f"after the kill with {len(finished_at_end)} units finished: compress_done {cd}")
    hd = last_event(wd, job.cursor, "hessians_done")
    check(hd["layers_collected"] == 0, f"the rerun recollected Hessians: {hd}")
    rewritten = [u for u, t in mtimes.items() if wd.task(u).stat().st_mtime_ns != t]
    check(not rewritten, f"finished units rewritten by the rerun: {rewritten}")
    done_events = {e["unit"] for e in wd.events(job.cursor) if e.get("event") == "unit_done"}
    check(not (done_events & set(finished)), f"units recomputed although finished: {sorted(done_events & set(finished))}")


if __name__ == "__main__":
    main(test)
