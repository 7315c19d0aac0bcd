// vnni256.inc's kernels in EVEX form (AVX-512 VNNI + VL on 256-bit registers): the AVX-VNNI table's code
// on AVX-512 machines (where its tests run), and a 256-bit choice for CPUs that slow down on 512-bit work.
#define BITNET_DPBUSD256 _mm256_dpbusd_epi32
#define BITNET_VNNI256_TABLE vnni256_table
#define BITNET_VNNI256_NAME "vnni256"
#include "vnni256.inc"
