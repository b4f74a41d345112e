"""The same training run in PyTorch, next to anvil's: same initial weights (the Hugging Face
folder `anvil train` exports at step 0), same batches (`anvil train --dump-batches`), same
optimizer, clipping and schedule (read from the run's config.json). Prints both loss
curves and writes loss_vs_torch.svg and torch_log.jsonl into the run folder.

    anvil train --config C run.steps=0 run.out_dir=INIT ...        # initial weights -> INIT/model
    anvil train --config C --dump-batches B.bin run.out_dir=RUN ...
    python3 tools/torch_loss_curve.py --init INIT/model --run RUN --batches B.bin [--bf16]

--bf16 runs PyTorch under torch.autocast(bfloat16) (f32 weights and AdamW state), the
counterpart of anvil's run.precision=bf16.
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F


def lr_factor(schedule, min_lr_ratio, step, total):
    """anvil's src/train/lr_schedule.cpp."""
    warmup = schedule.get("warmup_steps", 0)
    if step < warmup:
        return (step + 1) / warmup

    def progress(begin):
        return min(max((step - begin) / max(1, total - begin), 0.0), 1.0)

    kind = schedule.get("kind", "cosine")
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress(warmup)))
    decay_steps = round(schedule.get("decay_fraction", 0.2) * total)
    begin = max(warmup, total - decay_steps)
    return 1.0 if step < begin else 1.0 - (1.0 - min_lr_ratio) * progress(begin)


def param_groups(model, opt):
    """anvil's weight-decay groups: matrices (and an untied head) decay; embeddings, norm
    gains and biases only when the config says so."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        embedding = any(key in name for key in ("embed_tokens", "wte", "wpe"))
        if embedding:
            (decay if opt.get("decay_embeddings", False) else no_decay).append(p)
        elif p.ndim == 2:
            decay.append(p)
        else:
            (decay if opt.get("decay_norms_and_biases", False) else no_decay).append(p)
    return [{"params": decay, "weight_decay": opt["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]


def svg(anvil, torch_losses, path):
    width, height, pad = 720, 360, 50
    values = anvil + torch_losses
    low, high = min(values), max(values)
    steps = max(len(anvil), len(torch_losses))

    def points(losses):
        return " ".join(f"{pad + (width - 2 * pad) * i / max(1, steps - 1):.1f},"
                        f"{height - pad - (height - 2 * pad) * (v - low) / max(1e-9, high - low):.1f}"
                        for i, v in enumerate(losses))

    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
                f'<rect width="100%" height="100%" fill="white"/>'
                f'<text x="{pad}" y="25" font-family="sans-serif" font-size="14">training loss per step: '
                f'anvil (blue) vs PyTorch (orange), same weights and batches</text>'
                f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points(anvil)}"/>'
                f'<polyline fill="none" stroke="#ff7f0e" stroke-width="1.5" stroke-dasharray="4 3" '
                f'points="{points(torch_losses)}"/>'
                f'<text x="{pad}" y="{height - 15}" font-family="sans-serif" font-size="12">step 1 .. {steps}; '
                f'loss {low:.3f} .. {high:.3f}</text></svg>')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--init", required=True, help="HF folder of the initial weights")
    parser.add_argument("--run", required=True, help="anvil run folder (config.json, log.jsonl)")
    parser.add_argument("--batches", required=True, help="file written by anvil train --dump-batches")
    parser.add_argument("--bf16", action="store_true", help="torch.autocast bf16 (mixed precision)")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config = json.load(open(os.path.join(args.run, "config.json")))
    run, opt, schedule = config["run"], config["optimizer"], config.get("schedule", {})
    batch, seq, accum, steps = run["batch_size"], run["seq_len"], run.get("grad_accum", 1), run["steps"]
    data = np.fromfile(args.batches, dtype=np.int32).reshape(-1, 2, batch, seq)
    assert data.shape[0] >= steps * accum, f"{data.shape[0]} micro-batches for {steps} steps of {accum}"
    model = AutoModelForCausalLM.from_pretrained(args.init, torch_dtype=torch.float32, attn_implementation="eager").cuda()
    optimizer = torch.optim.AdamW(param_groups(model, opt), lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]),
                                  eps=opt["eps"], foreach=False)
    anvil = [r["loss"] for r in map(json.loads, open(os.path.join(args.run, "log.jsonl"))) if "loss" in r and "step" in r]
    torch_losses = []
    log = open(os.path.join(args.run, "torch_log.jsonl"), "w")
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = opt["lr"] * lr_factor(schedule, opt["min_lr_ratio"], step, max(1, steps))
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(accum):
            tokens, targets = (torch.from_numpy(a.astype(np.int64)).cuda() for a in data[step * accum + micro])
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(tokens).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-1)
            (loss / accum).backward()
            total += loss.item()
        if opt.get("grad_clip", 0) > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt["grad_clip"])
        optimizer.step()
        torch_losses.append(total / accum)
        log.write(json.dumps({"step": step + 1, "loss": torch_losses[-1]}) + "\n")
    n = min(len(anvil), len(torch_losses))
    diffs = [abs(a - t) for a, t in zip(anvil[:n], torch_losses[:n])]
    print(f"{'step':>6} {'anvil':>10} {'torch':>10} {'diff':>10}")
    for i in list(range(0, n, max(1, n // 10))) + [n - 1]:
        print(f"{i + 1:>6} {anvil[i]:>10.4f} {torch_losses[i]:>10.4f} {anvil[i] - torch_losses[i]:>+10.4f}")
    print(f"{n} steps: mean |anvil - torch| {np.mean(diffs):.4f}, max {np.max(diffs):.4f}; "
          f"first step {diffs[0]:.2e}; last-20 mean loss anvil {np.mean(anvil[n - 20:n]):.4f} "
          f"torch {np.mean(torch_losses[n - 20:n]):.4f}")
    svg(anvil[:n], torch_losses[:n], os.path.join(args.run, "loss_vs_torch.svg"))


if __name__ == "__main__":
    main()
