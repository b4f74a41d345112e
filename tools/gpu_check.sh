#!/usr/bin/env bash
# Runs the GPU checks and benchmarks on the GPU machine (docs/gpu.md): the binaries built
# here with `make cuda-build` and copied to build/gpu-bin by `tools/gpu_pack.sh`, run from
# the repository root there. Steps (any of): ops models train loss-curve cli sanitize bench-train profile-train bench-attention
# bench-decode bench-llama8b bench-prefill-gemm. Logs go to $OUT when it is set.
set -uo pipefail
BIN=${BIN:-build/gpu-bin}
OUT=${OUT:-/tmp/anvil-gpu-out}
# Shared libraries the GPU machine lacks (gpu_pack.sh copies them).
export LD_LIBRARY_PATH=$PWD/$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$OUT"
# tools/gpu_pack.sh gzips the binaries for the trip.
for packed in "$BIN"/*.gz; do [ -f "$packed" ] && gunzip -f "$packed"; done
# The test binaries look for fixtures under the path they were built in.
BUILT_IN=$(cat "$BIN/source_dir" 2>/dev/null || echo /work/main)
if [ ! -e "$BUILT_IN" ]; then mkdir -p "$(dirname "$BUILT_IN")" && ln -sfn "$(pwd)" "$BUILT_IN"; fi
SMOL=models/SmolLM2-135M-Instruct.Q4_1.gguf
status=0
step() { echo "=== $1"; }
for what in "$@"; do
  case $what in
    ops)
      step "op tests on the GPU"
      ANVIL_TEST_DEVICES=cuda "$BIN/anvil_op_tests" --gtest_brief=1 2>&1 | tee "$OUT/ops.log" | tail -25 || status=1 ;;
    models)
      step "model forward on the GPU vs the CPU"
      "$BIN/anvil_model_tests" --gtest_filter='GpuForward*' 2>&1 | tee "$OUT/models.log" | grep -E "gpu  |OK|FAILED|Failure|error|PASSED|SKIPPED" | head -40 || status=1 ;;
    train)
      step "training on the GPU vs the CPU, then a short run of the Shakespeare config"
      "$BIN/anvil_train_tests" --gtest_filter='GpuTraining*' 2>&1 | tee "$OUT/train.log" | grep -E "OK|FAILED|Failure|error|PASSED|SKIPPED" | head -20 || status=1
      if [ -d data/shakespeare ]; then
        [ -f /tmp/shakespeare_bytes/meta.json ] || "$BIN/anvil" data prepare data/shakespeare -o /tmp/shakespeare_bytes 2>&1 | tail -1
        "$BIN/anvil" train --config configs/shakespeare_llama.json --overwrite run.device=cuda data.path=/tmp/shakespeare_bytes \
          run.out_dir=/tmp/run_gpu ${TRAIN_ARGS:-} 2>&1 | tail -12
        cp /tmp/run_gpu/log.jsonl /tmp/run_gpu/loss.svg "$OUT/" 2>/dev/null || true
      fi ;;
    bench-train)
      [ -d data/shakespeare ] || { echo "bench-train: data/shakespeare is missing (carry it: it is git-ignored)"; status=1; continue; }
      rm -rf /tmp/gpt2_*  # a warm machine keeps the last run's logs
      precision=${PRECISION:-f32}
      step "GPT-2 124M training step: anvil ($precision) vs PyTorch (torch.compile; ${TORCH_PRECISION:-bf16 f32})"
      [ -f /tmp/shakespeare_bytes/meta.json ] || "$BIN/anvil" data prepare data/shakespeare -o /tmp/shakespeare_bytes 2>&1 | tail -1
      for batch in ${TRAIN_BATCHES:-32}; do
        "$BIN/anvil" train --config configs/gpt2_124m.json --overwrite run.device=cuda data.path=/tmp/shakespeare_bytes \
          run.steps=${TRAIN_STEPS:-12} run.grad_accum=1 run.batch_size=$batch run.eval_every=0 run.eval_batches=1 run.log_every=1 \
          run.checkpoint_every=0 run.out_dir=/tmp/gpt2_$batch run.precision=$precision schedule.warmup_steps=2 \
          > "$OUT/anvil_gpt2_$batch.log" 2>&1
        tail -1 "$OUT/anvil_gpt2_$batch.log"
        python3 - "$batch" "$precision" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(f"/tmp/gpt2_{sys.argv[1]}/log.jsonl") if '"tokens_per_s"' in l]
rates = [r["tokens_per_s"] for r in rows[3:]]
mfu = statistics.median(r["mfu"] for r in rows[3:])
print(f"anvil GPT-2 124M {sys.argv[2]:>4} batch {sys.argv[1]} seq 1024: {statistics.median(rates):,.0f} tokens/s (median of steps 4-{len(rows)}), "
      f"{rows[-1]['step_ms']:.1f} ms/step, mfu {100 * mfu:.1f}%, peak device memory {rows[-1].get('peak_device_mb', 0) / 1e3:.1f} GB, "
      f"loss {rows[-1]['loss']:.3f}")
PY
        python3 bench/train_gpt2_torch.py --batch "$batch" --steps 10 --precision ${TORCH_PRECISION:-bf16 f32} 2>&1 | \
          grep -E "tokens/s|Error" | tail -3
      done ;;
    profile-train)
      step "GPT-2 124M bf16 training step, kernel by kernel: anvil (ncu) and PyTorch (torch.profiler)"
      [ -f /tmp/shakespeare_bytes/meta.json ] || "$BIN/anvil" data prepare data/shakespeare -o /tmp/shakespeare_bytes 2>&1 | tail -1
      batch=${TRAIN_BATCHES:-32}; batch=${batch%% *}
      ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
        "$BIN/anvil" train --config configs/gpt2_124m.json --overwrite run.device=cuda data.path=/tmp/shakespeare_bytes \
        run.steps=3 run.grad_accum=1 run.batch_size=$batch run.eval_every=0 run.eval_batches=1 run.checkpoint_every=0 \
        run.out_dir=/tmp/gpt2_profile run.precision=bf16 schedule.warmup_steps=2 > "$OUT/anvil_ncu.csv" 2> "$OUT/anvil_ncu.err"
      python3 tools/kernel_table.py "$OUT/anvil_ncu.csv" --top 30
      python3 bench/train_gpt2_torch.py --batch $batch --steps 5 --precision bf16 --profile 3 2>&1 | grep -v Warn | tail -28 ;;
    loss-curve)
      step "200 steps of the Shakespeare Llama next to PyTorch (same weights, batches, optimizer)"
      [ -f /tmp/shakespeare_bytes/meta.json ] || "$BIN/anvil" data prepare data/shakespeare -o /tmp/shakespeare_bytes 2>&1 | tail -1
      common="run.device=cuda data.path=/tmp/shakespeare_bytes run.eval_every=0 run.sample_every=0 run.checkpoint_every=0"
      torch_flags=""
      if [ "${PRECISION:-f32}" = bf16 ]; then common="$common run.precision=bf16"; torch_flags=--bf16; fi
      "$BIN/anvil" train --config configs/shakespeare_llama.json --overwrite $common run.steps=0 run.out_dir=/tmp/lc_init \
        > "$OUT/lc_init.log" 2>&1 || tail -3 "$OUT/lc_init.log"
      "$BIN/anvil" train --config configs/shakespeare_llama.json --overwrite $common run.steps=${CURVE_STEPS:-200} \
        run.out_dir=/tmp/lc_run --dump-batches /tmp/lc_batches.bin > "$OUT/lc_run.log" 2>&1 || tail -3 "$OUT/lc_run.log"
      python3 tools/torch_loss_curve.py --init /tmp/lc_init/model --run /tmp/lc_run --batches /tmp/lc_batches.bin $torch_flags 2>&1 | \
        grep -v Warning | tail -16
      cp /tmp/lc_run/loss_vs_torch.svg /tmp/lc_run/torch_log.jsonl /tmp/lc_run/log.jsonl "$OUT/" 2>/dev/null || true ;;
    cli)
      step "anvil generate --device cuda"
      if [ -f "$SMOL" ]; then
        "$BIN/anvil" generate -m "$SMOL" -p "The capital of France is" -n 32 --temperature 0 --device cuda 2>&1 | tail -4
        "$BIN/anvil" generate -m "$SMOL" -p "The capital of France is" -n 32 --temperature 0 2>&1 | tail -4
      fi ;;
    sanitize)
      step "compute-sanitizer memcheck"
      ANVIL_TEST_DEVICES=cuda /usr/local/cuda/bin/compute-sanitizer --tool memcheck --print-limit 5 \
        "$BIN/anvil_op_tests" --gtest_brief=1 2>&1 | tail -6 ;;
    bench-attention)
      step "attention: anvil vs PyTorch SDPA"
      # A kernel that hangs (a wrong barrier phase) ends the step, not the call.
      timeout 300 "$BIN/anvil_attention_cuda_bench" 2>&1 | tee "$OUT/attention_anvil.log" | tail -40
      python3 tools/bench_attention_torch.py 2>&1 | tee "$OUT/attention_torch.log" | tail -16 ;;
    bench-decode)
      step "batch-1 decode"
      [ -f "$SMOL" ] && python3 tools/bench_gpu_decode.py --anvil "$BIN/anvil" --model "$SMOL" 2>&1 | tail -4 ;;
    bench-llama8b)
      step "batch-1 decode, Llama-3-8B shape, random bf16"
      python3 tools/bench_gpu_decode.py --anvil "$BIN/anvil" --make-llama3-8b /tmp/llama3-8b --model /tmp/llama3-8b \
        --transformers --graphs-off-too --prefill-tokens 2048 2>&1 | grep -v Loading | tail -6 ;;
    bench-prefill-gemm)
      step "bf16 prefill GEMMs vs plain cuBLASLt"
      "$BIN/anvil_prefill_gemm_cuda_bench" 512 2048 2>&1 | tee "$OUT/prefill_gemm.log" ;;
    *) echo "unknown step $what"; status=2 ;;
  esac
done
exit $status
