#!/usr/bin/env python3
"""The low-rank methods (ASVD, SVD-LLM, SVD; spec asvd-svdllm.md) through `caldera-dist run` on
minillama-tiny, with the rank-allocation step between phases 1 and 2 (pipeline/method_setup.h):

  - svdllm with the sensitivity search (STRS) at param ratio 0.8: exit 0, the --json summary's
    achieved param_ratio within one rank step of the target (spec §5.2; allowance 0.02 on this
    model), the sensitivity tables written under <workdir>/sensitivity, perplexity after above the
    bf16 one; `eval --model <workdir>/output` gives the run's ppl_after (the compressed output/ is
    read back through Method::reconstruct); `inspect` reports the method;
  - the same run on 2 ranks gives byte-identical output/ (data-parallel sensitivity pass);
  - a rerun of the finished run is a no-op that reuses the sensitivity tables (no new table file);
  - asvd with --kv-ratio 0.5 and uniform weights (param ratio 1): kv_cache_ratio within 0.05 of 0.5.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import EVAL_SEQS, SEQ_LEN, Caldera, Workdir, check, compare_trees, log, main

RATIO = 0.8
RATIO_ALLOWANCE = 0.02
LOWRANK_ARGS = ["--sensitivity-seqs", "2", "--sensitivity-candidates", "0.5,0.7,0.9"]


def run_lowrank(c: Caldera, w: Path, ranks: int, extra: list[str]) -> dict:
    args = ["run", *c.session_args(w), *LOWRANK_ARGS, *extra, "--eval-tokens", str(c.eval_tokens),
            "--eval-max-seqs", str(EVAL_SEQS), "--json"]
    return c.run(args, w, ranks=ranks).summary()


def table_files(w: Path) -> list[Path]:
    return sorted((w / "sensitivity").rglob("*.json"))


def test() -> None:
    c = Caldera()
    scratch = c.fresh_scratch()
    svdllm = ["--method", "svdllm", "--param-ratio", str(RATIO), "--rank-search", "sensitivity"]

    w1 = scratch / "svdllm-1"
    s = run_lowrank(c, w1, 0, svdllm)
    log(f"svdllm: {s}")
    check(s["method"] == "svdllm", f"method in the summary: {s['method']}")
    check(abs(s["param_ratio"] - RATIO) <= RATIO_ALLOWANCE,
          f"achieved param ratio {s['param_ratio']} vs target {RATIO} (allowance {RATIO_ALLOWANCE})")
    tables = table_files(w1)
    check(len(tables) > 0, f"no sensitivity tables under {w1 / 'sensitivity'}")
    check(s["ppl_after"] > s["ppl_before"], f"ppl after {s['ppl_after']} not above bf16 {s['ppl_before']}")
    e = c.run(["eval", "--model", str(w1 / "output"), "--tokens", str(c.eval_tokens), "--seq-len", str(SEQ_LEN),
               "--max-seqs", str(EVAL_SEQS), "--backend", "cpu", "--json"], scratch / "eval", ranks=0).summary()
    check(abs(e["ppl"] - s["ppl_after"]) <= 1e-6 * s["ppl_after"],
          f"eval of output/ {e['ppl']} != run's ppl_after {s['ppl_after']}")
    info = c.run(["inspect", "--workdir", str(w1), "--json"], scratch / "inspect", ranks=0).summary()
    check(info.get("method") == "svdllm", f"inspect's method: {info.get('method')}")

    w2 = scratch / "svdllm-2"
    s2 = run_lowrank(c, w2, 2, svdllm)
    check(s2["world_size"] == 2, f"world size {s2['world_size']}")
    compare_trees(Workdir(w2).output_digest(), Workdir(w1).output_digest(), f"{w2}/output (2 ranks)")

    mtimes = {p: p.stat().st_mtime_ns for p in tables}
    run_lowrank(c, w1, 0, svdllm)
    check(table_files(w1) == tables and all(p.stat().st_mtime_ns == mtimes[p] for p in tables),
          "the rerun of a finished run rewrote or added sensitivity tables")

    kv = run_lowrank(c, scratch / "asvd-kv", 0, ["--method", "asvd", "--param-ratio", "1", "--kv-ratio", "0.5",
                                                   "--kv-candidates", "0.25,0.5,0.75"])
    log(f"asvd kv: {kv}")
    check(abs(kv["kv_cache_ratio"] - 0.5) <= 0.05, f"KV-cache ratio {kv['kv_cache_ratio']} vs target 0.5")


if __name__ == "__main__":
    main(test)
