#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install dependencies, build, and run the main job on a
# generated BitNet b1.58 model (random weights, so the text is noise; the real 2B-4T file works the same
# way: pass its path instead).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
bin=build/release/apps/bitnet
model=${1:-build/demo-b158.gguf}
if [ ! -f "$model" ]; then
  $bin synth -o "$model" --layers 4 --dim 512 --hidden-dim 1536 --heads 8 --kv-heads 2
fi
$bin inspect "$model" | head -8
$bin inspect "$model" --tensor blk.0.attn_norm.weight --tensor blk.0.attn_q.weight | tail -8
$bin validate "$model"
$bin run -m "$model" -p "The capital of France is" -n 32 --temp 0
