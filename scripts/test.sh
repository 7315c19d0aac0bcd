#!/usr/bin/env bash
# scripts/test.sh [PRESET...]: configure, build and run the test suite for each preset (default: release).
# Presets: release, debug, asan-ubsan, tsan (see CMakePresets.json).
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(release)
jobs=${BITNET_JOBS:-$(nproc)}
for preset in "${presets[@]}"; do
  echo "=== $preset: configure + build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== $preset: test"
  ctest --preset "$preset" -j "$jobs"
done
