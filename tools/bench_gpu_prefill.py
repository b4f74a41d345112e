"""GPU prefill of a 1898-token prompt on the Llama-3-8B shape (random bf16 weights, made in
/tmp/llama3-8b by bench_gpu_decode.py): for two anvil binaries (a baseline and a candidate),
the cold prefill of one `anvil generate` process, the warm median of 5 more in that process
and the per-phase breakdown (`--prefill-repeat 5`), the candidate's cold phases
(`--cold-phases`), plain cold runs, one with CUDA_MODULE_LOADING=EAGER; then transformers'
forward over the same prompt (warm). Run from the repository root on the GPU machine:

    python3 tools/bench_gpu_prefill.py BASELINE_ANVIL CANDIDATE_ANVIL
"""
import subprocess, sys, os, time
sys.path.insert(0, "tools")
import bench_gpu_decode as b

model = "/tmp/llama3-8b"
t0 = time.time()
b.make_llama3_8b(model, "tests/fixtures/tokenizer/smollm2.json")
print(f"made model in {time.time()-t0:.0f} s", flush=True)
prompt = "The history of the city begins in the early middle ages, when"
long_prompt = " ".join([prompt] * (2048 // 14))
base = ["generate", "-m", model, "-p", long_prompt, "-n", "1", "--temperature", "0", "--ignore-eos",
        "--device", "cuda", "--kv-dtype", "bf16", "-c", "4096"]
for binary, extra in [(sys.argv[1], ["--prefill-repeat", "5"]), (sys.argv[2], ["--prefill-repeat", "5"]),
                      (sys.argv[2], ["--cold-phases"]), (sys.argv[1], []), (sys.argv[2], []), (sys.argv[2], ["EAGER"])]:
    env = dict(os.environ, CUDA_MODULE_LOADING="EAGER") if extra == ["EAGER"] else None
    r = subprocess.run([binary] + base + (extra if env is None else []), capture_output=True, text=True, env=env)
    print(f"=== {binary} {' '.join(extra)}: rc {r.returncode}", flush=True)
    print("\n".join(l for l in r.stderr.splitlines() if "anvil:" in l or "rror" in l)[-4000:], flush=True)
import tokenizers
tok = tokenizers.Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
ids = tok.encode(long_prompt).ids
print(f"transformers forward of {len(ids)} tokens: {b.transformers_prefill(model, ids):.0f} tok/s", flush=True)
