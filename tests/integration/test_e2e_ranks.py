#!/usr/bin/env python3
"""`caldera-dist run` on minillama-tiny with 2 and 3 MPI ranks (mpiexec) gives output/ byte-identical
to the single-process reference run (DESIGN §3: results do not depend on the world size). Each
run's --json summary reports its world size and one busy time per rank, and the units were spread
over every rank (unit_done events in each rank's log).

(The HDF5 files in hessians/ and tasks/ are not compared byte for byte: HDF5 records object
modification times in them. Their contents reach output/, which is compared.)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import N_UNITS, Caldera, Workdir, check, log, main


def test() -> None:
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    for ranks in (2, 3):
        w = scratch / f"ranks{ranks}"
        wd = Workdir(w)
        r, _ = c.resume_and_compare(w, ref, ranks=ranks)
        s = r.summary()
        log(f"{ranks} ranks: {r.seconds:.1f} s, efficiency {s['efficiency']:.2f}, busy {s['busy_s']}")
        check(s["world_size"] == ranks and len(s["busy_s"]) == ranks, f"summary of {ranks} ranks: {s}")
        per_rank = {}
        for e in wd.events():
            if e.get("event") == "unit_done":
                per_rank[e["rank"]] = per_rank.get(e["rank"], 0) + 1
        check(sum(per_rank.values()) == N_UNITS and len(per_rank) == ranks,
              f"unit_done events per rank with {ranks} ranks: {per_rank} (expected {N_UNITS} over {ranks} ranks)")


if __name__ == "__main__":
    main(test)
