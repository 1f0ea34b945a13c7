#!/usr/bin/env python3
"""Fixture e2e_reference: one uninterrupted single-process `caldera-dist run` on minillama-tiny with
the shared small settings (lib/caldera_harness.py) and `--eval-tokens`, into $CALDERA_REFERENCE.
Every other end-to-end test compares its output/ with this one, byte for byte.

Checks on the way: exit 0, the --json summary (28 units, perplexity before/after), output/ complete
and matching its manifest, no temp files, checkpoints, snapshots or lock left, the rank log's
events (4 layers collected, 28 unit_done, compress_done), and that `eval --model <workdir>/output`
reads the compressed model with exactly the perplexity `run --eval-tokens` reported (same code
path, so the same number to the last digit: relative 1e-12).
"""
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (EVAL_SEQS, N_LAYERS, N_UNITS, SEQ_LEN, Caldera, Workdir, check, env_path, last_event,
                             log, main)


def test() -> None:
    c = Caldera()
    ref_dir = env_path("CALDERA_REFERENCE")
    if ref_dir.exists():
        shutil.rmtree(ref_dir)
    ref_dir.parent.mkdir(parents=True, exist_ok=True)
    wd = Workdir(ref_dir)
    r = c.run(c.run_args(ref_dir, ["--eval-tokens", str(c.eval_tokens), "--eval-max-seqs", str(EVAL_SEQS), "--json"]),
              ref_dir)
    s = r.summary()
    (ref_dir.parent / "reference-summary.json").write_text(json.dumps(s, indent=2) + "\n")
    log(f"reference: {s['avg_bits']:.4f} bits/weight, mean rel error {s['mean_rel_error']:.4f}, "
        f"ppl {s['ppl_before']:.4f} -> {s['ppl_after']:.4f}, {s['seconds']}")
    check(s["units"] == N_UNITS, f"summary units {s['units']}, expected {N_UNITS}")
    check(s["world_size"] == 1, f"world_size {s['world_size']}")
    check(2.0 < s["avg_bits"] < 3.0, f"avg_bits {s['avg_bits']} outside (2, 3) for Q 2-bit + rank-16 4-bit factors")
    check(s["ppl_before"] < s["ppl_after"] < 4 * s["ppl_before"],
          f"ppl after compression {s['ppl_after']} not in (ppl before {s['ppl_before']}, 4x that)")

    wd.manifest_ok()
    check(len(wd.hessians_done()) == N_LAYERS, f"hessian files: {wd.hessians_done()}")
    check(len(wd.tasks_finished()) == N_UNITS, f"finished units: {len(wd.tasks_finished())}")
    check(not wd.all_temp_files() and not wd.partials() and not wd.snapshots(),
          f"leftovers: {wd.all_temp_files() + wd.partials() + wd.snapshots()}")
    check(not (ref_dir / "run.lock").exists(), "run.lock left behind")
    config = json.loads((wd.output / "config.json").read_text())
    q = config.get("quantization_config", {})
    check(q.get("method") == "caldera" and q.get("parameters", {}).get("rank") == 16,
          f"quantization_config does not record caldera rank 16: {q}")
    events = wd.events()
    check(sum(e.get("event") == "unit_done" for e in events) == N_UNITS, "expected one unit_done event per unit")
    h = last_event(wd, {}, "hessians_done")
    check(h["layers_collected"] == N_LAYERS and not h["stopped"], f"hessians_done {h}")
    cd = last_event(wd, {}, "compress_done")
    check(cd["units_computed"] == N_UNITS and cd["units_reused"] == 0, f"compress_done {cd}")

    # eval of output/ directly == the run's own ppl_after.
    ev = c.run(["eval", "--model", str(wd.output), "--tokens", str(c.eval_tokens), "--seq-len", str(SEQ_LEN),
                "--max-seqs", str(EVAL_SEQS), "--backend", "cpu", "--json"], ref_dir.parent / "eval-scratch")
    ppl = ev.summary()["ppl"]
    log(f"eval --model output/: ppl {ppl!r}, run reported {s['ppl_after']!r}")
    check(abs(ppl / s["ppl_after"] - 1) < 1e-12, f"eval of output/ gives ppl {ppl}, run reported {s['ppl_after']}")


if __name__ == "__main__":
    main(test)
