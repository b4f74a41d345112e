"""Writes tests/fixtures/io/tiny.gguf with the reference `gguf` package (PyPI).

The file holds one metadata value of every GGUF type and a few small tensors whose
values follow formulas the C++ test (tests/io/gguf_test.cpp) recomputes:
  f32 tensor "t.f32", shape (3, 5):  value[i] = i * 0.25 - 1
  f16 tensor "t.f16", shape (2, 4):  value[i] = i * 0.5 - 2
  i32 tensor "t.i32", shape (6,):    value[i] = i * 7 - 20
Run: .venv/bin/python tools/gen_gguf_fixture.py
"""
import pathlib

import numpy as np
import gguf

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "io" / "tiny.gguf"


def main() -> None:
    writer = gguf.GGUFWriter(str(OUT), arch="llama")
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4000000000)
    writer.add_int32("test.i32", -2000000000)
    writer.add_float32("test.f32", 1.5)
    writer.add_uint64("test.u64", 1 << 40)
    writer.add_int64("test.i64", -(1 << 40))
    writer.add_float64("test.f64", 0.1)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo wörld")
    writer.add_array("test.array_i32", [1, -2, 3])
    writer.add_array("test.array_str", ["a", "bc", ""])
    writer.add_tensor("t.f32", (np.arange(15, dtype=np.float32) * 0.25 - 1).reshape(3, 5))
    writer.add_tensor("t.f16", (np.arange(8, dtype=np.float16) * 0.5 - 2).reshape(2, 4))
    writer.add_tensor("t.i32", np.arange(6, dtype=np.int32) * 7 - 20)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
