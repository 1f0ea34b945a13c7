#!/usr/bin/env python3
"""SVD-LLM's parameter update pass (spec asvd-svdllm.md §9.1; pipeline/update_pass.h) through
`caldera-dist run --method svdllm --update local` on minillama-tiny (uniform ratio 0.8):

  - every unit is refitted (update/tasks/<unit>.h5, one statistics file per layer under
    update/hessians), the output differs from the run without the update, `eval` of output/ gives
    the run's ppl_after (export wrote the updated units);
  - 2 ranks give byte-identical output/ (units refitted round-robin, exact statistics);
  - kill -9 of a rank inside the pass (after layer 1's units are published), then a rerun on
    1 rank: the finished layers are not refitted again and output/ equals the uninterrupted run's;
  - deleting one layer's updated units and statistics file: the rerun rebuilds exactly those, same
    output/.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import EVAL_SEQS, Caldera, Workdir, check, compare_trees, log, main

UNITS_PER_LAYER = 7
ARGS = ["--method", "svdllm", "--param-ratio", "0.8", "--rank-search", "uniform"]


def run(c: Caldera, w: Path, ranks: int, update: str) -> dict:
    args = ["run", *c.session_args(w), *ARGS, "--update", update, "--eval-tokens", str(c.eval_tokens),
            "--eval-max-seqs", str(EVAL_SEQS), "--json"]
    return c.run(args, w, ranks=ranks).summary()


def updated_units(w: Path) -> list[Path]:
    return sorted((w / "update" / "tasks").glob("*.h5"))


def test() -> None:
    c = Caldera()
    scratch = c.fresh_scratch()

    plain = scratch / "none"
    run(c, plain, 0, "none")
    check(not (plain / "update").exists(), "a run without --update local wrote update/")

    w1 = scratch / "local-1"
    s1 = run(c, w1, 0, "local")
    units = updated_units(w1)
    n_units = len(list((w1 / "tasks").glob("*.h5")))
    check(n_units > 0 and len(units) == n_units, f"{len(units)} updated units for {n_units} phase-2 units")
    layers = n_units // UNITS_PER_LAYER
    stats = sorted((w1 / "update" / "hessians").glob("layer_*.h5"))
    check(len(stats) == layers, f"{len(stats)} update statistics files for {layers} layers")
    done = [e for e in Workdir(w1).events() if e.get("event") == "update_units"]
    check(len(done) > 0 and done[-1].get("units_refitted") == n_units, f"update_units events: {done}")
    check(Workdir(w1).output_digest() != Workdir(plain).output_digest(), "the update did not change output/")
    e = c.run(["eval", "--model", str(w1 / "output"), "--tokens", str(c.eval_tokens), "--seq-len", "512",
               "--max-seqs", str(EVAL_SEQS), "--backend", "cpu", "--json"], scratch / "eval", ranks=0).summary()
    check(abs(e["ppl"] - s1["ppl_after"]) <= 1e-6 * s1["ppl_after"],
          f"eval of output/ {e['ppl']} != run's ppl_after {s1['ppl_after']}")
    log(f"tiny, uniform 0.8: ppl without update {run(c, plain, 0, 'none')['ppl_after']}, with {s1['ppl_after']}")

    w2 = scratch / "local-2"
    run(c, w2, 2, "local")
    compare_trees(Workdir(w2).output_digest(), Workdir(w1).output_digest(), f"{w2}/output (2 ranks)")

    # kill -9 inside the pass, after layer 1's units are published.
    wk = scratch / "kill"
    args = ["run", *c.session_args(wk), *ARGS, "--update", "local"]
    job = c.start(args, wk, ranks=2)

    def layer_1_published() -> bool:
        return len(updated_units(wk)) >= 2 * UNITS_PER_LAYER and len(updated_units(wk)) < n_units

    pids = job.freeze_when(layer_1_published, "update pass with layers 0-1 refitted, later ones not")
    before = {p.name: p.stat().st_mtime_ns for p in updated_units(wk)}
    job.kill_rank(pids, 1)
    run(c, wk, 0, "local")
    compare_trees(Workdir(wk).output_digest(), Workdir(w1).output_digest(), f"{wk}/output after kill -9 and resume")
    rewritten = [n for n, t in before.items() if (wk / "update" / "tasks" / n).stat().st_mtime_ns != t]
    check(not rewritten, f"refitted again after the resume: {rewritten}")

    # Lost files of one layer are rebuilt, nothing else.
    for p in (w1 / "update" / "tasks").glob("L002.*"):
        p.unlink()
    (w1 / "update" / "hessians" / "layer_002.h5").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in updated_units(w1)}
    run(c, w1, 0, "local")
    compare_trees(Workdir(w1).output_digest(), Workdir(w2).output_digest(), f"{w1}/output after losing layer 2")
    check(len(updated_units(w1)) == n_units, "layer 2's units were not rebuilt")
    changed = [n for n, t in kept.items() if (w1 / "update" / "tasks" / n).stat().st_mtime_ns != t]
    check(not changed, f"units of other layers were refitted again: {changed}")


if __name__ == "__main__":
    main(test)
