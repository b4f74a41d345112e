#!/usr/bin/env python3
"""Writes tests/fixtures/float_<format>.bin: reference conversions from numpy/ml_dtypes.

For each narrow float format (f16, bf16, f8_e4m3 = ml_dtypes float8_e4m3fn, f8_e5m2)
the file holds (a) the f32 value of every code and (b) a set of f32 inputs with the
code ml_dtypes rounds each to: random values over the whole f32 exponent range,
exact ties between neighbours (both parities) and their f32 neighbours, the format's
subnormals, values around the overflow threshold, +-0, +-Inf and NaN.

Layout (little-endian):
  char[8] "ANVFLT01"; u32 code_bytes (1 or 2); u32 num_codes; f32 decoded[num_codes];
  u32 num_inputs; f32 inputs[num_inputs]; u8/u16 encoded[num_inputs]

Run: /tmp/venvtest/bin/python tools/gen_dtype_fixtures.py  (needs numpy, ml_dtypes)
"""
import pathlib
import struct

import ml_dtypes
import numpy as np

OUT_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
FORMATS = {
    "f16": (np.float16, np.uint16),
    "bf16": (ml_dtypes.bfloat16, np.uint16),
    "f8_e4m3": (ml_dtypes.float8_e4m3fn, np.uint8),
    "f8_e5m2": (ml_dtypes.float8_e5m2, np.uint8),
}


def f32_neighbours(values: np.ndarray) -> np.ndarray:
    """The values and the f32 numbers one ulp either side of them."""
    values = values.astype(np.float32)
    up = np.nextafter(values, np.float32(np.inf))
    down = np.nextafter(values, np.float32(-np.inf))
    return np.concatenate([values, up, down])


def decode_all(dtype, code_type) -> np.ndarray:
    codes = np.arange(np.iinfo(code_type).max + 1, dtype=code_type)
    return codes.view(dtype).astype(np.float32)


def encode_inputs(dtype, code_type, rng: np.random.Generator) -> np.ndarray:
    decoded = decode_all(dtype, code_type)
    finite = np.unique(decoded[np.isfinite(decoded) & (decoded >= 0)].astype(np.float64))  # ascending, +0 first
    info = ml_dtypes.finfo(dtype)
    max_finite = float(info.max)
    min_subnormal = float(info.smallest_subnormal)
    min_normal = float(info.smallest_normal)

    parts = []
    # Random f32 bit patterns: every exponent, both signs (NaN patterns included).
    parts.append(rng.integers(0, 2**32, size=1500, dtype=np.uint64).astype(np.uint32).view(np.float32))
    # Random magnitudes log-uniform over the format's range and a little beyond.
    exponents = rng.uniform(np.log2(min_subnormal) - 3, np.log2(max_finite) + 2, size=1500)
    parts.append((np.exp2(exponents) * rng.choice([-1.0, 1.0], size=1500)).astype(np.float32))
    # Exact midpoints between neighbouring finite values (ties of both parities) and f32 neighbours.
    pairs = np.arange(len(finite) - 1)
    if len(pairs) > 600:
        pairs = np.unique(np.concatenate([pairs[:100], pairs[-100:], rng.choice(pairs, 400, replace=False)]))
    midpoints = (finite[pairs] + finite[pairs + 1]) / 2
    assert np.all(midpoints.astype(np.float32).astype(np.float64) == midpoints), "midpoints must be exact in f32"
    parts.append(f32_neighbours(midpoints))
    # Representable values themselves (subnormals first in `finite`).
    parts.append(f32_neighbours(finite[:64]))
    parts.append(f32_neighbours(finite[-64:]))
    # Below the smallest subnormal: half of it is a tie with zero.
    parts.append(f32_neighbours(np.array([min_subnormal / 2, min_subnormal / 4, min_subnormal * 0.75, min_normal])))
    # Around overflow: max, max + half ulp (tie), and the f32 numbers around it.
    top_ulp = finite[-1] - finite[-2]
    parts.append(f32_neighbours(np.array([max_finite, max_finite + top_ulp / 2, max_finite + top_ulp, 2 * max_finite])))
    parts.append(np.array([0.0, np.inf, np.nan, np.finfo(np.float32).max, np.finfo(np.float32).tiny,
                           np.finfo(np.float32).smallest_subnormal], dtype=np.float32))
    values = np.concatenate([p.astype(np.float32) for p in parts])
    return np.concatenate([values, -values])


def write_format(name: str, dtype, code_type, rng: np.random.Generator) -> None:
    decoded = decode_all(dtype, code_type)
    inputs = encode_inputs(dtype, code_type, rng)
    with np.errstate(over="ignore", invalid="ignore"):
        encoded = inputs.astype(dtype).view(code_type)
    path = OUT_DIR / f"float_{name}.bin"
    with open(path, "wb") as out:
        out.write(b"ANVFLT01")
        out.write(struct.pack("<II", np.dtype(code_type).itemsize, len(decoded)))
        out.write(decoded.astype("<f4").tobytes())
        out.write(struct.pack("<I", len(inputs)))
        out.write(inputs.astype("<f4").tobytes())
        out.write(encoded.astype(np.dtype(code_type).newbyteorder("<")).tobytes())
    print(f"{path.name}: {len(decoded)} codes, {len(inputs)} inputs, {path.stat().st_size} bytes")


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    np.seterr(over="ignore")  # inputs beyond f32 range are meant to become Inf
    for name, (dtype, code_type) in FORMATS.items():
        write_format(name, dtype, code_type, rng)


if __name__ == "__main__":
    main()
