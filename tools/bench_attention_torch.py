#!/usr/bin/env python3
"""PyTorch SDPA attention throughput in bf16: the reference for bench/attention_cuda_bench.cpp.

Prints the same table (forward, forward+backward TFLOP/s at the same shapes; FLOPs as
FlashAttention counts them: forward 4 B H S^2 D, backward 2.5x that, causal halves both)
for SDPA's default choice and, where available, its flash and cuDNN backends.
Usage: python3 tools/bench_attention_torch.py   (needs torch with CUDA)
"""
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

CONFIGS = [(16, 16, 1024, 64), (8, 16, 4096, 128), (2, 32, 8192, 128)]


def seconds_per_call(fn):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    once = time.perf_counter() - start
    calls = min(200, max(3, int(0.3 / max(once, 1e-6))))
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def run_table(name, backends):
    print(f"torch {torch.__version__} SDPA ({name}), bf16, {torch.cuda.get_device_name()}")
    print(f"{'(B,H,S,D)':<22} {'causal':<7} {'fwd ms':>10} {'fwd TF/s':>10} {'fwd+bwd ms':>12} {'fwd+bwd TF/s':>12}")
    for b, h, s, d in CONFIGS:
        q, k, v, dout = (torch.rand(b, h, s, d, device="cuda", dtype=torch.bfloat16) * 2 - 1 for _ in range(4))
        for causal in (False, True):
            qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
            flops = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
            label = f"({b},{h},{s},{d})"
            try:
                with sdpa_kernel(backends):
                    fwd = seconds_per_call(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))

                    def fwd_bwd():
                        qg.grad = kg.grad = vg.grad = None
                        out = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
                        out.backward(dout)

                    both = seconds_per_call(fwd_bwd)
            except RuntimeError as error:
                print(f"{label:<22} {'yes' if causal else 'no':<7} n/a ({str(error).splitlines()[0][:60]})")
                continue
            print(f"{label:<22} {'yes' if causal else 'no':<7} {fwd * 1e3:10.3f} {flops / fwd * 1e-12:10.1f} "
                  f"{both * 1e3:12.3f} {3.5 * flops / both * 1e-12:12.1f}")
        del q, k, v, dout
        torch.cuda.empty_cache()


def main():
    all_backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                    SDPBackend.MATH]
    run_table("default", all_backends)
    run_table("flash", [SDPBackend.FLASH_ATTENTION])
    run_table("cudnn", [SDPBackend.CUDNN_ATTENTION])


if __name__ == "__main__":
    main()
