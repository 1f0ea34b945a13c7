#!/usr/bin/env python3
"""Phase 3's other formats on the reference run (a private copy of its workdir), checked with an
independent safetensors reader (lib/safetensors_lite.py, standard library only):

  export --format dense --out D
    - config.json: the original one, torch_dtype bfloat16, no quantization_config;
    - exactly the original model's tensors and shapes; the 28 linear weights in BF16; every other
      tensor (embeddings, norms, lm_head) byte-identical to the original;
    - `caldera-dist eval --model D` agrees with `eval --model <workdir>/output` within bf16 rounding
      of the reconstructed weights (relative 2e-3 on the perplexity);
    - a second export gives byte-identical files.
  export --format peft --out P
    - adapter/adapter_config.json: LORA, r = lora_alpha = 16 (the run's rank), the 7 projections;
    - adapter/adapter_model.safetensors: lora_A [16, in] and lora_B [out, 16] (BF16) for every
      linear, named base_model.model.<module>.lora_{A,B}.weight;
    - base + lora_B·lora_A reproduces the dense export's weight (sampled entries, relative 1e-2:
      both sides are bf16 roundings), while base alone does not (the adapter carries the low-rank
      term, Hadamard/sign transforms folded in);
    - the non-linear tensors and config equal the dense export's.
  export with a unit missing fails (exit 1) naming the unit.
The same checks through Hugging Face transformers/peft are in test_e2e_hf.py.
"""
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (CALDERA_ARGS, EVAL_SEQS, EXIT_FAILURE, N_UNITS, SEQ_LEN, Caldera, check,
                             compare_trees, copy_workdir, log, main, tree_digest)
from safetensors_lite import SafetensorsDir

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK = 16
PPL_REL_TOL = 2e-3     # bf16 rounding of every reconstructed weight, seen as ~1e-4 here
MERGE_REL_TOL = 1e-2   # |base + B·A - dense| / |dense| on sampled entries: bf16 has 8 significant bits
SAMPLES = 2000


def linear_names(n_layers: int) -> list[str]:
    out = []
    for l in range(n_layers):
        for p in PROJECTIONS:
            block = "mlp" if p in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            out.append(f"model.layers.{l}.{block}.{p}")
    return out


def export(c: Caldera, w: Path, fmt: str, out: Path, expect_rc: int = 0):
    args = ["export", *c.session_args(w), *CALDERA_ARGS, "--format", fmt, "--out", str(out), "--json"]
    return c.run(args, w, ranks=0, expect_rc=expect_rc)


def ppl(c: Caldera, model: Path) -> float:
    r = c.run(["eval", "--model", str(model), "--tokens", str(c.eval_tokens), "--seq-len", str(SEQ_LEN),
               "--max-seqs", str(EVAL_SEQS), "--backend", "cpu", "--json"], c.scratch / "eval", ranks=0)
    return r.summary()["ppl"]


def test() -> None:
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = copy_workdir(ref.root, scratch / "work")
    original_cfg = json.loads((c.model / "config.json").read_text())
    n_layers = original_cfg["num_hidden_layers"]
    linears = linear_names(n_layers)
    orig = SafetensorsDir(c.model)

    # ---- dense
    dense = scratch / "dense"
    s = export(c, w, "dense", dense).summary()
    check(s["format"] == "dense" and s["units"] == N_UNITS, f"export summary {s}")
    cfg = json.loads((dense / "config.json").read_text())
    check("quantization_config" not in cfg, "dense export has a quantization_config")
    check(cfg.get("torch_dtype") == "bfloat16", f"dense torch_dtype {cfg.get('torch_dtype')}")
    for k, v in original_cfg.items():
        if k not in ("torch_dtype", "dtype"):
            check(cfg.get(k) == v, f"dense config.json: {k} = {cfg.get(k)!r}, original {v!r}")
    d = SafetensorsDir(dense)
    check(d.names() == orig.names(), f"dense tensors differ from the original's: "
                                     f"{sorted(set(d.names()) ^ set(orig.names()))}")
    for name in d.names():
        check(d[name].shape(name) == orig[name].shape(name), f"{name}: shape {d[name].shape(name)}")
        if name.endswith(".weight") and name[: -len(".weight")] in linears:
            check(d[name].dtype(name) == "BF16", f"{name}: dtype {d[name].dtype(name)}")
            check(d[name].raw(name) != orig[name].raw(name), f"{name}: the original weight, not the reconstruction")
        else:
            check(d[name].raw(name) == orig[name].raw(name), f"{name}: untouched tensor changed")
    ppl_dense, ppl_out = ppl(c, dense), ppl(c, w / "output")
    log(f"ppl dense {ppl_dense!r}, compressed output/ {ppl_out!r} (rel diff {abs(ppl_dense / ppl_out - 1):.2e})")
    check(abs(ppl_dense / ppl_out - 1) < PPL_REL_TOL, f"dense export ppl {ppl_dense} vs output/ {ppl_out}")
    dense2 = scratch / "dense2"
    export(c, w, "dense", dense2)
    compare_trees(tree_digest(dense2), tree_digest(dense), "a second dense export")

    # ---- peft
    peft = scratch / "peft"
    export(c, w, "peft", peft)
    acfg = json.loads((peft / "adapter" / "adapter_config.json").read_text())
    check(acfg.get("peft_type") == "LORA" and acfg.get("r") == RANK and acfg.get("lora_alpha") == RANK,
          f"adapter_config.json: {acfg}")
    check(sorted(acfg.get("target_modules", [])) == sorted(PROJECTIONS), f"target_modules {acfg.get('target_modules')}")
    check(json.loads((peft / "config.json").read_text()) == cfg, "peft base config.json differs from the dense one")
    adapter = SafetensorsDir(peft / "adapter")
    expected = sorted(f"base_model.model.{m}.lora_{ab}.weight" for m in linears for ab in ("A", "B"))
    check(adapter.names() == expected, f"adapter tensors: {sorted(set(adapter.names()) ^ set(expected))[:6]}...")
    base = SafetensorsDir(peft)
    check(base.names() == d.names(), "peft base tensors differ from the dense export's")
    rng = random.Random(1234)
    worst, lr_share = 0.0, []
    for m in linears:
        out_f, in_f = d[m + ".weight"].shape(m + ".weight")
        a_name, b_name = f"base_model.model.{m}.lora_A.weight", f"base_model.model.{m}.lora_B.weight"
        check(adapter[a_name].shape(a_name) == [RANK, in_f] and adapter[b_name].shape(b_name) == [out_f, RANK],
              f"{m}: lora_A {adapter[a_name].shape(a_name)}, lora_B {adapter[b_name].shape(b_name)}")
        check(adapter[a_name].dtype(a_name) == "BF16" and base[m + ".weight"].dtype(m + ".weight") == "BF16",
              f"{m}: adapter/base dtypes")
        A, B = adapter[a_name].floats(a_name), adapter[b_name].floats(b_name)
        W, W0 = d[m + ".weight"].floats(m + ".weight"), base[m + ".weight"].floats(m + ".weight")
        num = den = lr = 0.0
        for _ in range(SAMPLES):
            i, j = rng.randrange(out_f), rng.randrange(in_f)
            ba = sum(B[i * RANK + k] * A[k * in_f + j] for k in range(RANK))
            num += (W0[i * in_f + j] + ba - W[i * in_f + j]) ** 2
            den += W[i * in_f + j] ** 2
            lr += ba * ba
        err = math.sqrt(num / den)
        worst = max(worst, err)
        lr_share.append(math.sqrt(lr / den))
        check(err < MERGE_REL_TOL, f"{m}: base + lora_B·lora_A differs from the dense weight by {err:.3e} (relative)")
    log(f"peft: worst relative |base + BA - dense| {worst:.2e}; |BA|/|W| from {min(lr_share):.3f} to {max(lr_share):.3f}")
    check(min(lr_share) > 10 * MERGE_REL_TOL, f"the adapter's low-rank term is negligible ({min(lr_share):.3e})")
    for name in d.names():
        if not (name.endswith(".weight") and name[: -len(".weight")] in linears):
            check(base[name].raw(name) == d[name].raw(name), f"peft base: {name} differs from the dense export")

    # ---- a missing unit
    (w / "tasks" / "L002.mlp.gate_proj.h5").unlink()
    r = export(c, w, "dense", scratch / "dense-missing", expect_rc=EXIT_FAILURE)
    check("unit L002.mlp.gate_proj is not finished" in r.err, f"missing unit not named:\n{r.err[-2000:]}")


if __name__ == "__main__":
    main(test)
