"""Dequantises rows of real tensors of the default model (SmolLM2-135M-Instruct Q4_1 GGUF)
with the reference `gguf` package and writes them to
tests/fixtures/smollm2/dequant_rows.safetensors: for each tensor, rows 0, 1, 2 and the last
row as float32 under "<tensor name>" (shape (4, row length)). The C++ test
tests/io/gguf_real_model_test.cpp dequantises the same rows and compares bit for bit.

Run: .venv/bin/python tools/gen_real_dequant_fixture.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import pathlib
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.29.ffn_gate.weight",
           "output_norm.weight"]


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    reader = GGUFReader(model)
    by_name = {tensor.name: tensor for tensor in reader.tensors}
    out = {}
    for name in TENSORS:
        tensor = by_name[name]
        rows = np.asarray(tensor.data)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        picked = rows[[0, 1, 2, -1]] if rows.shape[0] > 3 else rows
        values = dequantize(picked, tensor.tensor_type).astype(np.float32)
        out[name] = np.ascontiguousarray(values.reshape(picked.shape[0], -1))
        print(name, tensor.tensor_type.name, out[name].shape)
    target = ROOT / "tests" / "fixtures" / "smollm2" / "dequant_rows.safetensors"
    save_file(out, str(target))
    print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
