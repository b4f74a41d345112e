"""PyTorch reference training loop for GPT-2 124M (the issue-5 benchmark): nanoGPT-style
model (vocab padded to 50304), SDPA attention, fused AdamW, torch.compile; random tokens.
Prints tokens/s per precision so anvil's `anvil train --config configs/gpt2_124m.json` runs
can be compared in the same call (docs/perf.md).

    python3 bench/train_gpt2_torch.py [--batch 32] [--steps 20] [--precision bf16 f32]
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.c_fc = nn.Linear(width, 4 * width)
        self.mlp_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, vocab=50304, width=768, layers=12, heads=12, context=1024):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.wte.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, ids, targets):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))


def print_profile(step, steps):
    """The CUDA kernels of `steps` steps, per step, grouped by name (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA" and e.self_device_time_total > 0]
    total = sum(e.self_device_time_total for e in events) / steps / 1e3
    print(f"torch kernels per step: {total:.2f} ms")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:25]:
        ms = e.self_device_time_total / steps / 1e3
        print(f"  {ms:8.3f} ms {100 * ms / total:5.1f}% {e.count // steps:4d} calls  {e.key[:90]}")


def run(precision, batch, seq, steps, profile_steps=0):
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    model = GPT2().cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    step_fn = torch.compile(model)
    data = torch.randint(0, 50257, (batch, seq + 1), device="cuda")
    ids, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def step():
        with torch.autocast("cuda", dtype=dtype, enabled=precision == "bf16"):
            loss = step_fn(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    if profile_steps:
        print_profile(step, profile_steps)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    params = sum(p.numel() for p in model.parameters())
    flops = 6 * params * batch * seq + 12 * 12 * seq * 768 * batch * seq
    print(f"torch {torch.__version__} GPT-2 124M {precision:>4} batch {batch} seq {seq}: "
          f"{batch * seq / seconds:,.0f} tokens/s, {seconds * 1e3:.1f} ms/step, "
          f"{flops / seconds / 1e12:.1f} TFLOP/s, loss {loss.item():.3f}", flush=True)
    del model, optimizer
    torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", nargs="+", default=["bf16", "f32"])
    parser.add_argument("--profile", type=int, default=0, help="print the kernels of this many steps first")
    args = parser.parse_args()
    for precision in args.precision:
        run(precision, args.batch, args.seq, args.steps, args.profile)


if __name__ == "__main__":
    main()
