#!/usr/bin/env bash
# Cross-compiles the kernel test suite for aarch64 (the NEON + dot-product table) and runs it under
# qemu-user, so the ARM table is built and checked bit-exact against the scalar specification on an x86
# machine. Exit 77 (ctest: skipped) when aarch64-linux-gnu-g++ or qemu-aarch64 is missing
# (scripts/install-deps.sh installs both: g++-aarch64-linux-gnu, qemu-user).
#
#   tests/kernels/cross_aarch64.sh [BUILD_DIR]     (default build/cross-aarch64)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$root/build/cross-aarch64}
cxx=aarch64-linux-gnu-g++
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
if ! command -v "$cxx" >/dev/null || [ -z "$qemu" ]; then
  echo "cross_aarch64: SKIP: needs $cxx and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)"
  exit 77
fi
gtest_src=/usr/src/googletest/googletest
[ -f "$gtest_src/src/gtest-all.cc" ] || { echo "cross_aarch64: SKIP: GoogleTest sources missing ($gtest_src)"; exit 77; }

mkdir -p "$out/include"
# fmt header-only, and only fmt's headers from the host (the rest of /usr/include is x86's).
ln -sfn /usr/include/fmt "$out/include/fmt"
flags=(-std=c++20 -O2 -Wall -Wextra -Werror -DFMT_HEADER_ONLY -I"$root/src" -isystem "$out/include" -pthread)
sources=(
  src/bitnet/kernels/scalar.cc src/bitnet/kernels/qhead.cc src/bitnet/kernels/dispatch.cc src/bitnet/kernels/ternary_layout.cc
  src/bitnet/kernels/no_simd.cc src/bitnet/format/dequant.cc src/bitnet/format/ternary.cc
  src/bitnet/format/ggml_types.cc src/bitnet/base/thread_pool.cc tests/kernels/kernels_test.cc
)
objs=()
cd "$root"
if [ ! -f "$out/gtest.o" ]; then
  $cxx -std=c++20 -O1 -isystem "$gtest_src/include" -I"$gtest_src" -pthread -c "$gtest_src/src/gtest-all.cc" -o "$out/gtest.o"
  $cxx -std=c++20 -O1 -isystem "$gtest_src/include" -pthread -c "$gtest_src/src/gtest_main.cc" -o "$out/gtest_main.o"
fi
for s in "${sources[@]}"; do
  o="$out/$(echo "$s" | tr / _).o"
  extra=()
  [ "$s" = src/bitnet/kernels/qhead.cc ] && extra=(-ffp-contract=off)  # as src/bitnet/kernels/CMakeLists.txt
  $cxx "${flags[@]}" "${extra[@]}" -isystem "$gtest_src/include" -c "$s" -o "$o"
  objs+=("$o")
done
$cxx "${flags[@]}" -march=armv8.2-a+dotprod -c src/bitnet/kernels/neon.cc -o "$out/neon.o"
$cxx -pthread "${objs[@]}" "$out/neon.o" "$out/gtest.o" "$out/gtest_main.o" -o "$out/kernels_test"
echo "cross_aarch64: built $out/kernels_test; running under $(basename "$qemu") (emulated CPU: max, with dotprod)"
# The tables must include neon (the emulated CPU has the dot-product extension).
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu "$qemu" -cpu max "$out/kernels_test" --gtest_brief=1 | tee "$out/log.txt"
grep -q "kernel tables on this CPU: scalar neon" "$out/log.txt" || { echo "cross_aarch64: the neon table was not used"; exit 1; }
