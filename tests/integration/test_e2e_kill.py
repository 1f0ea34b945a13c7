#!/usr/bin/env python3
"""kill -9 of a rank at several points of every phase, each followed by a rerun that resumes; the
final output/ must be byte-identical to the uninterrupted reference run (DESIGN §3: "kill -9 of any
rank at any moment loses at most the work since its last checkpoint").

One work directory goes through the whole chain, so every rerun resumes the state the previous
kill left (world sizes vary, which a resume allows):

  1. 2 ranks, phase 1 inside layer 1 (layer 0's file published, layer 1's forward under way, no
     snapshot): kill rank 1.             rerun replays layer 0 without taps ("forward only").
  2. 2 ranks, --snapshot-interval 0, phase 1 between layers 2 and 3 (layer 2 published, both
     ranks' snapshots entering layer 3 written): kill rank 0.
  3. 2 ranks: the rerun continues from the snapshots (layers 0-2 not recomputed); phase 2 inside
     a unit of rank 1 (its last unit_start event) after that unit's mid-unit checkpoint
     (tasks/<unit>.partial.h5): kill rank 1.
  4. 1 process: the rerun resumes that unit from its checkpoint; phase 2 between units (at least
     3 more units finished, no checkpoint or temp file): kill it.
  5. 3 ranks: finished units are skipped (compress_done.units_reused == units finished at the
     kill, their task files untouched); phase 3 during the export (output/ partly written, no
     manifest yet): kill rank 0 (the writer).
  6. 1 process: finishes; output/ == reference, manifest verified, no leftovers.

Each kill is made on a frozen job (Job.freeze_when) so it happens exactly in the named state.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (N_UNITS, Caldera, Workdir, check, last_event, log, main, require_message,
                             require_stderr, sha256_file)


def test() -> None:
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = scratch / "work"
    wd = Workdir(w)

    # 1. Phase 1, inside layer 1: layer 0 published, layer 1 not, no write in progress; wait until
    # 30% of layer 0's duration (from the phase-1 start message to its file) has passed since its
    # file appeared, so layer 1's forward is running.
    job = c.start(c.run_args(w), w, ranks=2)

    def inside_layer_1() -> bool:
        if not wd.hessian(0).exists() or wd.hessian(1).exists() or wd.temp_files("hessians"):
            return False
        t0 = wd.hessian(0).stat().st_mtime
        begin = min((e["t"] for e in wd.events(job.cursor)
                     if e.get("event") == "log" and e.get("msg", "").startswith("hessians: 8 sequences")), default=t0)
        return time.time() - t0 >= 0.3 * max(t0 - begin, 0.05)

    pids = job.freeze_when(inside_layer_1, "phase 1 inside layer 1")
    job.kill_rank(pids, 1)
    check(wd.hessians_done() == [0], f"hessian files after the kill: {wd.hessians_done()}")
    check(not wd.snapshots(), "no snapshot expected with the default --snapshot-interval")

    # 2. Rerun, snapshots after every layer; kill rank 0 between layers 2 and 3.
    job = c.start(c.run_args(w, ["--snapshot-interval", "0"]), w, ranks=2)

    def between_2_and_3() -> bool:
        if not wd.hessian(2).exists() or wd.hessian(3).exists():
            return False
        written = [m for m in wd.messages(job.cursor) if "activation snapshot entering layer 3 written" in m]
        return len(written) == 2 and not wd.temp_files("state") and not wd.temp_files("hessians")

    pids = job.freeze_when(between_2_and_3, "phase 1 between layers 2 and 3, both snapshots written")
    cursor2 = job.cursor
    job.kill_rank(pids, 0)
    require_message(wd, cursor2, r"hessians: layer 0 verified earlier, forward only", "rerun after kill 1")
    check(wd.hessians_done() == [0, 1, 2], f"hessian files after kill 2: {wd.hessians_done()}")
    check(len(wd.snapshots()) == 2, f"snapshots after kill 2: {wd.snapshots()}")

    # 3. Rerun on 2 ranks: continues from the snapshots; kill rank 1 once a mid-unit checkpoint exists.
    hessian_sha = {l: sha256_file(wd.hessian(l)) for l in (0, 1, 2)}
    job = c.start(c.run_args(w), w, ranks=2)
    def rank1_checkpointed() -> bool:
        unit = wd.current_units(job.cursor).get(1)
        return unit is not None and (w / "tasks" / f"{unit}.partial.h5").exists()

    pids = job.freeze_when(rank1_checkpointed, "phase 2, rank 1 inside a unit after its mid-unit checkpoint")
    cursor3 = job.cursor
    partial_units = [p.name[: -len(".partial.h5")] for p in wd.partials()]
    job.kill_rank(pids, 1)
    require_message(wd, cursor3, r"continuing from the activation snapshot entering layer 3", "rerun after kill 2")
    collected = wd.collected_layers(cursor3)
    check(collected == [3], f"after the snapshot resume only layer 3 should be collected, got {collected}")
    check(all(sha256_file(wd.hessian(l)) == hessian_sha[l] for l in (0, 1, 2)), "finished hessian files were rewritten")
    check(bool(wd.partials()), "the checkpoint disappeared with the kill")
    log(f"killed with checkpoints of {partial_units}")

    # 4. Rerun as one process: resumes from the checkpoint; kill between units.
    job = c.start(c.run_args(w), w, ranks=0)
    cursor4 = job.cursor
    n_before = len(wd.tasks_finished())
    state = {}

    def between_units() -> bool:
        done = wd.tasks_finished()
        if len(done) < n_before + 3 or len(done) >= N_UNITS - 2:
            return False
        if wd.partials() or wd.temp_files("tasks") or set(wd.task_files()) != set(done):
            return False
        state["done"] = done
        return True

    pids = job.freeze_when(between_units, "phase 2 between units (3 more finished, no checkpoint)")
    finished_at_kill = list(state["done"])
    mtimes = {u: wd.task(u).stat().st_mtime_ns for u in finished_at_kill}
    job.kill_rank(pids, 0)
    require_message(wd, cursor4, r"resuming the unit from its checkpoint", "rerun after kill 3")
    require_message(wd, cursor4, r"resuming caldera after outer iteration 1 of 2", "rerun after kill 3")

    # 5. Rerun on 3 ranks: finished units skipped; kill rank 0 during the export.
    job = c.start(c.run_args(w), w, ranks=3)
    cursor5 = job.cursor

    def exporting() -> bool:
        out = wd.output
        if not out.is_dir() or (out / "caldera_manifest.json").exists():
            return False
        return any(out.iterdir())

    pids = job.freeze_when(exporting, "phase 3 during the export (output/ partly written, no manifest)")
    partial_output = sorted(p.name for p in wd.output.iterdir())
    job.kill_rank(pids, 0)
    log(f"output/ at the kill: {partial_output}")
    cd = last_event(wd, cursor5, "compress_done")
    check(cd["units_reused"] == len(finished_at_kill) and cd["units_computed"] == N_UNITS - len(finished_at_kill),
          f"after kill 4 with {len(finished_at_kill)} units finished: compress_done {cd}")
    changed = [u for u, t in mtimes.items() if wd.task(u).stat().st_mtime_ns != t]
    check(not changed, f"finished task files were rewritten: {changed}")

    # 6. Finish and compare.
    r, cursor6 = c.resume_and_compare(w, ref, ranks=0)
    if any(".tmp." in name for name in partial_output):
        require_stderr(r, r"removed \d+ leftover temp file\(s\) of interrupted writes", "temp file of the killed export")
    s = r.summary()
    check(s["units"] == N_UNITS, f"summary {s}")
    cd = last_event(wd, cursor6, "compress_done")
    check(cd["units_computed"] == 0 and cd["units_reused"] == N_UNITS, f"final rerun recomputed units: {cd}")
    hd = last_event(wd, cursor6, "hessians_done")
    check(hd["layers_collected"] == 0, f"final rerun collected layers: {hd}")


if __name__ == "__main__":
    main(test)
