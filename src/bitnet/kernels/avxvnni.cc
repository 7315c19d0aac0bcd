// AVX-VNNI kernels (VEX-encoded 256-bit vpdpbusd; compiled with -mavx2 -mfma -mf16c -mavxvnni and run
// only where CPUID reports AVX-VNNI). The code is vnni256.inc; vnni256.cc is the same in EVEX form.
#include <immintrin.h>

namespace bitnet::kernels {
namespace {
// acc += codes x act. GCC's _mm256_dpbusd_avx_epi32 copies the accumulator before each use (GCC 12: a
// register move per instruction, and accumulators spilled to the stack in the one-token GEMV), so the
// instruction is written out, its accumulator tied to its result.
inline __m256i dpbusd_vex(__m256i acc, __m256i codes, __m256i act) {
  asm("%{vex%} vpdpbusd %[x], %[c], %[acc]" : [acc] "+x"(acc) : [c] "x"(codes), [x] "x"(act));
  return acc;
}
}  // namespace
}  // namespace bitnet::kernels

#define BITNET_DPBUSD256 dpbusd_vex
// (VEX has no embedded broadcast: the activations are broadcast by an instruction of their own.)
#define BITNET_DPBUSD256_BCST(acc, codes, p) dpbusd_vex(acc, codes, broadcast4(p))
#define BITNET_VNNI256_TABLE avxvnni_table
#define BITNET_VNNI256_NAME "avxvnni"
#include "vnni256.inc"
