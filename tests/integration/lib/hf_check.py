"""Run by test_e2e_hf.py with an interpreter that has torch + transformers (and optionally peft):
loads caldera-dist's dense export with Hugging Face transformers, unchanged, and measures its
perplexity the way tests/data/golden.json was made (fp32 compute from the bf16 weights, each
sequence alone, every position); with peft, loads the PEFT export (base model + adapter/),
measures the same perplexity through the adapter and compares the merged weights with the dense
export's. Prints one JSON object on the last stdout line.

  hf_check.py --dense D --tokens eval.u32 --seq-len 512 --seqs 4 [--peft P]
"""
import argparse
import array
import json
import math
import sys

import torch
import transformers


def load_tokens(path: str, seq_len: int, seqs: int) -> list[list[int]]:
    a = array.array("I")
    with open(path, "rb") as f:
        a.frombytes(f.read(seq_len * seqs * 4))
    if sys.byteorder != "little":
        a.byteswap()
    return [list(a[i * seq_len:(i + 1) * seq_len]) for i in range(seqs)]


@torch.no_grad()
def perplexity(model, sequences: list[list[int]]) -> float:
    total, count = 0.0, 0
    for seq in sequences:
        ids = torch.tensor([seq], dtype=torch.long)
        logits = model(input_ids=ids).logits[0, :-1].float()
        total += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        count += len(seq) - 1
    return math.exp(total / count)


def linear_weights(model) -> dict:
    return {name: module.weight.detach().float().clone() for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and ".layers." in name}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dense", required=True)
    ap.add_argument("--peft")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--seqs", type=int, required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    sequences = load_tokens(args.tokens, args.seq_len, args.seqs)
    out = {"transformers": transformers.__version__, "torch": torch.__version__}

    dense = transformers.AutoModelForCausalLM.from_pretrained(args.dense, torch_dtype=torch.float32)
    dense.eval()
    out["dense_class"] = type(dense).__name__
    out["dense_ppl"] = perplexity(dense, sequences)
    if args.peft:
        try:
            import peft
        except ImportError as e:
            out["peft_skipped"] = f"peft not importable: {e}"
        else:
            out["peft"] = peft.__version__
            base = transformers.AutoModelForCausalLM.from_pretrained(args.peft, torch_dtype=torch.float32)
            model = peft.PeftModel.from_pretrained(base, f"{args.peft}/adapter")
            model.eval()
            out["peft_ppl"] = perplexity(model, sequences)
            merged = linear_weights(model.merge_and_unload())
            reference = linear_weights(dense)
            if set(merged) != set(reference):
                raise SystemExit(f"merged linears {sorted(set(merged) ^ set(reference))[:4]} differ from the dense model's")
            rel = {n: ((merged[n] - reference[n]).norm() / reference[n].norm()).item() for n in reference}
            out["merged_worst_rel"] = max(rel.values())
            out["merged_worst_module"] = max(rel, key=rel.get)
            out["merged_modules"] = len(rel)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
