#!/usr/bin/env python3
"""Damaged files in a finished work directory are detected and recomputed, never loaded (DESIGN §3:
"a file that does not verify is recomputed, never loaded"); the rerun's output/ is byte-identical to
the reference. On a private copy of the reference workdir:

  hessians/layer_000.h5           truncated to half        -> layer 0 recollected
  hessians/layer_002.h5           bits flipped              -> layer 2 recollected (1 and 3 not)
  tasks/L001.mlp.down_proj.h5     truncated to half         -> recomputed
  tasks/L002.self_attn.q_proj.h5  bits flipped              -> recomputed
  tasks/L003.mlp.up_proj.h5.sha256  deleted (no completion record) -> recomputed
  tasks/L000.self_attn.o_proj.h5  deleted, sidecar kept     -> recomputed
  output/model-*.safetensors      bits flipped              -> rewritten by the export
  temp files of interrupted writes planted in hessians/, tasks/, output/ -> removed at start

Expected from the rerun's rank log: the warnings naming each damaged file, "removed 3 leftover temp
file(s)", hessians_done.layers_collected == 2, compress_done.units_computed == 4 with the other 24
reused.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from caldera_harness import (N_UNITS, Caldera, Workdir, check, copy_workdir, flip_bit, last_event, main,
                             require_message, require_stderr, truncate)

DAMAGED_UNITS = ["L001.mlp.down_proj", "L002.self_attn.q_proj", "L003.mlp.up_proj", "L000.self_attn.o_proj"]


def flip_bits(path: Path) -> None:
    size = path.stat().st_size
    for frac in (0.3, 0.5, 0.7):
        flip_bit(path, int(size * frac), 5)


def test() -> None:
    c = Caldera()
    ref = c.reference()
    scratch = c.fresh_scratch()
    w = copy_workdir(ref.root, scratch / "work")
    wd = Workdir(w)

    truncate(wd.hessian(0), 0.5)
    flip_bits(wd.hessian(2))
    truncate(wd.task("L001.mlp.down_proj"), 0.5)
    flip_bits(wd.task("L002.self_attn.q_proj"))
    (w / "tasks" / "L003.mlp.up_proj.h5.sha256").unlink()
    wd.task("L000.self_attn.o_proj").unlink()
    shard = sorted(wd.output.glob("model-*.safetensors"))[0]
    flip_bits(shard)
    planted = [w / "hessians" / "layer_001.h5.tmp.424242", w / "tasks" / "L000.mlp.up_proj.h5.tmp.424242",
               w / "output" / f"{shard.name}.tmp.424242"]
    for p in planted:
        p.write_bytes(b"half-written")

    r, cursor = c.resume_and_compare(w, ref, ranks=0)
    for p in planted:
        check(not p.exists(), f"leftover {p} was not removed")
    require_stderr(r, r"removed 3 leftover temp file\(s\) of interrupted writes", "planted temp files")
    for layer in (0, 2):
        require_message(wd, cursor, rf"layer_00{layer}\.h5 does not verify and will be recomputed", f"damaged layer {layer}")
    require_message(wd, cursor, r"L001\.mlp\.down_proj\.h5: does not verify, recomputing", "truncated task file")
    require_message(wd, cursor, r"L002\.self_attn\.q_proj\.h5: does not verify, recomputing", "bit-flipped task file")
    require_message(wd, cursor, r"L003\.mlp\.up_proj\.h5: no completion record", "missing sidecar")
    hd = last_event(wd, cursor, "hessians_done")
    check(hd["layers_collected"] == 2, f"expected layers 0 and 2 recollected: {hd}")
    check(wd.collected_layers(cursor) == [0, 2], f"recollected layers: {wd.collected_layers(cursor)}")
    cd = last_event(wd, cursor, "compress_done")
    check(cd["units_computed"] == len(DAMAGED_UNITS) and cd["units_reused"] == N_UNITS - len(DAMAGED_UNITS),
          f"compress_done: {cd}")
    recomputed = sorted(e["unit"] for e in wd.events(cursor) if e.get("event") == "unit_done")
    check(recomputed == sorted(DAMAGED_UNITS), f"recomputed units {recomputed}, expected {sorted(DAMAGED_UNITS)}")


if __name__ == "__main__":
    main(test)
