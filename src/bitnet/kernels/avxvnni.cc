// AVX-VNNI kernels (VEX-encoded 256-bit vpdpbusd; compiled with -mavx2 -mfma -mf16c -mavxvnni and run
// only where CPUID reports AVX-VNNI). The code is vnni256.inc; vnni256.cc is the same in EVEX form.
#define BITNET_DPBUSD256 _mm256_dpbusd_avx_epi32
// (VEX has no embedded broadcast: the activations are broadcast by an instruction of their own.)
#define BITNET_DPBUSD256_BCST(acc, codes, p) _mm256_dpbusd_avx_epi32(acc, codes, broadcast4(p))
#define BITNET_VNNI256_TABLE avxvnni_table
#define BITNET_VNNI256_NAME "avxvnni"
#include "vnni256.inc"
