#!/usr/bin/env bash
# Reproduces the default model (docs/trained-model.md): trains it on the CPU (resumes a stopped run; about
# 95 minutes on 2 cores), exports the Hugging Face directory into models/, converts it to the committed
# GGUF with `bitnet convert`, regenerates PyTorch's golden figures and the loss plot. Not part of CI.
#   scripts/train.sh [train.py flags, e.g. --seed 7]      (working folder: $BITNET_TRAIN_DIR, default build/train)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Debian's PyTorch and NumPy belong to /usr/bin/python3. libopenblas0-pthread: torch calls whatever
# libblas.so.3 points to, and the reference BLAS is about 10x slower.
packages=(python3-torch python3-numpy python3-regex python3-matplotlib libopenblas0-pthread)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target bitnet
out=${BITNET_TRAIN_DIR:-build/train}
name=bitnet-austen-5m
/usr/bin/python3 tools/train/train.py --out "$out" "$@"
rm -rf "models/$name-hf.tmp"
cp -r "$out/hf" "models/$name-hf.tmp"
rm -rf "models/$name-hf"
mv "models/$name-hf.tmp" "models/$name-hf"
build/release/apps/bitnet convert "models/$name-hf" -o "models/$name.gguf" --type i2_s
/usr/bin/python3 tools/train/golden.py "models/$name-hf" -o tests/trained/golden.json
/usr/bin/python3 tools/train/plot.py "$out/loss.csv" -o docs/trained-model-loss.png
