#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) reference for real models on the CPU: greedy continuations,
perplexity and speed, on the same GGUF anvil runs. docs/reference.md gives the exact methods.

Modes (each prints one JSON object on stdout, or writes it with --out):
  tokenize    text -> llama.cpp token ids (no BOS: the SmolLM2 GGUF says add_bos_token=false).
  greedy      prompt ids -> 64 greedy tokens (argmax of the logits, no sampler, no penalties).
  perplexity  text file -> perplexity over non-overlapping 512-token chunks (docs/reference.md).
  bench       prefill tokens/s (128- and 512-token prompts) and decode tokens/s (128 steps).
  fixtures    regenerates tests/fixtures/smollm2/{greedy,perplexity}.json.

Setup: scripts/setup.sh (downloads the model, builds llama-cpp-python into .venv). Run as
  .venv/bin/python tools/llama_cpp_reference.py fixtures
"""

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO_ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
FIXTURE_DIR = os.path.join(REPO_ROOT, "tests", "fixtures", "smollm2")

GREEDY_TOKENS = 64
PPL_CHUNK_TOKENS = 512
BENCH_PREFILL_TOKENS = (128, 512)
BENCH_DECODE_TOKENS = 128

# The default system prompt of SmolLM2's chat template (tokenizer.chat_template in the GGUF),
# inserted when the first message is not a system message.
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# Prompts of the greedy fixture: chat turns are rendered with the model's ChatML template
# (add_generation_prompt=true), plain texts are continued as they are.
GREEDY_PROMPTS = [
    {"name": "chat_capital", "kind": "chat", "messages": [
        {"role": "user", "content": "What is the capital of France?"}]},
    {"name": "chat_explain_gravity", "kind": "chat", "messages": [
        {"role": "user", "content": "Explain gravity to a ten-year-old in a few sentences."}]},
    {"name": "chat_system_poem", "kind": "chat", "messages": [
        {"role": "system", "content": "You are a poet who writes short rhyming verses."},
        {"role": "user", "content": "Write a poem about the sea at night."}]},
    {"name": "chat_python", "kind": "chat", "messages": [
        {"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}]},
    {"name": "plain_story", "kind": "plain",
     "text": "Once upon a time, in a small village at the edge of a great forest, there lived"},
    {"name": "plain_facts", "kind": "plain",
     "text": "The water cycle describes how water moves between the oceans, the atmosphere and the land. It begins when"},
    {"name": "plain_list", "kind": "plain",
     "text": "Here are five tips for staying healthy:\n1."},
    {"name": "plain_code", "kind": "plain",
     "text": "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n"},
]


def load_model(model_path, n_ctx, n_threads, logits_all):
    """Opens the GGUF with llama.cpp on the CPU: f16 KV cache, flash attention off, one sequence."""
    from llama_cpp import Llama

    return Llama(model_path=model_path, n_ctx=n_ctx, n_batch=512, n_ubatch=512,
                 n_threads=n_threads, n_threads_batch=n_threads, n_gpu_layers=0,
                 logits_all=logits_all, flash_attn=False, seed=0, verbose=False)


def render_chatml(messages):
    """SmolLM2's chat template (ChatML) with add_generation_prompt=true, written out by hand."""
    text = ""
    if messages[0]["role"] != "system":
        text += "<|im_start|>system\n" + SMOLLM2_DEFAULT_SYSTEM + "<|im_end|>\n"
    for message in messages:
        text += "<|im_start|>" + message["role"] + "\n" + message["content"] + "<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def check_chat_template(llm, messages, rendered):
    """Checks render_chatml against the GGUF's own jinja template (when jinja2 is present)."""
    try:
        import jinja2
    except ImportError:
        return
    source = llm.metadata["tokenizer.chat_template"]
    template = jinja2.Environment().from_string(source)
    expected = template.render(messages=messages, add_generation_prompt=True)
    if expected != rendered:
        raise RuntimeError("render_chatml disagrees with the GGUF chat template:\n" + expected)


def tokenize(llm, text, special):
    """llama.cpp's tokenizer; never adds BOS (the GGUF's add_bos_token is false)."""
    return llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)


def top2_margin(logits):
    """Top-1 logit minus top-2 logit: how close greedy was to picking another token."""
    top2 = np.partition(logits, -2)[-2:]
    return float(top2[1] - top2[0])


def greedy(llm, prompt_ids, n_tokens):
    """Evaluates the prompt in one batch from an empty cache, then n_tokens single-token steps,
    each feeding back argmax(logits) (lowest id on a tie). Does not stop at end-of-generation.
    Also returns the top-1 minus top-2 logit margin of each step and the top 5 of the first."""
    llm.reset()
    llm.eval(prompt_ids)
    output_ids, margins = [], []
    first_top5 = top5(llm.scores[llm.n_tokens - 1])
    for _ in range(n_tokens):
        logits = llm.scores[llm.n_tokens - 1]
        token = int(np.argmax(logits))
        output_ids.append(token)
        margins.append(round(top2_margin(logits), 4))
        llm.eval([token])
    return output_ids, margins, first_top5


def top5(logits):
    """[[id, logit], ...] of the 5 largest logits."""
    top = np.argsort(-logits, kind="stable")[:5]
    return [[int(t), round(float(logits[t]), 4)] for t in top]


def log_softmax_at(logits, token):
    """log p(token) from float32 logits, computed in float64."""
    row = logits.astype(np.float64)
    peak = row.max()
    return float(row[token] - peak - math.log(np.exp(row - peak).sum()))


def perplexity(llm, token_ids, chunk_tokens):
    """Non-overlapping chunks of chunk_tokens (the last may be shorter), each evaluated from an
    empty cache at positions 0.. ; every token after the chunk's first is scored. Also gives the
    number llama.cpp's `llama-perplexity -c chunk_tokens` prints for a model without BOS: full
    chunks only, scoring the tokens at positions chunk_tokens/2 + 1 .. chunk_tokens - 1."""
    chunks, second_half_nll = [], []
    for begin in range(0, len(token_ids) - 1, chunk_tokens):
        chunk = token_ids[begin:begin + chunk_tokens]
        if len(chunk) < 2:
            break
        llm.reset()
        llm.eval(chunk)
        nll = [-log_softmax_at(llm.scores[i], chunk[i + 1]) for i in range(len(chunk) - 1)]
        if len(chunk) == chunk_tokens:
            second_half_nll += nll[chunk_tokens // 2:]
        chunks.append({"begin": begin, "n_tokens": len(chunk), "n_scored": len(nll),
                       "nll_sum": sum(nll), "nll_mean": sum(nll) / len(nll)})
    n_scored = sum(c["n_scored"] for c in chunks)
    nll_mean = sum(c["nll_sum"] for c in chunks) / n_scored
    tool_nll_mean = sum(second_half_nll) / max(1, len(second_half_nll))
    return {"perplexity": math.exp(nll_mean), "nll_mean": nll_mean, "n_scored": n_scored,
            "chunks": chunks,
            "llama_perplexity_tool_equivalent": {
                "perplexity": math.exp(tool_nll_mean), "n_scored": len(second_half_nll)}}


def time_s(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_prefill(llm, prompt_ids, runs):
    """Median seconds to evaluate prompt_ids in one call from an empty cache (logits of the last
    token only)."""
    def once():
        llm.reset()
        llm.eval(prompt_ids)
    once()  # warm-up: first-touch of the weights and the compute buffers
    return statistics.median(time_s(once) for _ in range(runs))


def bench_decode(llm, prompt_ids, n_steps, runs):
    """Median seconds for n_steps single-token steps after prompt_ids (not timed), each feeding
    back argmax of the last logits: the generation loop of a greedy CLI."""
    n_vocab = llm.n_vocab()

    def steps():
        for _ in range(n_steps):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
            llm.eval([int(np.argmax(logits))])

    def once():
        llm.reset()
        llm.eval(prompt_ids)
        return time_s(steps)
    once()
    return statistics.median(once() for _ in range(runs))


def bench(model_path, text, n_threads, runs):
    llm = load_model(model_path, n_ctx=1024, n_threads=n_threads, logits_all=False)
    ids = tokenize(llm, text, special=False)
    longest = max(BENCH_PREFILL_TOKENS)
    if len(ids) < longest:
        raise RuntimeError(f"bench text has {len(ids)} tokens, needs {longest}")
    result = {"engine": "llama.cpp (llama-cpp-python " + llama_cpp_version() + ")",
              "model": os.path.basename(model_path), "n_threads": n_threads, "runs": runs,
              "cpu": cpu_name(), "load_avg_1min_before": os.getloadavg()[0],
              "prefill": [], "decode": {}}
    for n in BENCH_PREFILL_TOKENS:
        seconds = bench_prefill(llm, ids[:n], runs)
        result["prefill"].append({"prompt_tokens": n, "seconds": seconds, "tokens_per_s": n / seconds})
    prompt = ids[:BENCH_PREFILL_TOKENS[0]]
    seconds = bench_decode(llm, prompt, BENCH_DECODE_TOKENS, runs)
    result["decode"] = {"prompt_tokens": len(prompt), "steps": BENCH_DECODE_TOKENS,
                        "seconds": seconds, "tokens_per_s": BENCH_DECODE_TOKENS / seconds}
    result["load_avg_1min_after"] = os.getloadavg()[0]
    return result


def llama_cpp_version():
    import llama_cpp
    return llama_cpp.__version__


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def sha256_of(path):
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(model_path, n_threads):
    return {"engine": "llama.cpp via llama-cpp-python " + llama_cpp_version(),
            "model": os.path.basename(model_path), "model_sha256": sha256_of(model_path),
            "n_threads": n_threads, "kv_cache": "f16", "flash_attn": False,
            "generator": "tools/llama_cpp_reference.py"}


def eog_ids(llm):
    """Token ids llama.cpp treats as end-of-generation (EOS, EOT, <|im_end|>, ...)."""
    import llama_cpp
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]


def greedy_fixture(model_path, n_threads):
    llm = load_model(model_path, n_ctx=512, n_threads=n_threads, logits_all=True)
    eog = eog_ids(llm)
    cases = []
    for prompt in GREEDY_PROMPTS:
        case = {"name": prompt["name"], "kind": prompt["kind"]}
        if prompt["kind"] == "chat":
            text = render_chatml(prompt["messages"])
            check_chat_template(llm, prompt["messages"], text)
            case["messages"] = prompt["messages"]
        else:
            text = prompt["text"]
        case["text"] = text
        case["prompt_ids"] = tokenize(llm, text, special=prompt["kind"] == "chat")
        # first_step_top5: a numeric check of the forward pass independent of greedy agreeing
        case["output_ids"], case["top2_margins"], case["first_step_top5"] = greedy(
            llm, case["prompt_ids"], GREEDY_TOKENS)
        case["first_eog_index"] = next(
            (i for i, t in enumerate(case["output_ids"]) if t in eog), None)
        case["output_text"] = llm.detokenize(case["output_ids"], special=True).decode(
            "utf-8", errors="replace")
        cases.append(case)
    return {"method": "prompt evaluated in one batch from an empty cache, then "
            f"{GREEDY_TOKENS} steps of argmax(logits) fed back; no BOS added; generation "
            "does not stop at end-of-generation tokens (first_eog_index marks the first)",
            **provenance(model_path, n_threads), "eog_ids": eog, "cases": cases}


def perplexity_fixture(model_path, text_path, n_threads):
    llm = load_model(model_path, n_ctx=PPL_CHUNK_TOKENS, n_threads=n_threads, logits_all=True)
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    ids = tokenize(llm, text, special=False)
    result = perplexity(llm, ids, PPL_CHUNK_TOKENS)
    return {"method": f"text tokenized without BOS and specials; non-overlapping chunks of "
            f"{PPL_CHUNK_TOKENS} tokens (the last may be shorter), each from an empty cache at "
            "positions 0..; every token after the chunk's first scored; perplexity = "
            "exp(sum NLL / number scored); log-softmax in float64 from float32 logits",
            **provenance(model_path, n_threads), "text_file": os.path.relpath(text_path, REPO_ROOT),
            "chunk_tokens": PPL_CHUNK_TOKENS, "n_tokens": len(ids), "token_ids": ids, **result}


def to_json_text(obj):
    """Indented JSON with every list of numbers on one line: small, diffable fixtures."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    number_list = r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]"
    return re.sub(number_list, lambda m: "[" + ", ".join(
        x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def write_json(obj, path):
    if path in (None, "-"):
        sys.stdout.write(to_json_text(obj))
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_json_text(obj))
    print("wrote", os.path.relpath(path, REPO_ROOT), file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["tokenize", "greedy", "perplexity", "bench", "fixtures"])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--text", help="tokenize: the text; perplexity/bench: a text file")
    parser.add_argument("--special", action="store_true", help="tokenize: parse special tokens")
    parser.add_argument("--prompt-ids", help="greedy: JSON list of token ids")
    parser.add_argument("--tokens", type=int, default=GREEDY_TOKENS, help="greedy: tokens to generate")
    parser.add_argument("--runs", type=int, default=5, help="bench: timed runs (median reported)")
    parser.add_argument("--out", help="where to write the JSON (default stdout)")
    args = parser.parse_args()
    heldout = os.path.join(FIXTURE_DIR, "heldout.txt")

    if args.mode == "tokenize":
        llm = load_model(args.model, 512, args.threads, logits_all=False)
        write_json({"text": args.text, "ids": tokenize(llm, args.text, args.special)}, args.out)
    elif args.mode == "greedy":
        prompt_ids = json.loads(args.prompt_ids)
        n_ctx = max(512, len(prompt_ids) + args.tokens)
        llm = load_model(args.model, n_ctx, args.threads, logits_all=True)
        output_ids, _, _ = greedy(llm, prompt_ids, args.tokens)
        write_json({"prompt_ids": prompt_ids, "output_ids": output_ids}, args.out)
    elif args.mode == "perplexity":
        write_json(perplexity_fixture(args.model, args.text or heldout, args.threads), args.out)
    elif args.mode == "bench":
        with open(args.text or heldout, encoding="utf-8") as f:
            text = f.read()
        write_json(bench(args.model, text, args.threads, args.runs), args.out)
    else:
        os.makedirs(FIXTURE_DIR, exist_ok=True)
        for name, obj in (("greedy.json", greedy_fixture(args.model, args.threads)),
                          ("perplexity.json", perplexity_fixture(args.model, heldout, args.threads))):
            write_json(obj, os.path.join(FIXTURE_DIR, name))


if __name__ == "__main__":
    main()
