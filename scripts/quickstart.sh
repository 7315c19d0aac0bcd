#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install dependencies, build, and run the main job on the
# project's trained model (models/bitnet-austen-5m.gguf, a 5M-parameter BitNet b1.58 trained here on Jane
# Austen and the King James Bible: docs/trained-model.md): show it, validate it, and continue three prompts.
# `quickstart.sh MODEL.gguf` does the same with a model you have, e.g. the official ggml-model-i2_s.gguf of
# microsoft/bitnet-b1.58-2B-4T-gguf.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
bin=build/release/apps/bitnet
model=()
[ $# -gt 0 ] && model=(-m "$1")
file=${1:-}
echo "=== bitnet inspect ${file:-(the default model)}"
# sed reads all of its input (head would close the pipe early, and pipefail would fail the script on SIGPIPE).
$bin inspect ${file:+"$file"} | sed -n '1,12p'
echo "=== bitnet validate"
$bin validate ${file:+"$file"}
for prompt in "It is a truth universally acknowledged, that" "In the beginning God created" \
              "Elizabeth looked at her sister and said,"; do
  echo "=== bitnet run -p \"$prompt\" -n 48 --temp 0"
  $bin run "${model[@]}" -p "$prompt" -n 48 --temp 0
done
