#!/usr/bin/env python3
"""Markdown tables from tools/gpu-tables.sh's results (DIR/<name>.json, <name>.inspect.json).

  tools/tables-report.py DIR

Prints, per configuration: avg bits, ppl before/after, mean relative error, outlier rate, param
ratio, phase times; then the per-matrix check of the CALDERA issue (every matrix: error of CALDERA
rank 64 / 16-bit factors < QuIP# 2-bit < RTN 2-bit) and the ASVD ordering per ratio.
"""
import json
import sys
from pathlib import Path


def load(d: Path, name: str):
    try:
        run = json.loads((d / f"{name}.json").read_text().strip().splitlines()[-1])
    except (OSError, IndexError, json.JSONDecodeError):
        return None, None
    try:
        ins = json.loads((d / f"{name}.inspect.json").read_text().strip().splitlines()[-1])
    except (OSError, IndexError, json.JSONDecodeError):
        ins = None
    return run, ins


def per_matrix(ins):
    return {u["unit"]: u["rel_error"] for u in ins["compress"]["per_unit"]} if ins else {}


def main() -> None:
    d = Path(sys.argv[1])
    names = sorted(p.name[:-len(".json")] for p in d.glob("*.json")
                   if not p.name.endswith(".inspect.json") and p.name != "hessians.json")
    print("| configuration | avg bits | ppl before | ppl after | mean rel. error | outliers | param ratio | "
          "kv ratio | phase 2 s | total s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    runs = {}
    for n in names:
        run, ins = load(d, n)
        if run is None:
            print(f"| {n} | failed | | | | | | | | |")
            continue
        runs[n] = (run, ins)
        s = run.get("seconds", {})
        fmt = lambda k, f="{:.4f}": f.format(run[k]) if k in run else "–"
        print(f"| {n} | {run['avg_bits']:.3f} | {fmt('ppl_before')} | {fmt('ppl_after')} | "
              f"{run['mean_rel_error']:.4f} | {100 * run.get('outlier_rate', 0):.3f} % | {fmt('param_ratio')} | "
              f"{fmt('kv_cache_ratio')} | {s.get('compress', 0):.1f} | {s.get('total', 0):.1f} |")

    if all(k in runs for k in ("caldera-r64-lr16", "quip-2bit", "rtn-2bit")):
        c, q, r = (per_matrix(runs[k][1]) for k in ("caldera-r64-lr16", "quip-2bit", "rtn-2bit"))
        ok = [u for u in c if c[u] < q.get(u, -1) < r.get(u, -1)]
        bad = sorted(set(c) - set(ok))
        print(f"\nPer matrix, error CALDERA r64/16-bit < QuIP# 2-bit < RTN 2-bit: {len(ok)} of {len(c)} matrices"
              + ("" if not bad else "; not on: " + ", ".join(f"{u} ({c[u]:.4f} / {q.get(u)} / {r.get(u)})" for u in bad)))
        worst = max(c, key=lambda u: c[u] / q[u]) if c else None
        if worst:
            print(f"largest CALDERA/QuIP# error ratio: {worst} {c[worst] / q[worst]:.3f}; "
                  f"largest QuIP#/RTN: {max(q[u] / r[u] for u in q):.3f}")

    for ratio in ("95", "90", "85"):
        trio = [runs.get(f"{m}-r{ratio}") for m in ("svdllm", "asvd", "asvd-plainsvd")]
        if all(trio):
            p = [t[0].get("ppl_after", float("nan")) for t in trio]
            verdict = "holds" if p[0] <= p[1] <= p[2] else "does NOT hold"
            print(f"ratio 0.{ratio}: ppl SVD-LLM {p[0]:.4f} <= ASVD {p[1]:.4f} <= SVD {p[2]:.4f}: {verdict}")


if __name__ == "__main__":
    main()
