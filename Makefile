# anvil — the two commands of the quick start are `make run` and `make test`.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
PRESET ?= cpu-release
BUILD_DIR := build/$(PRESET)

.PHONY: setup build run train test test-debug cuda-build bench fuzz format check-format tidy clean

setup:
	@scripts/setup.sh

build: setup
	@cmake --preset $(PRESET) > /dev/null
	@cmake --build --preset $(PRESET) -j $(JOBS)

# The main job: the default model (fetched by setup) answers a chat prompt, greedily, with
# its tokens streamed and the prefill/decode speed reported.
MODEL ?= models/SmolLM2-135M-Instruct.Q4_1.gguf
PROMPT ?= Explain in two sentences why the sky is blue.
run: build
	@$(BUILD_DIR)/anvil generate -m $(MODEL) --chat -p "$(PROMPT)" -n 64 --temperature 0

# Pre-training on this CPU: a ~10M-parameter Llama-style model on Shakespeare (bytes),
# about 13 minutes; writes runs/shakespeare_llama/{log.jsonl,loss.svg,model/}. ARGS adds
# config overrides (ARGS="run.steps=50") or flags (ARGS=--resume).
TRAIN_CONFIG ?= configs/shakespeare_llama.json
# DEVICE=cuda trains on the first GPU with the CUDA build.
DEVICE ?= cpu
TRAIN_BUILD = $(if $(filter cuda,$(DEVICE)),build/cuda-release,$(BUILD_DIR))
train: $(if $(filter cuda,$(DEVICE)),cuda-build,build)
	@scripts/fetch_corpus.sh
	@[ -f data/shakespeare_bytes/meta.json ] || $(TRAIN_BUILD)/anvil data prepare data/shakespeare -o data/shakespeare_bytes
	@$(TRAIN_BUILD)/anvil train --config $(TRAIN_CONFIG) --overwrite run.device=$(DEVICE) $(ARGS)

# Every CPU test (labels unit, op, e2e; the gpu label skips without a GPU).
test: build
	@ctest --preset $(PRESET) -j $(JOBS)

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-debug:
	@$(MAKE) --no-print-directory test PRESET=cpu-debug

# The CUDA build (compiles and links here; runs on the GPU machine, see docs/gpu.md).
cuda-build: setup
	@cmake --preset cuda-release > /dev/null
	@cmake --build --preset cuda-release -j $(JOBS)

# libFuzzer targets (clang preset), each run for FUZZ_SECONDS on the fixtures as seeds, or
# for FUZZ_RUNS inputs from seed 1 (reproducible: what CI runs).
FUZZ_SECONDS ?= 30
fuzz: setup
	@cmake --preset fuzz > /dev/null
	@cmake --build --preset fuzz -j $(JOBS)
	@set -eo pipefail; for target in build/fuzz/fuzz/*_fuzz; do \
	  name=$$(basename $$target _fuzz); corpus=build/fuzz/corpus/$$name; mkdir -p $$corpus; \
	  cp -n tests/fixtures/io/*.$$name $$corpus/ 2>/dev/null || true; \
	  [ $$name != tokenizer_json ] || cp -n tests/fixtures/tokenizer/small_*.json $$corpus/; \
	  echo "fuzz: $$name"; \
	  log=build/fuzz/$$name.log; \
	  if ! $$target $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS) -seed=1,-max_total_time=$(FUZZ_SECONDS)) \
	      -artifact_prefix=build/fuzz/ -print_final_stats=1 $$corpus > $$log 2>&1; then \
	    grep -v '^#[0-9]' $$log | tail -60; echo "fuzz: $$name failed (log: $$log)"; exit 1; \
	  fi; tail -4 $$log; \
	done

bench: build
	@$(BUILD_DIR)/bench/anvil_bench

SOURCES = $(shell git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')

format:
	@clang-format -i $(SOURCES)

check-format:
	@clang-format --dry-run --Werror $(SOURCES) && echo "format: ok"

# clang-tidy on every source file, two at a time; GCC-only warning flags are ignored.
tidy: build
	@set -o pipefail; printf '%s\n' $(filter src/%.cpp,$(SOURCES)) | \
	  xargs -P $(JOBS) -n 4 clang-tidy -p $(BUILD_DIR) --quiet --extra-arg=-Wno-unknown-warning-option 2>&1 | \
	  grep -vE "warnings( and [0-9]+ errors?)? generated" ; test $${PIPESTATUS[1]} -eq 0 && echo "tidy: ok"

clean:
	@rm -rf build
