#!/usr/bin/env bash
# Independent-parser check: files written by llama.cpp's tooling and by our writer read the same in
# `bitnet inspect --json --full` and in @huggingface/gguf. Exit 77 = skipped (npm unreachable).
# Usage: hf_gguf_compare.sh BITNET WRITE_FIXTURE ORACLE_DIR
set -euo pipefail
bitnet=$1 fixture=$2 oracles=$3
here=$(cd "$(dirname "$0")" && pwd)
shared=${BITNET_SHARED_DATA:-$here/../../../shared/data}
"$here/../oracles/install.sh" "$oracles" @huggingface/gguf@0.4.6 || exit $?
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
files=()
if [ -f "$shared/gguf/llama-2-tiny-random.gguf" ]; then files+=("$shared/gguf/llama-2-tiny-random.gguf");
else echo "note: $shared/gguf/llama-2-tiny-random.gguf missing, comparing our own files only"; fi
"$fixture" "$work/all-types.gguf" 32;   files+=("$work/all-types.gguf")
"$fixture" "$work/all-types-64.gguf" 64; files+=("$work/all-types-64.gguf")
"$bitnet" synth -o "$work/b158.gguf" --layers 2;                                   files+=("$work/b158.gguf")
"$bitnet" synth -o "$work/bitnet.gguf" --arch bitnet --type tq2_0 --act relu2;     files+=("$work/bitnet.gguf")
"$bitnet" synth -o "$work/llama.gguf" --arch llama --type tq1_0 --embd-type q8_0 --output-tensor; files+=("$work/llama.gguf")
for f in "${files[@]}"; do
  "$bitnet" inspect --json --full "$f" > "$work/ours.json"
  node "$here/../oracles/gguf_compare.mjs" "$oracles" "$f" "$work/ours.json"
done
