"""Batch-1 greedy decode on the GPU: anvil (`anvil generate --device cuda`) against
transformers `generate` on the same GPU, and against the roofline (weight bytes per token /
measured device-to-device copy bandwidth). Runs where torch, transformers and a CUDA GPU
are (the GPU machine of docs/gpu.md).

    python3 tools/bench_gpu_decode.py --anvil build/cuda-release/anvil --model PATH [--make-llama3-8b DIR]

--make-llama3-8b DIR writes a Llama-3-8B-shaped model with random bf16 weights (config.json,
safetensors shards, a tokenizer.json copied from --tokenizer) into DIR first, so nothing of
16 GB has to travel to the GPU machine.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import time

STATS = re.compile(r"prefill (\d+) tokens in ([\d.]+) s .*decode (\d+) tokens in ([\d.]+) s")

LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "hidden_act": "silu", "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
}


def make_llama3_8b(folder, tokenizer):
    """Random bf16 weights (std 0.02, norms 1) in the Hugging Face layout, one shard per 4 layers."""
    import torch
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    if os.path.exists(os.path.join(folder, "model.safetensors.index.json")):
        return
    c = LLAMA3_8B
    hidden, inter, heads, kv = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = hidden // heads
    gen = torch.Generator(device="cuda").manual_seed(0)

    def rand(*shape):
        return (torch.randn(*shape, generator=gen, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()

    weight_map = {}
    layers_per_shard = 4
    shards = c["num_hidden_layers"] // layers_per_shard + 1
    for shard in range(shards):
        tensors = {}
        if shard == 0:
            tensors["model.embed_tokens.weight"] = rand(c["vocab_size"], hidden)
            tensors["model.norm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
            tensors["lm_head.weight"] = rand(c["vocab_size"], hidden)
        else:
            for layer in range((shard - 1) * layers_per_shard, shard * layers_per_shard):
                p = f"model.layers.{layer}."
                tensors[p + "input_layernorm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
                tensors[p + "post_attention_layernorm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
                tensors[p + "self_attn.q_proj.weight"] = rand(heads * head_dim, hidden)
                tensors[p + "self_attn.k_proj.weight"] = rand(kv * head_dim, hidden)
                tensors[p + "self_attn.v_proj.weight"] = rand(kv * head_dim, hidden)
                tensors[p + "self_attn.o_proj.weight"] = rand(hidden, heads * head_dim)
                tensors[p + "mlp.gate_proj.weight"] = rand(inter, hidden)
                tensors[p + "mlp.up_proj.weight"] = rand(inter, hidden)
                tensors[p + "mlp.down_proj.weight"] = rand(hidden, inter)
        name = f"model-{shard:05d}-of-{shards:05d}.safetensors"
        save_file(tensors, os.path.join(folder, name), metadata={"format": "pt"})
        weight_map.update({key: name for key in tensors})
        print(f"wrote {name}", flush=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    shutil.copy(tokenizer, os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


def copy_bandwidth_gbps():
    """Device-to-device copy bandwidth (bytes read + written per second), 2 GiB buffers."""
    import torch

    src = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    runs = 20
    for _ in range(runs):
        dst.copy_(src)
    torch.cuda.synchronize()
    return 2 * src.numel() * runs / (time.perf_counter() - start) / 1e9


def anvil_generate(anvil, model, prompt, tokens, graphs=True):
    """(decode tok/s, prompt tokens, prefill tok/s) of one `anvil generate` run."""
    command = [anvil, "generate", "-m", model, "-p", prompt, "-n", str(tokens), "--temperature", "0",
               "--ignore-eos", "--device", "cuda", "--kv-dtype", "bf16", "-c", "4096"]
    if not graphs:
        command.append("--no-cuda-graphs")
    result = subprocess.run(command, capture_output=True, text=True)
    match = STATS.search(result.stderr)
    if result.returncode != 0 or not match:
        raise RuntimeError("anvil failed:\n" + result.stderr[-3000:])
    decode = int(match[3]) / float(match[4]) if int(match[3]) > 1 else 0.0
    return decode, int(match[1]), int(match[1]) / float(match[2])


def anvil_decode(anvil, model, prompt, tokens, graphs=True):
    rate, prompt_tokens, _ = anvil_generate(anvil, model, prompt, tokens, graphs)
    return rate, prompt_tokens


def transformers_prefill(model, prompt_tokens):
    """Prompt tokens per second of one transformers forward over the prompt (bf16, SDPA)."""
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(model, torch_dtype=torch.bfloat16).cuda().eval()
    ids = torch.tensor([prompt_tokens], device="cuda")
    with torch.no_grad():
        for _ in range(2):
            lm(ids, logits_to_keep=1)
        torch.cuda.synchronize()
        start = time.perf_counter()
        runs = 5
        for _ in range(runs):
            lm(ids, logits_to_keep=1)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / runs
    del lm
    torch.cuda.empty_cache()
    return len(prompt_tokens) / seconds


def transformers_decode(model, prompt_tokens, tokens):
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(model, torch_dtype=torch.bfloat16).cuda().eval()
    ids = torch.tensor([prompt_tokens], device="cuda")
    with torch.no_grad():
        lm.generate(ids, max_new_tokens=8, do_sample=False, min_new_tokens=8)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        lm.generate(ids, max_new_tokens=1, do_sample=False, min_new_tokens=1)
        torch.cuda.synchronize()
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        lm.generate(ids, max_new_tokens=tokens, do_sample=False, min_new_tokens=tokens)
        torch.cuda.synchronize()
        total = time.perf_counter() - start
    del lm
    torch.cuda.empty_cache()
    return (tokens - 1) / max(total - prefill, 1e-9)


def weight_bytes(model):
    """Bytes of the weights read per decoded token (all tensors but the input embedding)."""
    if os.path.isdir(model):
        from safetensors import safe_open
        import glob
        total = 0
        for path in glob.glob(os.path.join(model, "*.safetensors")):
            with safe_open(path, "pt") as f:
                for key in f.keys():
                    if "embed_tokens" not in key:
                        t = f.get_slice(key)
                        n = 1
                        for s in t.get_shape():
                            n *= s
                        total += n * 2
        return total
    return os.path.getsize(model)  # GGUF: close enough (the tied table is read as the head)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--anvil", default="build/cuda-release/anvil")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--make-llama3-8b")
    parser.add_argument("--tokenizer", default="tests/fixtures/tokenizer/smollm2.json")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--transformers", action="store_true", help="also time transformers generate (HF folders)")
    parser.add_argument("--graphs-off-too", action="store_true", help="also decode with --no-cuda-graphs")
    parser.add_argument("--prefill-tokens", type=int, default=0,
                        help="also time the prefill of a prompt of about this many tokens (anvil and transformers)")
    args = parser.parse_args()
    if args.make_llama3_8b:
        make_llama3_8b(args.make_llama3_8b, args.tokenizer)
    bandwidth = copy_bandwidth_gbps()
    print(f"device-to-device copy bandwidth: {bandwidth:.0f} GB/s (read + write)")
    prompt = "The history of the city begins in the early middle ages, when"
    print(f"{'model':<40} {'graphs':>6} {'anvil tok/s':>12} {'roofline tok/s':>15} {'% roofline':>11} {'HF tok/s':>10}")
    for model in args.model:
        bytes_per_token = weight_bytes(model)
        roofline = bandwidth * 1e9 / bytes_per_token
        hf = ""
        if args.transformers and os.path.isdir(model):
            import tokenizers
            tok = tokenizers.Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
            hf = f"{transformers_decode(model, tok.encode(prompt).ids, args.tokens):10.1f}"
        for graphs in [True, False] if args.graphs_off_too else [True]:
            rate, _ = anvil_decode(args.anvil, model, prompt, args.tokens, graphs)
            print(f"{os.path.basename(model.rstrip('/')):<40} {'on' if graphs else 'off':>6} {rate:>12.1f} "
                  f"{roofline:>15.1f} {100 * rate / roofline:>10.1f}% {hf:>10}", flush=True)
        if args.prefill_tokens > 0:
            long_prompt = " ".join([prompt] * max(1, args.prefill_tokens // 14))
            _, prompt_tokens, anvil_rate = anvil_generate(args.anvil, model, long_prompt, 1)
            line = f"prefill of {prompt_tokens} tokens: anvil {anvil_rate:.0f} tok/s"
            if args.transformers and os.path.isdir(model):
                import tokenizers
                tok = tokenizers.Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
                hf_rate = transformers_prefill(model, tok.encode(long_prompt).ids)
                line += f", transformers forward {hf_rate:.0f} tok/s ({anvil_rate / hf_rate:.2f}x)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
