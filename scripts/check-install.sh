#!/usr/bin/env bash
# check-install.sh [BUILD_DIR]: installs a built tree (default build/release) into a temporary prefix and
# builds examples/ against only the installed files, through find_package(bitnet) and through pkg-config,
# then runs both programs on the installed default model. Exit 0 when all of that works. CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
work=$(mktemp -d "${TMPDIR:-/tmp}/bitnet-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
model=$prefix/share/bitnet/models/bitnet-austen-5m.gguf
[ -f "$model" ] || { echo "check-install: the default model was not installed" >&2; exit 1; }
cp -r examples "$work/examples"  # a copy outside the source tree: nothing but the prefix to build against

echo "=== find_package(bitnet)"
cmake -S "$work/examples" -B "$work/by-cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/by-cmake" >/dev/null
"$work/by-cmake/simple_cpp" "$model" "It is a truth universally acknowledged, that" 12
"$work/by-cmake/simple_c" "$model" "In the beginning God created" 12

echo "=== pkg-config bitnet"
pcdir=$(dirname "$(find "$prefix" -name bitnet.pc | head -1)")
export PKG_CONFIG_PATH=$pcdir
c++ -std=c++20 -O2 "$work/examples/simple.cpp" $(pkg-config --cflags --libs bitnet) -o "$work/simple_cpp_pc"
cc -std=c99 -O2 "$work/examples/simple.c" $(pkg-config --cflags --libs bitnet) -o "$work/simple_c_pc"
"$work/simple_cpp_pc" "$model" "Elizabeth looked at her sister and said," 12
"$work/simple_c_pc" "$model" "The evening was fine, and" 12
echo "check-install: the installed library, headers, CMake package and pkg-config file work"
