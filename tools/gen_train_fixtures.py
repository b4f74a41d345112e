#!/usr/bin/env python3
"""PyTorch-autograd fixtures for the training model (tests/train/torch_fixture_test.cpp).

For each tests/fixtures/train/<name>_inputs.safetensors (written by the C++ test with
ANVIL_WRITE_TRAIN_FIXTURE_INPUTS=1: the flat f32 parameters of a tiny GPT-2 or Llama model,
their layout and config in the metadata, and 11 batches of tokens/targets), this script
builds the same model in plain PyTorch from those parameters, and writes
<name>_torch.safetensors with
  logits (B*T, V), loss (1)      of batch 0,
  grad.<param>                   every parameter's gradient of that loss (our layout),
  adamw_losses (10)              the loss of batches 1..10, each before an AdamW step
                                 (clip_grad_norm_ then torch.optim.AdamW, constant lr,
                                 weight decay on matrices and the head only).
Everything is computed in float64 (the reference), stored as F64.

Run it where PyTorch is installed (the GPU machine has it; the CPU is enough):
    python3 tools/gen_train_fixtures.py [--device cpu]
"""
import argparse
import json
import math
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from safetensors import safe_open

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "train"


def unflatten(flat, layout):
    """Our flat parameter vector as named leaf tensors (weights are (out, in))."""
    params = {}
    for entry in layout:
        count = math.prod(entry["shape"])
        tensor = flat[entry["offset"]:entry["offset"] + count].reshape(entry["shape"]).clone()
        params[entry["name"]] = tensor.requires_grad_(True)
    return params


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x, theta):
    """Rotate-half RoPE (HF Llama) on (B, H, T, D) at positions 0..T-1."""
    d = x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    angles = torch.arange(x.shape[-2], dtype=x.dtype, device=x.device)[:, None] * inv[None, :]
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    half = d // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def attention(q, k, v, heads, kv_heads, head_dim):
    """Causal attention; q (B, T, Hq*D), k/v (B, T, Hkv*D) -> (B, T, Hq*D)."""
    b, t, _ = q.shape
    q = q.view(b, t, heads, head_dim).transpose(1, 2)
    k = k.view(b, t, kv_heads, head_dim).transpose(1, 2)
    v = v.view(b, t, kv_heads, head_dim).transpose(1, 2)
    return q, k, v


def sdpa(q, k, v, heads, kv_heads):
    group = heads // kv_heads
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    out = scores.softmax(-1) @ v
    b, h, t, d = out.shape
    return out.transpose(1, 2).reshape(b, t, h * d)


def llama_logits(p, cfg, tokens):
    c = cfg["model"]
    hq, hkv, d = c["num_heads"], c["num_kv_heads"], c["head_dim"]
    x = p["model.embed_tokens.weight"][tokens]
    for layer in range(c["num_layers"]):
        w = lambda name: p[f"model.layers.{layer}.{name}"]
        h = rms_norm(x, w("input_layernorm.weight"), c["norm_eps"])
        q, k, v = attention(h @ w("self_attn.q_proj.weight").T, h @ w("self_attn.k_proj.weight").T,
                            h @ w("self_attn.v_proj.weight").T, hq, hkv, d)
        q, k = rope(q, c["rope_theta"]), rope(k, c["rope_theta"])
        x = x + sdpa(q, k, v, hq, hkv) @ w("self_attn.o_proj.weight").T
        h = rms_norm(x, w("post_attention_layernorm.weight"), c["norm_eps"])
        gated = F.silu(h @ w("mlp.gate_proj.weight").T) * (h @ w("mlp.up_proj.weight").T)
        x = x + gated @ w("mlp.down_proj.weight").T
    x = rms_norm(x, p["model.norm.weight"], c["norm_eps"])
    head = p["model.embed_tokens.weight"] if c["tied_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def gpt2_logits(p, cfg, tokens):
    c = cfg["model"]
    h_count, d = c["num_heads"], c["head_dim"]
    t = tokens.shape[1]
    x = p["wte.weight"][tokens] + p["wpe.weight"][:t]
    for layer in range(c["num_layers"]):
        w = lambda name: p[f"h.{layer}.{name}"]
        h = F.layer_norm(x, (x.shape[-1],), w("ln_1.weight"), w("ln_1.bias"), c["norm_eps"])
        proj = lambda name: h @ w(f"attn.{name}.weight").T + w(f"attn.{name}.bias")
        q, k, v = attention(proj("q_proj"), proj("k_proj"), proj("v_proj"), h_count, h_count, d)
        x = x + sdpa(q, k, v, h_count, h_count) @ w("attn.c_proj.weight").T + w("attn.c_proj.bias")
        h = F.layer_norm(x, (x.shape[-1],), w("ln_2.weight"), w("ln_2.bias"), c["norm_eps"])
        up = F.gelu(h @ w("mlp.c_fc.weight").T + w("mlp.c_fc.bias"), approximate="tanh")
        x = x + up @ w("mlp.c_proj.weight").T + w("mlp.c_proj.bias")
    x = F.layer_norm(x, (x.shape[-1],), p["ln_f.weight"], p["ln_f.bias"], c["norm_eps"])
    head = p["wte.weight"] if c["tied_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def loss_of(p, cfg, tokens, targets):
    forward = gpt2_logits if cfg["model"]["family"] == "gpt2" else llama_logits
    logits = forward(p, cfg, tokens)
    flat = logits.reshape(-1, logits.shape[-1])
    return flat, F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)


def make_fixture(inputs_path, device):
    with safe_open(str(inputs_path), "pt") as f:
        cfg = json.loads(f.metadata()["anvil.fixture"])
    tensors = load_file(str(inputs_path))
    flat = tensors["params"].to(device=device, dtype=torch.float64)
    tokens = tensors["tokens"].to(device=device, dtype=torch.long)
    targets = tensors["targets"].to(device=device, dtype=torch.long)
    layout = cfg["param_layout"]

    params = unflatten(flat, layout)
    logits, loss = loss_of(params, cfg, tokens[0], targets[0])
    loss.backward()
    out = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for name, tensor in params.items():
        out["grad." + name] = tensor.grad.detach()

    o = cfg["optimizer"]
    params = unflatten(flat, layout)
    decay_roles = set(o["decay_roles"])
    groups = [
        {"params": [params[e["name"]] for e in layout if e["role"] in decay_roles], "weight_decay": o["weight_decay"]},
        {"params": [params[e["name"]] for e in layout if e["role"] not in decay_roles], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    losses = []
    for step in range(o["steps"]):
        optimizer.zero_grad()
        _, step_loss = loss_of(params, cfg, tokens[step + 1], targets[step + 1])
        step_loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), o["grad_clip"])
        optimizer.step()
        losses.append(step_loss.item())
    out["adamw_losses"] = torch.tensor(losses, dtype=torch.float64)

    out = {name: tensor.to("cpu", torch.float64).contiguous() for name, tensor in out.items()}
    target = inputs_path.with_name(inputs_path.name.replace("_inputs", "_torch"))
    save_file(out, str(target), metadata={"torch": torch.__version__})
    print(f"{target.relative_to(ROOT)}: loss {loss.item():.6f}, adamw losses {losses[0]:.4f} -> {losses[-1]:.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    paths = sorted(FIXTURES.glob("*_inputs.safetensors"))
    if not paths:
        raise SystemExit(f"no *_inputs.safetensors in {FIXTURES}")
    for path in paths:
        make_fixture(path, args.device)


if __name__ == "__main__":
    main()
