// Builds without x86 SIMD tables (other architectures): only the scalar table exists.
#include "bitnet/kernels/kernels.h"

namespace bitnet::kernels {
const KernelTable* avx2_table() { return nullptr; }
const KernelTable* avx512_table() { return nullptr; }
}  // namespace bitnet::kernels
