#!/usr/bin/env python3
"""The phases as separate subcommands give what `run` gives (DESIGN §1): `hessians` on one process,
`compress` on 2 MPI ranks, `export` on one process, in one workdir, write output/ byte-identical to
the reference `run`. On the way: `compress` before `hessians` fails naming the missing Hessian
file; `hessians` records only phase 1 in run.json and `compress` adds phase 2 (a resume on other
commands, not a difference); `export` before every unit is finished fails naming a unit.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (CALDERA_ARGS, EXIT_FAILURE, N_LAYERS, N_UNITS, Caldera, Workdir, check, compare_trees,
                             last_event, main)


def test() -> None:
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = scratch / "work"
    wd = Workdir(w)
    session = c.session_args(w)

    r = c.run(["compress", *session, *CALDERA_ARGS], w, ranks=0, expect_rc=None)
    check(r.rc == EXIT_FAILURE and "layer_000.h5: missing: phase 2 needs the Hessians of layer 0" in r.err,
          f"compress without Hessians: exit {r.rc}\n{r.err[-2000:]}")
    r = c.run(["export", *session, *CALDERA_ARGS], w, ranks=0, expect_rc=EXIT_FAILURE)
    check("is not finished" in r.err, f"export without units:\n{r.err[-2000:]}")

    c.run(["hessians", *session, "--json"], w, ranks=0)
    check(wd.hessians_done() == list(range(N_LAYERS)), f"hessians: {wd.hessians_done()}")
    record = json.loads((w / "run.json").read_text())
    check("phase1" in record, f"run.json after hessians: {sorted(record)}")

    cursor = wd.log_cursor()
    s = c.run(["compress", *session, *CALDERA_ARGS, "--json"], w, ranks=2).summary()
    check(s["units"] == N_UNITS and s["units_computed"] == N_UNITS and s["units_reused"] == 0, f"compress: {s}")
    record = json.loads((w / "run.json").read_text())
    check(record["phase2"]["method"] == "caldera", f"run.json after compress: {record.get('phase2')}")
    check(last_event(wd, cursor, "compress_done")["efficiency"] > 0, "compress_done without efficiency")

    s = c.run(["export", *session, *CALDERA_ARGS, "--json"], w, ranks=0).summary()
    check(s["units"] == N_UNITS and s["format"] == "compressed", f"export: {s}")
    compare_trees(wd.output_digest(), ref.output_digest(), f"{w}/output")
    wd.manifest_ok()


if __name__ == "__main__":
    main(test)
