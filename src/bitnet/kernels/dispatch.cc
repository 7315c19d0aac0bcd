// Chooses the kernel table once: the best the CPU supports, or the one named by BITNET_ISA.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bitnet/base/error.h"
#include "bitnet/kernels/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace bitnet::kernels {

namespace {

bool cpu_has_avx2() {
#if defined(__x86_64__)
  // F16C through CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
  unsigned eax, ebx, ecx, edx;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

// AVX-VNNI: CPUID leaf 7, sub-leaf 1, EAX bit 4 (VEX-encoded vpdpbusd on 128/256-bit registers).
bool cpu_has_avxvnni() {
#if defined(__x86_64__)
  unsigned eax, ebx, ecx, edx;
  return cpu_has_avx2() && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4));
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__)
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool cpu_has_neon_dotprod() {
#if defined(__aarch64__) && defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}

const KernelTable& choose() {
  const auto all = supported_tables();
  const char* forced = std::getenv("BITNET_ISA");
  if (forced && *forced) {
    if (const KernelTable* t = table_by_name(forced)) return *t;
    std::string names;
    for (const KernelTable* t : all) names += std::string(names.empty() ? "" : ", ") + t->name;
    fail("BITNET_ISA={} is not available on this CPU (available: {})", forced, names);
  }
  return *all.back();
}

}  // namespace

// In order of preference, the best last (the default).
std::vector<const KernelTable*> supported_tables() {
  std::vector<const KernelTable*> out{&scalar_table()};
  if (cpu_has_avx2() && avx2_table()) out.push_back(avx2_table());
  if (cpu_has_avxvnni() && avxvnni_table()) out.push_back(avxvnni_table());
  if (cpu_has_avx512() && vnni256_table()) out.push_back(vnni256_table());
  if (cpu_has_avx512() && avx512_table()) out.push_back(avx512_table());
  if (cpu_has_neon_dotprod() && neon_table()) out.push_back(neon_table());
  return out;
}

const KernelTable* table_by_name(const std::string& name) {
  for (const KernelTable* t : supported_tables())
    if (name == t->name) return t;
  return nullptr;
}

const KernelTable& active() {
  static const KernelTable& t = choose();
  return t;
}

}  // namespace bitnet::kernels
