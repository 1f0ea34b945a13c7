"""A minimal, independent safetensors reader for the end-to-end tests (standard library only): header
parsing per the format (8-byte little-endian header length, JSON header, data offsets relative to
the end of the header) and bf16/f16/f32 decoding to Python floats via `array`/`struct`. It checks
the header the way the format requires, so it also serves as a second opinion on our writer.
"""

from __future__ import annotations

import array
import json
import struct
import sys
from pathlib import Path

DTYPE_SIZES = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class SafetensorsFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.blob = self.path.read_bytes()
        if len(self.blob) < 8:
            raise ValueError(f"{path}: shorter than the 8-byte header length")
        (n,) = struct.unpack_from("<Q", self.blob, 0)
        if 8 + n > len(self.blob):
            raise ValueError(f"{path}: header length {n} beyond the file size {len(self.blob)}")
        header = json.loads(self.blob[8:8 + n].decode("utf-8"))
        self.metadata = header.pop("__metadata__", {})
        self.data_start = 8 + n
        self.tensors = header
        ends = []
        for name, t in self.tensors.items():
            begin, end = t["data_offsets"]
            numel = 1
            for d in t["shape"]:
                numel *= d
            if t["dtype"] not in DTYPE_SIZES:
                raise ValueError(f"{path}: tensor {name}: unknown dtype {t['dtype']}")
            if end - begin != numel * DTYPE_SIZES[t["dtype"]] or self.data_start + end > len(self.blob):
                raise ValueError(f"{path}: tensor {name}: offsets {begin}..{end} do not fit shape {t['shape']}")
            ends.append((begin, end))
        ends.sort()
        pos = 0
        for begin, end in ends:  # the format requires the data to be covered without holes or overlaps
            if begin != pos:
                raise ValueError(f"{path}: data offsets leave a hole or overlap at byte {pos}")
            pos = end
        if self.data_start + pos != len(self.blob):
            raise ValueError(f"{path}: {len(self.blob) - self.data_start - pos} trailing bytes after the data")

    def names(self) -> list[str]:
        return sorted(self.tensors)

    def dtype(self, name: str) -> str:
        return self.tensors[name]["dtype"]

    def shape(self, name: str) -> list[int]:
        return list(self.tensors[name]["shape"])

    def raw(self, name: str) -> bytes:
        begin, end = self.tensors[name]["data_offsets"]
        return self.blob[self.data_start + begin:self.data_start + end]

    def floats(self, name: str) -> array.array:
        """The tensor as a flat array('f') (row-major)."""
        dtype, raw = self.dtype(name), self.raw(name)
        if dtype == "F32":
            a = array.array("f")
            a.frombytes(raw)
        elif dtype == "BF16":
            h = array.array("H")
            h.frombytes(raw)
            u = array.array("I", (x << 16 for x in h))
            a = array.array("f")
            a.frombytes(u.tobytes())
        elif dtype == "F16":
            n = len(raw) // 2
            a = array.array("f", struct.unpack(f"<{n}e", raw))
        else:
            raise ValueError(f"{self.path}: tensor {name}: dtype {dtype} is not floating point")
        if sys.byteorder != "little":
            a.byteswap()
        return a


class SafetensorsDir:
    """Every *.safetensors file of a model directory, by tensor name (shards are checked against
    model.safetensors.index.json when there is one)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.files = [SafetensorsFile(p) for p in sorted(self.dir.glob("*.safetensors"))]
        self.where = {}
        for f in self.files:
            for name in f.tensors:
                if name in self.where:
                    raise ValueError(f"{self.dir}: tensor {name} in two shards")
                self.where[name] = f
        index = self.dir / "model.safetensors.index.json"
        if index.exists():
            wm = json.loads(index.read_text())["weight_map"]
            if set(wm) != set(self.where):
                raise ValueError(f"{index}: weight_map does not list exactly the tensors of the shards")
            for name, shard in wm.items():
                if self.where[name].path.name != shard:
                    raise ValueError(f"{index}: {name} mapped to {shard}, found in {self.where[name].path.name}")

    def names(self) -> list[str]:
        return sorted(self.where)

    def __getitem__(self, name: str) -> SafetensorsFile:
        return self.where[name]
