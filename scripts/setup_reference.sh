#!/usr/bin/env bash
# Installs the llama.cpp reference (llama-cpp-python, built from its sdist) into the
# project .venv, only when it is not importable yet. It is what tools/llama_cpp_reference.py
# runs to produce the SmolLM2 fixtures and the side-by-side CPU benchmark (docs/reference.md).
#
# Build: CPU only, GGML_NATIVE=ON (llama.cpp's own default: -march=native, so AVX-512 on
# machines that have it; the CI machine is the same kind as the dev machine), no BLAS,
# no CUDA, no multimodal (mtmd) library, no curl. Two compile jobs keep the shared machine
# usable; the first build takes a few minutes, later runs reuse pip's wheel cache.
# Needs cmake >= 3.21 and a C++17 compiler (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36
VENV_PYTHON=.venv/bin/python
JOBS=${MAX_JOBS:-2}

if [[ ! -x $VENV_PYTHON ]]; then
  echo "setup_reference: no .venv; run scripts/setup.sh first" >&2
  exit 1
fi
installed=$("$VENV_PYTHON" -c "import llama_cpp; print(llama_cpp.__version__)" 2>/dev/null || true)
if [[ $installed == "$LLAMA_CPP_PYTHON_VERSION" ]]; then
  exit 0
fi

echo "setup_reference: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (CPU, native; a few minutes)"
start_s=$(date +%s)
CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
-DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL=$JOBS \
  "$VENV_PYTHON" -m pip install -q --disable-pip-version-check \
  "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
"$VENV_PYTHON" -c "import llama_cpp" # fail here, not later, when the build is broken
echo "setup_reference: llama-cpp-python installed in $(($(date +%s) - start_s)) s"
