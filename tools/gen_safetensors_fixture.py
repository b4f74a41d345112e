"""Writes tests/fixtures/io/tiny.safetensors with the reference `safetensors` package.

Tensors (values the C++ test recomputes):
  "a.f32"  (2, 3) float32: i * 0.5 - 1
  "b.bf16" (4,)   bfloat16 bits of 1, -2, 0.5, 3 (written as uint16 via a view)
  "c.i64"  (3,)   int64:   i * 1000 - 7
Metadata: {"format": "pt", "note": "anvil fixture"}
Run: .venv/bin/python tools/gen_safetensors_fixture.py
"""
import json
import pathlib
import struct

import numpy as np
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "io" / "tiny.safetensors"


def main() -> None:
    tensors = {
        "a.f32": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
        "c.i64": np.arange(3, dtype=np.int64) * 1000 - 7,
    }
    save_file(tensors, str(OUT), metadata={"format": "pt", "note": "anvil fixture"})
    # numpy has no bfloat16: rewrite the file with one extra BF16 tensor appended.
    raw = OUT.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    data = raw[8 + header_len:]
    bf16 = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32).view(np.uint32) >> 16
    extra = bf16.astype(np.uint16).tobytes()
    header["b.bf16"] = {"dtype": "BF16", "shape": [4], "data_offsets": [len(data), len(data) + len(extra)]}
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    OUT.write_bytes(struct.pack("<Q", len(text)) + text + data + extra)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
