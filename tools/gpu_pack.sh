#!/usr/bin/env bash
# Copies what the GPU machine needs from build/cuda-release into build/gpu-bin (stripped and
# gzipped, so the call's working tree stays under the device tool's 64 MiB; tools/gpu_check.sh
# unpacks them there), see docs/gpu.md. Arguments name the binaries (paths under
# build/cuda-release); the default set is the CLI and the GPU tests. Each is ~18 MB stripped,
# ~6 MB gzipped (device code for every kernel).
set -euo pipefail
rm -rf build/gpu-bin && mkdir -p build/gpu-bin
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(anvil tests/anvil_op_tests tests/anvil_model_tests tests/anvil_train_tests)
for binary in "${binaries[@]}"; do
  if [ -f "build/cuda-release/$binary" ]; then
    strip -o "build/gpu-bin/$(basename "$binary")" "build/cuda-release/$binary"
    gzip -1 "build/gpu-bin/$(basename "$binary")"
  fi
done
pwd > build/gpu-bin/source_dir
# Libraries the GPU machine does not have (it lacks the Debian -dev packages' runtimes).
mkdir -p build/gpu-bin/lib
cp -L /usr/lib/x86_64-linux-gnu/libutf8proc.so.2 build/gpu-bin/lib/
du -sh build/gpu-bin
