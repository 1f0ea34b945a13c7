#!/usr/bin/env python3
"""The single-node sbatch template (slurm/caldera-1node.sbatch) with the real caldera-dist on the
local SLURM cluster (label slurm): SIGUSR1 mid-run -> exit 75 -> requeue -> the job finishes.

  - the template (its GPU request removed: the local node has none) is submitted with 2 tasks and
    an INI file holding the shared small settings (lib/caldera_harness.py);
  - once phase 2 has finished at least 3 units, `scancel --signal=USR1 <job>` signals every task of
    the running step (as SLURM does for --signal=USR1@300 ahead of the time limit);
  - the ranks stop at their next safe point and exit 75; the template requeues the job
    (`scontrol requeue`), the requeued run resumes and completes: JobState COMPLETED, Restarts=1,
    one log appended across both runs (--open-mode=append);
  - the second run reuses every unit finished before the signal (its compress_done) and output/ is
    byte-identical to the single-process reference run (fixture e2e_reference).

Usage: test_caldera_requeue.py TEMPLATE. Exit 77 (skipped, reason printed) without a cluster.
"""
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "lib"))
from caldera_harness import (CALDERA_ARGS, PHASE1_ARGS, Caldera, Workdir, check, compare_trees, log, main)
from test_caldera_srun import require_cluster  # noqa: E402  (same directory)


def ini_from_args(args: list[str]) -> str:
    """`--key value` pairs as INI lines (the keys caldera-dist's --config accepts)."""
    lines = []
    for i in range(0, len(args), 2):
        check(args[i].startswith("--"), f"unexpected argument {args[i]}")
        lines.append(f"{args[i][2:]} = {args[i + 1]}")
    return "\n".join(lines) + "\n"


def job_info(job_id: str) -> dict:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def test() -> None:
    require_cluster()
    template = Path(sys.argv[1])
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = scratch / "work"
    wd = Workdir(w)
    job_script = scratch / "job.sbatch"
    job_script.write_text("".join(l for l in template.read_text().splitlines(keepends=True) if "--gpus-per-node" not in l))
    config = scratch / "run.ini"
    config.write_text("# written by tests/slurm/test_caldera_requeue.py\n" +
                      ini_from_args(["--model", str(c.model), "--calib", str(c.calib), *PHASE1_ARGS, *CALDERA_ARGS,
                                     "--backend", "cpu"]))
    submit = subprocess.run(
        ["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=15",
         f"--output={scratch}/%x-%j.out", f"--chdir={scratch}",
         f"--export=ALL,CONFIG={config},WORKDIR={w},CALDERA_DIST={c.binary}", str(job_script)],
        capture_output=True, text=True, env=c.env)
    check(submit.returncode == 0, f"sbatch failed: {submit.stdout}{submit.stderr}")
    job_id = submit.stdout.strip().split(";")[0]
    log(f"submitted job {job_id}")
    try:
        deadline = time.monotonic() + 900
        while len(wd.tasks_finished()) < 3:
            state = job_info(job_id).get("JobState", "?")
            check(state in ("PENDING", "RUNNING", "CONFIGURING"), f"job {job_id} is {state} before phase 2")
            check(time.monotonic() < deadline, "phase 2 did not start within 900 s")
            time.sleep(0.2)
        finished_at_signal = set(wd.tasks_finished())
        cursor = wd.log_cursor()
        sig = subprocess.run(["scancel", "--signal=USR1", job_id], capture_output=True, text=True)
        check(sig.returncode == 0, f"scancel --signal=USR1 failed: {sig.stderr}")
        log(f"scancel --signal=USR1 {job_id} with {len(finished_at_signal)} units finished")
        info = {}
        while time.monotonic() < deadline:
            info = job_info(job_id)
            if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
                break
            time.sleep(0.5)
        logs = sorted(scratch.glob("*.out"))
        text = logs[0].read_text() if logs else ""
        print(f"---- job {job_id}: {info.get('JobState')} Restarts={info.get('Restarts')}; {logs}\n{text[-4000:]}\n----")
        check(info.get("JobState") == "COMPLETED", f"job {job_id} ended {info.get('JobState')}")
        check(info.get("Restarts") == "1", f"expected one requeue, Restarts={info.get('Restarts')}")
        check(re.search(r"step ended .* with exit code 75", text) is not None, "the first step did not exit 75")
        check(f"requeueing job {job_id}" in text, "the template did not requeue")
        check("restart 0 on" in text and "restart 1 on" in text, "log not appended across the requeue")
        check(re.search(r"step ended .* with exit code 0", text) is not None, "the requeued step did not exit 0")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)

    events = wd.events(cursor)
    stopped = [e for e in events if e.get("event") == "compress_done" and e.get("stopped") is True]
    check(len(stopped) == 2, f"expected both ranks to report a stopped phase 2, got {stopped}")
    done = [e for e in events if e.get("event") == "compress_done" and e.get("stopped") is False and e.get("rank") == 0]
    check(len(done) == 1, f"expected one finished phase 2 after the requeue: {done}")
    check(done[0]["units_reused"] >= len(finished_at_signal), f"the requeued run recomputed finished units: {done[0]}")
    redone = {e["unit"] for e in events if e.get("event") == "unit_done"} & finished_at_signal
    check(not redone, f"units finished before the signal were recomputed: {sorted(redone)}")
    compare_trees(wd.output_digest(), ref.output_digest(), f"{w}/output")
    wd.manifest_ok()


if __name__ == "__main__":
    main(test)
