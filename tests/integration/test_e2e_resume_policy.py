#!/usr/bin/env python3
"""The resume decision and the workdir lock (DESIGN §3, `--resume auto|required|never`):

  - a finished workdir reruns as a no-op (nothing recollected or recomputed), output unchanged;
  - a changed setting, seed, method, calibration file or model refuses to resume (exit 2) with a
    message naming each difference, and leaves the workdir untouched;
  - results without run.json are refused (they cannot be checked);
  - `--resume required` with nothing to resume fails (exit 2) and creates no results; with a
    compatible run it resumes;
  - `--resume never` clears the earlier results (another method here) and starts over;
  - two concurrent runs on one workdir: the second is refused by the lock (exit 1, naming the
    holder) while the first goes on; a lock left by a dead process on this host is taken over; a
    lock of another host is refused until `--force-unlock`.
"""
import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (EXIT_FAILURE, EXIT_REQUEUE, EXIT_USAGE, N_LAYERS, N_UNITS, Caldera, Workdir, check,
                             copy_workdir, last_event, log, main, require_stderr, sha256_file,
                             tree_digest)


def results_digest(w: Path) -> dict:
    d = {}
    for sub in ("hessians", "tasks", "output"):
        d.update({f"{sub}/{k}": v for k, v in tree_digest(w / sub).items()})
    if (w / "run.json").exists():
        d["run.json"] = sha256_file(w / "run.json")
    return d


def expect_refusal(c: Caldera, w: Path, args: list[str], patterns: list[str], what: str, rc: int = EXIT_USAGE) -> str:
    before = results_digest(w)
    r = c.run(args, w, ranks=0, expect_rc=rc)
    for p in patterns:
        check(p in r.err, f"{what}: stderr does not contain {p!r}:\n{r.err[-3000:]}")
    check(results_digest(w) == before, f"{what}: the refused run changed the workdir")
    log(f"{what}: refused as expected")
    return r.err


def test() -> None:
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = copy_workdir(ref.root, scratch / "work")
    wd = Workdir(w)

    # A finished run resumes as a no-op.
    r, cursor = c.resume_and_compare(w, ref, ranks=0)
    hd, cd = last_event(wd, cursor, "hessians_done"), last_event(wd, cursor, "compress_done")
    check(hd["layers_collected"] == 0 and hd["layers_reused"] == N_LAYERS, f"no-op rerun: {hd}")
    check(cd["units_computed"] == 0 and cd["units_reused"] == N_UNITS, f"no-op rerun: {cd}")
    require_stderr(r, r"resuming the run in ", "no-op rerun")

    # Changed settings refuse, naming the difference.
    base = c.run_args(w)
    def with_option(name: str, value: str) -> list[str]:
        args = list(base)
        if name in args:
            args[args.index(name) + 1] = value
        else:
            args += [name, value]
        return args
    expect_refusal(c, w, with_option("--rank", "32"), ['phase2.parameters.rank: "16" (in run.json) vs "32" (now)'], "--rank")
    expect_refusal(c, w, with_option("--seed", "7"), ['phase2.seed: "0" (in run.json) vs "7" (now)'], "--seed")
    expect_refusal(c, w, with_option("--method", "rtn"), ['phase2.method: "caldera" (in run.json) vs "rtn" (now)'],
                   "--method")
    expect_refusal(c, w, with_option("--max-calib-seqs", "6"),
                   ["phase1.calibration.sequences: 8 (in run.json) vs 6 (now)"], "--max-calib-seqs")
    expect_refusal(c, w, with_option("--micro-batch", "2"), ["phase1.micro_batch: 4 (in run.json) vs 2 (now)"],
                   "--micro-batch")
    # A calibration file with one token changed.
    calib = scratch / "calib-changed.u32"
    data = bytearray(c.calib.read_bytes())
    data[4] ^= 1
    calib.write_bytes(bytes(data))
    expect_refusal(c, w, with_option("--calib", str(calib)), ["phase1.calibration.sha256: "], "changed calibration file")
    # A model whose config.json differs (rms_norm_eps).
    model = scratch / "model-changed"
    shutil.copytree(c.model, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["rms_norm_eps"] = cfg["rms_norm_eps"] * 2
    (model / "config.json").write_text(json.dumps(cfg, indent=2))
    err = expect_refusal(c, w, with_option("--model", str(model)), ["phase1.model_files[config.json].sha256: "],
                         "changed model")
    check("refusing to resume" in err and "--resume never" in err, f"refusal does not say how to start over:\n{err}")

    # Results without run.json cannot be checked.
    w_norecord = copy_workdir(ref.root, scratch / "norecord")
    (w_norecord / "run.json").unlink()
    expect_refusal(c, w_norecord, c.run_args(w_norecord), ["holds results but no run.json"], "results without run.json")

    # --resume required: nothing to resume -> exit 2, no results created; a compatible run resumes.
    w_empty = scratch / "empty"
    r = c.run(c.run_args(w_empty, ["--resume", "required"]), w_empty, ranks=0, expect_rc=EXIT_USAGE)
    check("--resume required" in r.err and "no earlier run" in r.err, f"--resume required message:\n{r.err[-2000:]}")
    check(not Workdir(w_empty).hessians_done() and not (w_empty / "run.json").exists(),
          "--resume required with nothing to resume created results")
    c.run(c.run_args(w, ["--resume", "required"]), w, ranks=0)

    # Lock: another host's lock refuses, --force-unlock takes it over; a dead local pid is taken over.
    (w / "run.lock").write_text("host some-other-host\npid 12345\njob -\n")
    expect_refusal(c, w, c.run_args(w), ["in use by host some-other-host pid 12345", "--force-unlock"],
                   "lock of another host", rc=EXIT_FAILURE)
    r = c.run(c.run_args(w, ["--force-unlock"]), w, ranks=0)
    check("taking over the workdir lock of host some-other-host" in r.err, "--force-unlock did not say it took the lock")
    (w / "run.lock").write_text(f"host {socket.gethostname()}\npid 2147483000\njob -\n")  # above pid_max
    r = c.run(c.run_args(w), w, ranks=0)
    check("process no longer runs" in r.err, f"stale lock of a dead process not taken over:\n{r.err[-2000:]}")
    check(not (w / "run.lock").exists(), "run.lock left behind")

    # Two concurrent runs on one (fresh) workdir: the second is refused while the first runs.
    w_lock = scratch / "locked"
    first = c.start(c.run_args(w_lock), w_lock, ranks=0)
    wl = Workdir(w_lock)
    pids = first.freeze_when(lambda: (w_lock / "run.lock").exists() and bool(wl.log_files()), "first run holds the lock")
    for pid in pids.values():
        os.kill(pid, signal.SIGCONT)
    second = c.run(c.run_args(w_lock), w_lock, ranks=0, expect_rc=EXIT_FAILURE)
    check(f"pid {pids[0]}" in second.err and "is in use by host" in second.err,
          f"the second run's refusal does not name the holder (pid {pids[0]}):\n{second.err[-2000:]}")
    check(first.proc.poll() is None, "the first run ended when the second was refused")
    check((w_lock / "run.lock").exists(), "the refused run removed the holder's lock")
    os.kill(pids[0], signal.SIGTERM)
    r = first.wait(600)
    check(r.rc == EXIT_REQUEUE, f"first run after SIGTERM: exit {r.rc}\n{r.text()}")
    check(not (w_lock / "run.lock").exists(), "run.lock left after exit 75")

    # --resume never: clears everything of the earlier (caldera) run and starts over with rtn.
    cursor = wd.log_cursor()
    args = with_option("--method", "rtn") + ["--resume", "never", "--json"]
    for opt in ("--rank", "--bits-lr", "--iters", "--lplr-iters", "--tune-iters"):
        i = args.index(opt)
        del args[i:i + 2]
    r = c.run(args, w, ranks=0)
    require_stderr(r, r"--resume never: clearing the results of the earlier run", "--resume never")
    hd, cd = last_event(wd, cursor, "hessians_done"), last_event(wd, cursor, "compress_done")
    check(hd["layers_collected"] == N_LAYERS and cd["units_computed"] == N_UNITS and cd["units_reused"] == 0,
          f"--resume never did not start over: {hd} {cd}")
    q = json.loads((wd.output / "config.json").read_text())["quantization_config"]
    check(q["method"] == "rtn", f"output after --resume never is {q['method']}")
    record = json.loads((w / "run.json").read_text())
    check(record["phase2"]["method"] == "rtn", "run.json still records the earlier method")
    wd.manifest_ok()


if __name__ == "__main__":
    main(test)
