#include "anvil/core/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define ANVIL_X86 1
#endif

namespace anvil {
namespace {

#ifdef ANVIL_X86
uint64_t read_xcr0() {
  uint32_t eax = 0;
  uint32_t edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

}  // namespace

CpuFeatures CpuFeatures::detect() {
  CpuFeatures features;
#ifdef ANVIL_X86
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return features;
  const bool osxsave = (ecx & (1U << 27)) != 0;
  if (!osxsave) return features;
  const uint64_t xcr0 = read_xcr0();
  const bool os_avx = (xcr0 & 0x6U) == 0x6U;       // XMM and YMM state
  const bool os_avx512 = (xcr0 & 0xE6U) == 0xE6U;  // plus opmask and ZMM state
  features.fma = os_avx && (ecx & (1U << 12)) != 0;
  features.f16c = os_avx && (ecx & (1U << 29)) != 0;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return features;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  features.avx2 = os_avx && (ebx & (1U << 5)) != 0;
  features.avx512f = os_avx512 && (ebx & (1U << 16)) != 0;
  features.avx512bw = os_avx512 && (ebx & (1U << 30)) != 0;
  features.avx512vl = os_avx512 && (ebx & (1U << 31)) != 0;
  features.avx512_vnni = os_avx512 && (ecx & (1U << 11)) != 0;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  features.avx_vnni = os_avx && (eax & (1U << 4)) != 0;
  features.avx512_bf16 = os_avx512 && (eax & (1U << 5)) != 0;
#endif
  return features;
}

CpuFeatures CpuFeatures::from_environment() {
  CpuFeatures features = detect();
  const char* limit = std::getenv("ANVIL_CPU_ISA");
  if (limit == nullptr) return features;
  const std::string_view isa(limit);
  if (isa == "scalar" || isa == "avx2") {
    features.avx512f = features.avx512bw = features.avx512vl = false;
    features.avx512_bf16 = features.avx512_vnni = false;
  }
  if (isa == "scalar") features.avx2 = features.fma = features.f16c = features.avx_vnni = false;
  return features;
}

std::string CpuFeatures::to_string() const {
  std::string text;
  auto add = [&text](bool present, const char* name) {
    if (!present) return;
    if (!text.empty()) text += ' ';
    text += name;
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512_bf16, "avx512_bf16");
  add(avx512_vnni, "avx512_vnni");
  add(avx_vnni, "avx_vnni");
  return text.empty() ? "scalar" : text;
}

CpuIsa best_isa(const CpuFeatures& features) {
  if (features.avx512f && features.avx512bw && features.avx512vl && features.f16c) return CpuIsa::Avx512;
  if (features.avx2 && features.fma && features.f16c) return CpuIsa::Avx2;
  return CpuIsa::Scalar;
}

const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512:
      return "avx512";
    case CpuIsa::Avx2:
      return "avx2";
    case CpuIsa::Scalar:
      return "scalar";
  }
  return "?";
}

}  // namespace anvil
