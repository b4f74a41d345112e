"""CPU generation speed, anvil vs llama.cpp, side by side in one run (same GGUF, same
thread count, same prompt tokens): prefill tokens/s for 128- and 512-token prompts and
greedy decode tokens/s for 128 steps after a 128-token prompt. Medians of --runs runs,
the two engines interleaved so they see the same machine load.

    .venv/bin/python tools/bench_cpu_generate.py [--anvil build/cpu-release/anvil] [--threads 2]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_cpp_reference as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATS = re.compile(r"prefill (\d+) tokens in ([\d.]+) s .*decode (\d+) tokens in ([\d.]+) s")


def anvil_run(anvil, model, prompt_file, threads, decode_tokens):
    """(prompt tokens, prefill s, decode tokens, decode s) from one `anvil generate`."""
    command = [anvil, "generate", "-m", model, "-f", prompt_file, "-n", str(decode_tokens), "--temperature", "0",
               "--ignore-eos", "--threads", str(threads), "-b", "512", "--kv-dtype", "f16"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    match = STATS.search(result.stderr)
    if not match:
        raise RuntimeError("no timing line in anvil's output:\n" + result.stderr)
    return int(match[1]), float(match[2]), int(match[3]), float(match[4])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--anvil", default=os.path.join(ROOT, "build/cpu-release/anvil"))
    parser.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--text", default=os.path.join(ROOT, "tests/fixtures/smollm2/heldout.txt"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    llm = ref.load_model(args.model, n_ctx=1024, n_threads=args.threads, logits_all=False)
    ids = ref.tokenize(llm, open(args.text, encoding="utf-8").read(), special=False)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for prompt_tokens, decode_tokens in ((128, 128), (512, 1)):
            prompt_ids = ids[:prompt_tokens]
            prompt_file = os.path.join(folder, f"prompt{prompt_tokens}.txt")
            with open(prompt_file, "wb") as f:
                f.write(llm.detokenize(prompt_ids))
            anvil_prefill, anvil_decode, llama_prefill, llama_decode = [], [], [], []
            counted = 0
            for _ in range(args.runs + 1):  # the first run of each warms caches and is dropped
                counted, prefill_s, steps, decode_s = anvil_run(args.anvil, args.model, prompt_file, args.threads,
                                                                decode_tokens)
                anvil_prefill.append(counted / prefill_s)
                if steps > 1:
                    anvil_decode.append(steps / decode_s)
                llama_prefill.append(prompt_tokens / ref.bench_prefill(llm, prompt_ids, 1))
                if decode_tokens > 1:
                    llama_decode.append(decode_tokens / ref.bench_decode(llm, prompt_ids, decode_tokens, 1))
            rows.append((f"prefill {prompt_tokens} tokens (anvil tokenised {counted})",
                         statistics.median(anvil_prefill[1:]), statistics.median(llama_prefill[1:])))
            if anvil_decode:
                rows.append((f"decode {decode_tokens} tokens after {prompt_tokens}",
                             statistics.median(anvil_decode[1:]), statistics.median(llama_decode[1:])))
    print(f"model {os.path.basename(args.model)}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<44} {'anvil tok/s':>12} {'llama.cpp tok/s':>16} {'ratio':>7}")
    for name, anvil_rate, llama_rate in rows:
        print(f"{name:<44} {anvil_rate:>12.1f} {llama_rate:>16.1f} {anvil_rate / llama_rate:>7.2f}")


if __name__ == "__main__":
    main()
