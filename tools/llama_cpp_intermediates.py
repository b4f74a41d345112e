#!/usr/bin/env python3
"""Dumps llama.cpp's intermediate tensors of one prefill, for comparing anvil op by op.

llama.cpp (llama-cpp-python's low-level API) runs the prompt ids as one batch with the
settings of tools/llama_cpp_reference.py (CPU, f16 KV cache, flash attention off, 2 threads),
with a ggml_backend_sched eval callback that copies out every tensor whose name is in
--names for the layers in --layers (names without a layer, e.g. result_norm, always).
Asking for a tensor makes the scheduler stop the graph after it, so ask only for tensors
that do not sit inside a fused pair (the RMSNorm "norm" node is fused with the weight
multiply that follows it; ask for "attn_norm", not "norm").

Output (--out PREFIX): PREFIX.json (prompt ids and, per tensor, name, layer, occurrence,
ggml type, shape as a C-order array, byte offset into PREFIX.bin) and PREFIX.bin (the
tensors as contiguous little-endian float32; f16 tensors widened exactly). Shapes are
ggml's ne reversed: a (tokens, heads, dim) tensor has ne = [dim, heads, tokens].

  .venv/bin/python tools/llama_cpp_intermediates.py --prompt-ids '[504, 913, 4834]' --out /tmp/lcpp
"""

import argparse
import ctypes
import json
import os

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO_ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_NAMES = ("attn_norm,Qcur,Kcur,Vcur,kq,kq_soft_max,kqv_out,attn_out,ffn_inp,ffn_norm,ffn_gate,ffn_up,"
                 "ffn_swiglu,ffn_out,l_out,result_norm,result_output")

GGML_MAX_DIMS = 4
GGML_MAX_SRC = 10
GGML_MAX_OP_PARAMS = 64
GGML_MAX_NAME = 64
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1


class GgmlTensor(ctypes.Structure):
    """struct ggml_tensor of ggml 0.25.3 (ggml/include/ggml.h of llama-cpp-python 0.3.36)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def split_name(name):
    """'Qcur-0' -> ('Qcur', 0); 'result_norm' -> ('result_norm', None)."""
    base, dash, layer = name.rpartition("-")
    if dash and layer.isdigit():
        return base, int(layer)
    return name, None


def read_tensor(tensor):
    """The tensor's elements as a float32 array of shape ne reversed, following its strides."""
    if tensor.type not in (GGML_TYPE_F32, GGML_TYPE_F16):
        return None
    dtype = np.float32 if tensor.type == GGML_TYPE_F32 else np.float16
    ne = [tensor.ne[i] for i in range(GGML_MAX_DIMS)]
    nb = [tensor.nb[i] for i in range(GGML_MAX_DIMS)]
    span = sum((ne[i] - 1) * nb[i] for i in range(GGML_MAX_DIMS)) + np.dtype(dtype).itemsize
    raw = (ctypes.c_char * span).from_address(tensor.data)
    view = np.lib.stride_tricks.as_strided(np.frombuffer(raw, dtype=dtype), shape=ne[::-1], strides=nb[::-1])
    return np.ascontiguousarray(view).astype(np.float32)


def dump(model_path, prompt_ids, names, layers, n_threads):
    import llama_cpp

    llama_cpp.llama_backend_init()
    model_params = llama_cpp.llama_model_default_params()
    model_params.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(model_path.encode(), model_params)
    captured = []
    occurrences = {}

    def wanted(tensor):
        base, layer = split_name(tensor.name.decode())
        return base in names and (layer is None or layer in layers)

    def callback(tensor_ptr, ask, _user_data):
        tensor = ctypes.cast(tensor_ptr, ctypes.POINTER(GgmlTensor)).contents
        if ask:
            return wanted(tensor)
        if wanted(tensor):
            name = tensor.name.decode()
            data = read_tensor(tensor)
            if data is not None:
                occurrence = occurrences.get(name, 0)
                occurrences[name] = occurrence + 1
                base, layer = split_name(name)
                captured.append({"name": base, "layer": layer, "occurrence": occurrence, "ggml_type": tensor.type,
                                 "ggml_op": tensor.op, "data": data})
        return True

    ctx_params = llama_cpp.llama_context_default_params()
    ctx_params.n_ctx = 512
    ctx_params.n_batch = 512
    ctx_params.n_ubatch = 512
    ctx_params.n_threads = n_threads
    ctx_params.n_threads_batch = n_threads
    ctx_params.flash_attn_type = 0  # LLAMA_FLASH_ATTN_TYPE_DISABLED
    keep_alive = llama_cpp.ggml_backend_sched_eval_callback(callback)
    ctx_params.cb_eval = keep_alive
    ctx = llama_cpp.llama_init_from_model(model, ctx_params)
    tokens = (llama_cpp.llama_token * len(prompt_ids))(*prompt_ids)
    batch = llama_cpp.llama_batch_get_one(tokens, len(prompt_ids))
    if llama_cpp.llama_decode(ctx, batch) != 0:
        raise RuntimeError("llama_decode failed")
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return captured


def write(prefix, prompt_ids, captured):
    index = []
    offset = 0
    with open(prefix + ".bin", "wb") as out:
        for item in captured:
            data = item.pop("data")
            out.write(data.astype("<f4").tobytes())
            index.append(dict(item, shape=list(data.shape), offset=offset))
            offset += data.size * 4
    with open(prefix + ".json", "w") as out:
        json.dump({"prompt_ids": prompt_ids, "tensors": index}, out, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prompt-ids", required=True, help="JSON list of token ids")
    parser.add_argument("--names", default=DEFAULT_NAMES, help="comma-separated tensor names")
    parser.add_argument("--layers", default="0", help="comma-separated layer indices")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True, help="output prefix (PREFIX.json, PREFIX.bin)")
    args = parser.parse_args()
    prompt_ids = json.loads(args.prompt_ids)
    captured = dump(args.model, prompt_ids, set(args.names.split(",")), {int(x) for x in args.layers.split(",")},
                    args.threads)
    write(args.out, prompt_ids, captured)
    for item in json.load(open(args.out + ".json"))["tensors"]:
        print(item["name"], item["layer"], item["occurrence"], item["ggml_op"], item["shape"])


if __name__ == "__main__":
    main()
