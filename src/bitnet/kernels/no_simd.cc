// The SIMD tables that this architecture does not compile: each is absent (nullptr).
#include "bitnet/kernels/kernels.h"

namespace bitnet::kernels {
#if !defined(__x86_64__)
const KernelTable* avx2_table() { return nullptr; }
const KernelTable* avxvnni_table() { return nullptr; }
const KernelTable* vnni256_table() { return nullptr; }
const KernelTable* avx512_table() { return nullptr; }
#endif
#if !defined(__aarch64__)
const KernelTable* neon_table() { return nullptr; }
#endif
}  // namespace bitnet::kernels
