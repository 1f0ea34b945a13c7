#!/usr/bin/env python3
"""SIGUSR1 / SIGTERM mid-run (DESIGN §3): the job exits with code 75 at the next safe point with its
state saved, and the rerun finishes with output/ byte-identical to the reference. A signal goes to
ONE rank only; the others learn of it through state/STOP (pipeline::StopCoordinator).

  1. 2 ranks, SIGUSR1 to rank 1 while layer 0 is computed: exit 75 after layer 0; both ranks wrote
     an activation snapshot (state/activations-rank-000R.h5), hessians_done says stopped, no lock
     or temp file left.
  2. 2 ranks: the rerun continues from those snapshots (only layer 1 collected); SIGUSR1 to rank 0
     before layer 1 is published: exit 75 again after layer 1.
  3. rank 1's snapshot truncated; 2 ranks: the rerun warns that the snapshot is unusable and
     replays the forward pass from the embeddings (layers verified earlier: forward only, nothing
     recollected but the missing layers); SIGTERM to rank 0 in phase 2 once 10 units are finished
     and no checkpoint exists (so its current unit is in its first outer iteration): exit 75 with a
     mid-unit checkpoint (tasks/*.partial.h5) and no temp files.
  4. copies of that workdir with every checkpoint bit-flipped, and truncated: one process reruns,
     reports the checkpoint does not verify, starts the unit over, output identical.
  5. the workdir itself: one process (another world size) resumes the unit from its checkpoint,
     output identical.
"""
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (EXIT_REQUEUE, N_LAYERS, N_UNITS, Caldera, Workdir, check, copy_workdir, flip_bit,
                             last_event, log, main, require_message, truncate)


def expect_requeue(job, what: str):
    r = job.wait(timeout_s=600)
    log(f"{what}: exit {r.rc} after {r.seconds:.1f} s")
    check(r.rc == EXIT_REQUEUE, f"{what}: expected exit code {EXIT_REQUEUE}, got {r.rc}\n" + r.text())
    check(not (job.workdir.root / "run.lock").exists(), f"{what}: run.lock left after exit 75")
    check(not job.workdir.all_temp_files(), f"{what}: temp files left: {job.workdir.all_temp_files()}")
    return r


def test() -> None:
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = scratch / "work"
    wd = Workdir(w)

    # 1. Phase 1, SIGUSR1 to rank 1 while layer 0 is computed: the ranks stop after layer 0.
    job = c.start(c.run_args(w), w, ranks=2)
    started = lambda: any("hessians: 8 sequences over 2 ranks" in m for m in wd.messages(job.cursor)) and \
        not wd.hessian(0).exists()
    pids = job.freeze_when(started, "phase 1 started, layer 0 not published")
    job.signal_rank(pids, 1, signal.SIGUSR1)
    expect_requeue(job, "SIGUSR1 in phase 1")
    check(wd.hessians_done() == [0], f"hessian files after the stop: {wd.hessians_done()}")
    check(len(wd.snapshots()) == 2, f"expected one activation snapshot per rank, found {wd.snapshots()}")
    for rank in (0, 1):
        hd = last_event(wd, job.cursor, "hessians_done", rank)
        check(hd["stopped"] is True, f"rank {rank} hessians_done: {hd}")
    require_message(wd, job.cursor, "activation snapshot entering layer 1 written", "stop in phase 1")

    # 2. Resume from the snapshots; SIGUSR1 to rank 0 before layer 1 is published.
    job = c.start(c.run_args(w), w, ranks=2)
    resumed = lambda: any("continuing from the activation snapshot entering layer 1" in m
                          for m in wd.messages(job.cursor)) and not wd.hessian(1).exists()
    pids = job.freeze_when(resumed, "resumed from the snapshots, layer 1 not published")
    job.signal_rank(pids, 0, signal.SIGUSR1)
    expect_requeue(job, "second SIGUSR1 in phase 1")
    check(wd.hessians_done() == [0, 1] and len(wd.snapshots()) == 2,
          f"after the second stop: layers {wd.hessians_done()}, snapshots {wd.snapshots()}")
    collected = wd.collected_layers(job.cursor)
    check(collected == [1], f"the snapshot resume collected layers {collected}, expected [1]")
    done2 = wd.hessians_done()

    # 3. Truncated snapshot of rank 1: replay; SIGTERM in phase 2 right after a unit finished.
    truncate(wd.snapshots()[1], 0.5)
    job = c.start(c.run_args(w), w, ranks=2)
    # Mid phase 2: each rank still has several units left, so the poll has several chances to catch
    # rank 0 inside a unit (18 of 28 left rank 0 only ~4 short units: missed once under CI load).
    n0 = 10

    def unit_just_finished() -> bool:
        done = wd.tasks_finished()
        current = wd.current_units(job.cursor).get(0)
        return len(done) >= n0 and not wd.partials() and current is not None and current not in done

    pids = job.freeze_when(unit_just_finished, f"{n0} units finished, rank 0 in a unit without a checkpoint yet")
    job.signal_rank(pids, 0, signal.SIGTERM)
    expect_requeue(job, "SIGTERM in phase 2")
    require_message(wd, job.cursor, r"activation snapshot unusable, replaying the forward pass", "truncated snapshot")
    check(not [m for m in wd.messages(job.cursor) if "continuing from the activation snapshot" in m],
          "a truncated snapshot was used")
    collected = wd.collected_layers(job.cursor)
    check(collected == list(range(len(done2), N_LAYERS)), f"layers collected after the replay: {collected}")
    check(not wd.snapshots(), f"snapshots left after phase 1 finished: {wd.snapshots()}")
    partials = wd.partials()
    check(bool(partials), "SIGTERM in a unit's first outer iteration left no mid-unit checkpoint")
    log(f"stopped with checkpoints {[p.name for p in partials]}, {len(wd.tasks_finished())} units finished")
    cd = last_event(wd, job.cursor, "compress_done")
    check(cd["stopped"] is True and cd["units_computed"] < N_UNITS, f"compress_done after SIGTERM: {cd}")

    # 4. Copies with bit-flipped and with truncated checkpoints: detected, the unit starts over.
    for damage in ("flipped", "truncated"):
        w2 = copy_workdir(w, scratch / damage)
        wd2 = Workdir(w2)
        for p in wd2.partials():
            if damage == "truncated":
                truncate(p, 0.6)
            else:
                for frac in (0.3, 0.5, 0.7):
                    flip_bit(p, int(p.stat().st_size * frac), 3)
        r, cursor = c.resume_and_compare(w2, ref, ranks=0)
        require_message(wd2, cursor, r"checkpoint does not verify, starting the unit over", f"{damage} checkpoint")
        check(not [m for m in wd2.messages(cursor) if "resuming the unit from its checkpoint" in m],
              f"a {damage} checkpoint was loaded")

    # 5. The workdir itself: resumes from the checkpoint(s), on one process.
    r, cursor = c.resume_and_compare(w, ref, ranks=0)
    require_message(wd, cursor, r"resuming the unit from its checkpoint", "valid checkpoint")
    require_message(wd, cursor, r"resuming caldera after outer iteration 1 of 2", "valid checkpoint")


if __name__ == "__main__":
    main(test)
