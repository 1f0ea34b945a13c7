#!/usr/bin/env python3
"""`caldera-dist plan` predicts the memory that `caldera-dist run` then uses: for every phase
(hessians, compress, export) and every rank, the measured peak is within 25 % of the prediction
(pipeline/plan.h, pipeline/plan_probe.h).

Each case runs `plan --json` and `run` with the same options (the plan for the run's world: one
node of R ranks), then reads the `phase_memory` events of every rank log and compares, per rank and
phase:
  backend  backend_peak_bytes (every byte allocated through linalg::Backend: host memory on the CPU
           backend, GPU memory on CUDA)        vs the plan's backend_bytes;
  host     host_work_bytes (growth of the resident set over the phase, less the library pages it
           touched first)                      vs the plan's host_phase_bytes;
both within TOLERANCE of the prediction. A rank that only waits (export on ranks > 0) must show no
backend memory and at most the plan's runtime allowance of host growth. And the rank's whole peak
resident set (rss_peak_bytes) must stay within the plan's host_need_bytes (baseline + calibration +
phase), which sizes the job.

Cases: minillama-tiny (the CI case, about 40 s on 2 cores) with CALDERA (configs/tiny-caldera-r16-lr4.ini
with fewer iterations: memory does not depend on them) on 1 rank (a plain process) and 2 ranks
(mpiexec), QuIP# (configs/quip-2bit.ini) on 2 ranks and RTN (configs/rtn-4bit.ini) on 1 rank; with
CALDERA_SMALL_MODEL=<dir of minillama-small> also minillama-small (CALDERA on 1 and 2 ranks, RTN;
a few minutes). CALDERA_PLAN_MEMORY_BACKEND=cuda runs the cases on the CUDA backend (GPU memory for
`backend`); that variant has not been run on a GPU yet.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import PHASE1_ARGS, Caldera, TestSkip, Workdir, check, log, main

TOLERANCE = 0.25
PHASES = ("hessians", "compress", "export")
MIB = float(1 << 20)
FEWER_ITERS = ["--iters", "1", "--lplr-iters", "2", "--tune-iters", "1"]


def cases(c: Caldera, configs: Path) -> list[tuple[str, Path, list[str], int]]:
    """(name, model, method arguments, ranks: 0 = one plain process, else mpiexec -np ranks)."""
    tiny = c.model
    out = [
        ("tiny-caldera-1", tiny, ["--config", str(configs / "tiny-caldera-r16-lr4.ini"), *FEWER_ITERS], 0),
        ("tiny-caldera-2", tiny, ["--config", str(configs / "tiny-caldera-r16-lr4.ini"), *FEWER_ITERS], 2),
        ("tiny-quip-2", tiny, ["--config", str(configs / "quip-2bit.ini"), "--tune-iters", "1"], 2),
        ("tiny-rtn-1", tiny, ["--config", str(configs / "rtn-4bit.ini")], 0),
    ]
    small = os.environ.get("CALDERA_SMALL_MODEL")
    if small:
        small_dir = Path(small)
        check((small_dir / "config.json").is_file(), f"CALDERA_SMALL_MODEL={small}: no config.json there")
        caldera = ["--config", str(configs / "small-caldera-r32-lr4.ini"), *FEWER_ITERS]
        out += [
            ("small-caldera-1", small_dir, caldera, 0),
            ("small-caldera-2", small_dir, caldera, 2),
            ("small-rtn-1", small_dir, ["--config", str(configs / "rtn-4bit.ini")], 0),
        ]
    return out


def within(measured: int, predicted: int) -> bool:
    return abs(measured - predicted) <= TOLERANCE * predicted


def pct(measured: int, predicted: int) -> str:
    return f"{100.0 * (measured - predicted) / predicted:+.1f}%" if predicted else "n/a"


def run_case(c: Caldera, name: str, model: Path, method_args: list[str], ranks: int, backend: str) -> tuple[list[str], list[str]]:
    """Runs plan and run; returns (table lines, failures)."""
    world = max(ranks, 1)
    work = c.scratch / name
    args = ["--model", str(model), "--calib", str(c.calib), *PHASE1_ARGS, "--backend", backend, "--threads", "1",
            "--log-level", "info", *method_args]
    plan_result = c.run(["plan", *args, "--nodes", "1", "--ranks-per-node", str(world), "--json"], work, ranks=0)
    plan = plan_result.summary()
    check(plan["target"]["world_size"] == world, f"{name}: plan for {plan['target']['world_size']} ranks, expected {world}")
    c.run(["run", *args, "--workdir", str(work), "--json"], work, ranks=ranks)

    predicted = {(p["phase"], r["rank"]): r for p in plan["phases"] for r in p["ranks"]}
    measured = {}
    for e in Workdir(work).events():
        if e.get("event") == "phase_memory":
            key = (e["phase"], e["rank"])
            check(key not in measured, f"{name}: two phase_memory events for {key}")
            measured[key] = e
    lines, failures = [], []
    for phase in PHASES:
        for rank in range(world):
            e = measured.get((phase, rank))
            check(e is not None, f"{name}: no phase_memory event of phase {phase} on rank {rank}")
            if not e["peak_reset"]:
                raise TestSkip("the kernel refused to reset VmHWM (/proc/self/clear_refs): peaks cannot be measured per phase")
            p = predicted[(phase, rank)]
            be_m, be_p = e["backend_peak_bytes"], p["backend_bytes"]
            host_m, host_p = e["host_work_bytes"], p["host_phase_bytes"]
            where = f"{name} {phase:8s} rank {rank}"
            lines.append(f"{where}: backend {be_m / MIB:8.2f} MiB vs {be_p / MIB:8.2f} predicted ({pct(be_m, be_p):>7s}); "
                         f"host {host_m / MIB:8.2f} MiB vs {host_p / MIB:8.2f} ({pct(host_m, host_p):>7s}); "
                         f"library pages {e['library_growth_bytes'] / MIB:.2f} MiB; "
                         f"rss peak {e['rss_peak_bytes'] / MIB:.1f} MiB, need {p['host_need_bytes'] / MIB:.1f}")
            if p["active"]:
                if not within(be_m, be_p):
                    failures.append(f"{where}: backend peak {be_m} B, predicted {be_p} B ({pct(be_m, be_p)})")
                if not within(host_m, host_p):
                    failures.append(f"{where}: host growth {host_m} B, predicted {host_p} B ({pct(host_m, host_p)})")
            else:  # waits for rank 0 (export): nothing of its own
                if be_m != 0 or host_m > plan["runtime_buffer_bytes"]:
                    failures.append(f"{where}: an idle rank used backend {be_m} B, host {host_m} B")
            if e["rss_peak_bytes"] > p["host_need_bytes"]:
                failures.append(f"{where}: peak resident set {e['rss_peak_bytes']} B exceeds the plan's need "
                                f"{p['host_need_bytes']} B")
    return lines, failures


def test() -> None:
    c = Caldera()
    c.fresh_scratch()
    configs = Path(__file__).resolve().parents[2] / "configs"
    backend = os.environ.get("CALDERA_PLAN_MEMORY_BACKEND", "cpu")
    check(backend in ("cpu", "cuda"), f"CALDERA_PLAN_MEMORY_BACKEND={backend}: expected cpu or cuda")
    table, failures = [], []
    for name, model, method_args, ranks in cases(c, configs):
        lines, bad = run_case(c, name, model, method_args, ranks, backend)
        table += lines
        failures += bad
    log("measured vs predicted (host = resident-set growth less library pages):\n  " + "\n  ".join(table))
    check(not failures, f"{len(failures)} measurement(s) outside {int(100 * TOLERANCE)}% of the plan:\n  " +
          "\n  ".join(failures))


if __name__ == "__main__":
    main(test)
