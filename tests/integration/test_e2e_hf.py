#!/usr/bin/env python3
"""The dense and PEFT exports through Hugging Face itself (lib/hf_check.py, run with
$CALDERA_HF_PYTHON, the CMake cache variable CALDERA_HF_PYTHON, default: the python3 CMake found):

  - transformers loads `export --format dense --out D` unchanged (AutoModelForCausalLM, no custom
    code) and its perplexity on the first eval sequences equals `caldera-dist eval --model D`
    within 1e-4 relative (the tolerance the bundled golden perplexities are checked with);
  - with peft: base + adapter (`export --format peft --out P`) gives the dense export's perplexity
    within 1e-2 relative, and merge_and_unload() gives the dense weights within 1e-2 relative
    Frobenius norm per linear (both are bf16 roundings of the same reconstruction).

Skipped (exit 77, reason printed) when torch or transformers cannot be imported by that
interpreter; CI needs `pip install torch transformers safetensors peft` (CPU is enough) in it. The
peft part alone is skipped, with a printed reason, when only peft is missing.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (CALDERA_ARGS, EVAL_SEQS, SEQ_LEN, Caldera, TestSkip, check, copy_workdir, log, main)

HF_PPL_REL_TOL = 1e-4
PEFT_PPL_REL_TOL = 1e-2
MERGE_REL_TOL = 1e-2


def test() -> None:
    python = os.environ.get("CALDERA_HF_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import torch, transformers"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise TestSkip(f"{python} cannot import torch and transformers ({reason}); "
                       "install them (pip install torch transformers safetensors peft) or point "
                       "CALDERA_HF_PYTHON at an interpreter that has them")
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = copy_workdir(ref.root, scratch / "work")
    dense, peft = scratch / "dense", scratch / "peft"
    for fmt, out in (("dense", dense), ("peft", peft)):
        c.run(["export", *c.session_args(w), *CALDERA_ARGS, "--format", fmt, "--out", str(out)], w, ranks=0)
    ours = c.run(["eval", "--model", str(dense), "--tokens", str(c.eval_tokens), "--seq-len", str(SEQ_LEN),
                  "--max-seqs", str(EVAL_SEQS), "--backend", "cpu", "--json"], scratch / "eval", ranks=0).summary()["ppl"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    log(f"running lib/hf_check.py with {python}")
    r = subprocess.run([python, str(Path(__file__).resolve().parent / "lib" / "hf_check.py"), "--dense", str(dense),
                        "--peft", str(peft), "--tokens", str(c.eval_tokens), "--seq-len", str(SEQ_LEN),
                        "--seqs", str(EVAL_SEQS)], capture_output=True, text=True, env=env, timeout=900)
    check(r.returncode == 0, f"hf_check.py failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    hf = json.loads(r.stdout.strip().splitlines()[-1])
    log(f"transformers {hf['transformers']} / torch {hf['torch']}: {hf['dense_class']} ppl {hf['dense_ppl']!r}, "
        f"caldera-dist eval {ours!r} (rel diff {abs(hf['dense_ppl'] / ours - 1):.2e})")
    check(hf["dense_class"] == "LlamaForCausalLM", f"transformers loaded {hf['dense_class']}")
    check(abs(hf["dense_ppl"] / ours - 1) < HF_PPL_REL_TOL,
          f"transformers ppl of the dense export {hf['dense_ppl']} vs caldera-dist eval {ours}")
    if "peft_skipped" in hf:
        print(f"SKIPPED PART: {hf['peft_skipped']} (base + adapter not checked through peft)", flush=True)
        return
    log(f"peft {hf['peft']}: ppl {hf['peft_ppl']!r}; merged weights worst relative difference "
        f"{hf['merged_worst_rel']:.2e} ({hf['merged_worst_module']}, {hf['merged_modules']} modules)")
    check(hf["merged_modules"] == 28, f"merged {hf['merged_modules']} linear modules, expected 28")
    check(hf["merged_worst_rel"] < MERGE_REL_TOL, f"merged weights differ from the dense export: {hf['merged_worst_rel']}")
    check(abs(hf["peft_ppl"] / hf["dense_ppl"] - 1) < PEFT_PPL_REL_TOL,
          f"peft base + adapter ppl {hf['peft_ppl']} vs dense {hf['dense_ppl']}")


if __name__ == "__main__":
    main(test)
