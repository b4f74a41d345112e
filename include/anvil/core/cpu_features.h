#pragma once
// Run-time CPU feature detection (cpuid + xgetbv), so one binary picks the best
// kernels on the machine it runs on. The scalar path always exists.
#include <string>

namespace anvil {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  bool avx_vnni = false;

  // Detects what this CPU and OS support (OS must save the wide registers).
  static CpuFeatures detect();
  // Features to use: detected ones minus those disabled by ANVIL_CPU_ISA
  // ("scalar", "avx2" or "avx512"), which lets tests force every path.
  static CpuFeatures from_environment();
  // "avx2 fma f16c avx512f ..." for logs.
  [[nodiscard]] std::string to_string() const;
};

// The widest kernel family the features allow.
enum class CpuIsa { Scalar, Avx2, Avx512 };
CpuIsa best_isa(const CpuFeatures& features);
const char* isa_name(CpuIsa isa);

}  // namespace anvil
