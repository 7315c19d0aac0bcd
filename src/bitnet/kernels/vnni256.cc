// vnni256.inc's kernels in EVEX form (AVX-512 VNNI + VL on 256-bit registers): the AVX-VNNI table's code
// on AVX-512 machines (where its tests run), and a 256-bit choice for CPUs that slow down on 512-bit work.
#define BITNET_DPBUSD256 _mm256_dpbusd_epi32
#define BITNET_DPBUSD256_BCST dpbusd256_bcst
#include <immintrin.h>

#include <cstdint>

namespace bitnet::kernels {
namespace {
// acc += codes x the 4 activations at p broadcast to every lane, as an embedded broadcast (a memory operand
// {1to8}): GCC keeps _mm256_set1_epi32 as an instruction of its own (see gemv_panel in avx512.cc).
inline __m256i dpbusd256_bcst(__m256i acc, __m256i codes, const int8_t* p) {
  asm("vpdpbusd %[x]%{1to8%}, %[c], %[acc]" : [acc] "+v"(acc) : [c] "v"(codes), [x] "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}
}  // namespace
}  // namespace bitnet::kernels

#define BITNET_VNNI256_TABLE vnni256_table
#define BITNET_VNNI256_NAME "vnni256"
#include "vnni256.inc"
