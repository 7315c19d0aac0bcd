#!/usr/bin/env bash
# check-install.sh [BUILD_DIR]: installs a built tree (default build/release) into a temporary prefix and,
# with nothing but the installed files: builds examples/ through find_package(bitnet) and through
# pkg-config, against libbitnet.so and against libbitnet.a, runs each program on the installed default model,
# and runs the Python module's tests with the installed module and library. Exit 0 when all of that works.
# CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
work=$(mktemp -d "${TMPDIR:-/tmp}/bitnet-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
model=$prefix/share/bitnet/models/bitnet-austen-5m.gguf
[ -f "$model" ] || { echo "check-install: the default model was not installed" >&2; exit 1; }
# Copies outside the source tree: nothing but the prefix to build against or import from.
cp -r examples "$work/examples"
cp tests/python/test_bitnet.py "$work/"

uses_prefix_lib() {  # the program loads libbitnet.so from the prefix
  ldd "$1" | grep -q "libbitnet.so.* => $prefix/" || { echo "check-install: $1 does not load $prefix's libbitnet.so" >&2; ldd "$1" >&2; exit 1; }
}
static_only() {  # the program needs no libbitnet.so
  if ldd "$1" | grep -q libbitnet.so; then echo "check-install: $1 should be static" >&2; exit 1; fi
}

echo "=== find_package(bitnet): bitnet::bitnet (shared) and bitnet::bitnet_static"
cmake -S "$work/examples" -B "$work/by-cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/by-cmake" >/dev/null
uses_prefix_lib "$work/by-cmake/simple_cpp"
"$work/by-cmake/simple_cpp" "$model" "It is a truth universally acknowledged, that" 12
"$work/by-cmake/simple_c" "$model" "In the beginning God created" 12
cmake -S "$work/examples" -B "$work/by-cmake-static" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DBITNET_EXAMPLES_STATIC=ON >/dev/null
cmake --build "$work/by-cmake-static" >/dev/null
static_only "$work/by-cmake-static/simple_c"
"$work/by-cmake-static/simple_cpp" "$model" "Emma Woodhouse, handsome, clever," 12
"$work/by-cmake-static/simple_c" "$model" "And God said," 12

echo "=== pkg-config bitnet (shared) and bitnet-static"
pcdir=$(dirname "$(find "$prefix" -name bitnet.pc | head -1)")
export PKG_CONFIG_PATH=$pcdir
libdir=$(pkg-config --variable=libdir bitnet)
c++ -std=c++20 -O2 "$work/examples/simple.cpp" $(pkg-config --cflags --libs bitnet) -Wl,-rpath,"$libdir" -o "$work/simple_cpp_pc"
cc -std=c99 -O2 "$work/examples/simple.c" $(pkg-config --cflags --libs bitnet) -Wl,-rpath,"$libdir" -o "$work/simple_c_pc"
uses_prefix_lib "$work/simple_c_pc"
"$work/simple_cpp_pc" "$model" "Elizabeth looked at her sister and said," 12
"$work/simple_c_pc" "$model" "The evening was fine, and" 12
c++ -std=c++20 -O2 "$work/examples/simple.cpp" $(pkg-config --cflags --libs bitnet-static) -o "$work/simple_cpp_pcs"
static_only "$work/simple_cpp_pcs"
"$work/simple_cpp_pcs" "$model" "Mr. Knightley" 12

echo "=== the Python module from the prefix"
py=$(command -v /usr/bin/python3 || command -v python3)
pydir=$(dirname "$(find "$prefix" -path '*/bitnet/__init__.py' | head -1)")
pypath=$(dirname "$pydir")
(cd "$work" && env -u BITNET_LIBRARY PYTHONPATH="$pypath" "$py" -c \
  "import bitnet, sys; p = bitnet.library_path(); print('module', bitnet.__file__, 'library', p); sys.exit(not p.startswith('$prefix/'))")
(cd "$work" && env -u BITNET_LIBRARY PYTHONPATH="$pypath" BITNET_BIN="$prefix/bin/bitnet" BITNET_MODEL="$model" \
  BITNET_SHARED_DATA="${BITNET_SHARED_DATA:-$PWD/../shared/data}" \
  "$py" test_bitnet.py 2>&1 | tail -3)
echo "check-install: the installed libraries, headers, CMake package, pkg-config files and Python module work"
