#!/usr/bin/env python3
"""Writes tests/fixtures/quant_<type>.bin: reference block (de)quantisation from the gguf package.

For each GGUF block type the file holds:
  (a) only for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, which gguf can quantize: input floats, the bytes
      gguf.quants.quantize makes of them, and gguf's dequantisation of those bytes;
  (b) for every type: random block bytes (finite random f16 scales, random everything
      else) and gguf's dequantisation of them.

Layout (little-endian):
  char[8] "ANVQNT01"
  u32 n_a; f32 inputs[n_a]; u8 bytes[n_a / block_elems * block_bytes]; f32 dequantized[n_a]
  u32 n_b; u8 bytes[n_b / block_elems * block_bytes]; f32 dequantized[n_b]

Run: /tmp/venvtest/bin/python tools/gen_quant_fixtures.py  (needs numpy and gguf)
"""
import pathlib
import struct

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize, quantize

OUT_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
T = GGMLQuantizationType
# name -> (type, gguf can quantize it, byte offsets of the f16 scales in one block)
TYPES = {
    "q8_0": (T.Q8_0, True, [0]),
    "q4_0": (T.Q4_0, True, [0]),
    "q4_1": (T.Q4_1, True, [0, 2]),
    "q5_0": (T.Q5_0, True, [0]),
    "q5_1": (T.Q5_1, True, [0, 2]),
    "q4_k": (T.Q4_K, False, [0, 2]),
    "q5_k": (T.Q5_K, False, [0, 2]),
    "q6_k": (T.Q6_K, False, [208]),
}


def edge_blocks(block_elems: int) -> list[np.ndarray]:
    """Blocks that hit the quantizers' special cases."""
    n = block_elems
    ramp = np.arange(n, dtype=np.float32)
    blocks = [
        np.zeros(n, np.float32),                              # d == 0
        np.full(n, 0.75, np.float32),                         # constant
        np.full(n, -3.0, np.float32),
        np.where(ramp == 5, np.float32(2.5), np.float32(0)),  # one non-zero
        np.where(ramp % 2 == 0, np.float32(1.5), np.float32(-1.5)),  # |max| twice, first one positive
        np.where(ramp % 2 == 0, np.float32(-1.5), np.float32(1.5)),  # first one negative
        # Grid points and half-way points for scale 1 (ties in round / trunc(x + 0.5)).
        np.concatenate([[127.0, -8.0, 15.0, -16.0], (ramp[4:] % 17) - 8.5]).astype(np.float32),
        np.concatenate([[0.0, 15.0], (ramp[2:] % 16) + 0.5]).astype(np.float32),
    ]
    return blocks


def quantizable_inputs(block_elems: int, rng: np.random.Generator) -> np.ndarray:
    blocks = edge_blocks(block_elems)
    for scale in 10.0 ** rng.uniform(-4, 3, size=8):
        if rng.random() < 0.5:
            blocks.append((rng.standard_normal(block_elems) * scale).astype(np.float32))
        else:
            blocks.append((rng.uniform(-1, 1, block_elems) * scale + rng.uniform(-1, 1) * scale).astype(np.float32))
    return np.concatenate(blocks).reshape(1, -1)


def random_blocks(num_blocks: int, block_bytes: int, scale_offsets: list[int], rng: np.random.Generator) -> np.ndarray:
    data = rng.integers(0, 256, size=(num_blocks, block_bytes), dtype=np.uint8)
    for offset in scale_offsets:
        scales = (10.0 ** rng.uniform(-4, 1, size=num_blocks)) * rng.choice([-1.0, 1.0], size=num_blocks)
        data[:, offset:offset + 2] = scales.astype("<f2").view(np.uint8).reshape(num_blocks, 2)
    return data


def write_type(name: str, rng: np.random.Generator) -> None:
    qtype, can_quantize, scale_offsets = TYPES[name]
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    path = OUT_DIR / f"quant_{name}.bin"
    with open(path, "wb") as out:
        out.write(b"ANVQNT01")
        if can_quantize:
            inputs = quantizable_inputs(block_elems, rng)
            quantized = quantize(inputs, qtype)
            dequantized = dequantize(quantized, qtype)
            out.write(struct.pack("<I", inputs.size))
            out.write(inputs.astype("<f4").tobytes())
            out.write(quantized.tobytes())
            out.write(dequantized.astype("<f4").tobytes())
        else:
            out.write(struct.pack("<I", 0))
        num_blocks = 16 if block_elems == 32 else 4
        data = random_blocks(num_blocks, block_bytes, scale_offsets, rng)
        dequantized = dequantize(data.reshape(1, -1), qtype)
        assert np.all(np.isfinite(dequantized))
        out.write(struct.pack("<I", dequantized.size))
        out.write(data.tobytes())
        out.write(dequantized.astype("<f4").tobytes())
    print(f"{path.name}: {path.stat().st_size} bytes")


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240612)
    for name in TYPES:
        write_type(name, rng)


if __name__ == "__main__":
    main()
