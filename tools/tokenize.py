#!/usr/bin/env python3
"""Turn text files into a caldera-dist token file (little-endian uint32 ids, whole sequences).

    pip install -r tools/requirements-tokenize.txt
    python3 tools/tokenize.py --tokenizer tests/data/tokenizer.json --seq-len 512 --bos 0 \
        [--eos ID] [--max-seqs N] input.txt [more.txt ...] -o out.u32

Every input file is one document, read as UTF-8 and encoded with the Hugging Face tokenizer
(tokenizer.json) without special tokens. Documents are concatenated in the order given (with --eos ID
appended after each one, if asked) and the stream is cut into full sequences of --seq-len tokens;
with --bos ID every sequence starts with that id followed by seq_len - 1 tokens of the stream. The
incomplete remainder is dropped. The output is written atomically (temp file + rename) and the tool
prints the number of sequences and the file's SHA-256, which caldera-dist records for provenance.
"""
import os
import sys

# This file is named like the standard library's `tokenize` module, which tracebacks and `inspect`
# import: keep our own directory off the import path so they get the real one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import struct  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokenizer", required=True, help="Hugging Face tokenizer.json")
    p.add_argument("--seq-len", type=int, required=True, help="tokens per sequence (including BOS)")
    p.add_argument("--bos", type=int, default=None, help="token id to start every sequence with")
    p.add_argument("--eos", type=int, default=None, help="token id appended after every document")
    p.add_argument("--max-seqs", type=int, default=None, help="keep at most this many sequences")
    p.add_argument("-o", "--output", required=True, help="output token file (.u32)")
    p.add_argument("inputs", nargs="+", help="UTF-8 text files, one document each")
    args = p.parse_args(argv)
    if args.seq_len < 1 or (args.bos is not None and args.seq_len < 2):
        p.error("--seq-len must be >= 1 (>= 2 with --bos)")
    if args.max_seqs is not None and args.max_seqs < 1:
        p.error("--max-seqs must be >= 1")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        from tokenizers import Tokenizer
    except ImportError:
        sys.exit("tokenize.py: the 'tokenizers' package is missing: pip install -r tools/requirements-tokenize.txt")
    tok = Tokenizer.from_file(args.tokenizer)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    for name, tid in (("--bos", args.bos), ("--eos", args.eos)):
        if tid is not None and not 0 <= tid < vocab:
            sys.exit(f"tokenize.py: {name} {tid} is outside the tokenizer's vocabulary [0, {vocab})")

    stream = []
    for path in args.inputs:
        with open(path, encoding="utf-8") as f:
            stream.extend(tok.encode(f.read(), add_special_tokens=False).ids)
        if args.eos is not None:
            stream.append(args.eos)

    body = args.seq_len - (1 if args.bos is not None else 0)
    n_seqs = len(stream) // body
    if args.max_seqs is not None:
        n_seqs = min(n_seqs, args.max_seqs)
    if n_seqs == 0:
        sys.exit(f"tokenize.py: {len(stream)} tokens do not fill one sequence of {args.seq_len}")

    out = bytearray()
    for s in range(n_seqs):
        seq = stream[s * body:(s + 1) * body]
        if args.bos is not None:
            seq = [args.bos] + seq
        out += struct.pack(f"<{len(seq)}I", *seq)

    tmp = f"{args.output}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(out)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, args.output)
    dropped = len(stream) - n_seqs * body
    print(f"wrote {n_seqs} sequences x {args.seq_len} tokens to {args.output} "
          f"({len(stream)} tokens read, {dropped} dropped)")
    print(f"sha256 {hashlib.sha256(out).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1:])
