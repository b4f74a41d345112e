// CPU feature detection against the kernel's view (/proc/cpuinfo), the ANVIL_CPU_ISA
// override, and best_isa's choice.
#include "anvil/core/cpu_features.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>

namespace anvil {
namespace {

// The flags of the first processor in /proc/cpuinfo; nullopt when there is none (not Linux x86).
std::optional<std::set<std::string>> cpuinfo_flags() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    std::string word;
    while (words >> word) flags.insert(word);
    return flags;
  }
  return std::nullopt;
}

// Sets ANVIL_CPU_ISA for one scope and restores the previous value.
class ScopedIsaOverride {
 public:
  explicit ScopedIsaOverride(const char* value) {
    if (const char* old = std::getenv("ANVIL_CPU_ISA")) previous_ = old;
    if (value != nullptr) {
      setenv("ANVIL_CPU_ISA", value, 1);
    } else {
      unsetenv("ANVIL_CPU_ISA");
    }
  }
  ~ScopedIsaOverride() {
    if (previous_) {
      setenv("ANVIL_CPU_ISA", previous_->c_str(), 1);
    } else {
      unsetenv("ANVIL_CPU_ISA");
    }
  }
  ScopedIsaOverride(const ScopedIsaOverride&) = delete;
  ScopedIsaOverride& operator=(const ScopedIsaOverride&) = delete;

 private:
  std::optional<std::string> previous_;
};

TEST(CpuFeatures, DetectAgreesWithProcCpuinfo) {
  const auto flags = cpuinfo_flags();
  if (!flags) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  const CpuFeatures features = CpuFeatures::detect();
  auto has = [&](const char* name) { return flags->count(name) > 0; };
  EXPECT_EQ(features.avx2, has("avx2"));
  EXPECT_EQ(features.fma, has("fma"));
  EXPECT_EQ(features.f16c, has("f16c"));
  EXPECT_EQ(features.avx512f, has("avx512f"));
  EXPECT_EQ(features.avx512bw, has("avx512bw"));
  EXPECT_EQ(features.avx512vl, has("avx512vl"));
  EXPECT_EQ(features.avx512_bf16, has("avx512_bf16"));
  EXPECT_EQ(features.avx512_vnni, has("avx512_vnni"));
  EXPECT_EQ(features.avx_vnni, has("avx_vnni"));
  std::cout << "detected: " << features.to_string() << " -> " << isa_name(best_isa(features)) << "\n";
}

TEST(CpuFeatures, EnvironmentOverrideDisablesWiderPaths) {
  const CpuFeatures detected = CpuFeatures::detect();
  {
    const ScopedIsaOverride isa("scalar");
    const CpuFeatures scalar = CpuFeatures::from_environment();
    EXPECT_EQ(best_isa(scalar), CpuIsa::Scalar);
    EXPECT_EQ(scalar.to_string(), "scalar");
    EXPECT_FALSE(scalar.avx2 || scalar.fma || scalar.f16c || scalar.avx_vnni || scalar.avx512f || scalar.avx512bw ||
                 scalar.avx512vl || scalar.avx512_bf16 || scalar.avx512_vnni);
  }
  {
    const ScopedIsaOverride isa("avx2");
    const CpuFeatures avx2 = CpuFeatures::from_environment();
    EXPECT_FALSE(avx2.avx512f || avx2.avx512bw || avx2.avx512vl || avx2.avx512_bf16 || avx2.avx512_vnni);
    EXPECT_EQ(avx2.avx2, detected.avx2);
    EXPECT_EQ(avx2.fma, detected.fma);
    EXPECT_NE(best_isa(avx2), CpuIsa::Avx512);
    EXPECT_EQ(best_isa(avx2), detected.avx2 && detected.fma ? CpuIsa::Avx2 : CpuIsa::Scalar);
  }
  for (const char* value : {"avx512", static_cast<const char*>(nullptr)}) {
    const ScopedIsaOverride isa(value);
    const CpuFeatures features = CpuFeatures::from_environment();
    EXPECT_EQ(features.to_string(), detected.to_string()) << (value ? value : "unset");
    EXPECT_EQ(best_isa(features), best_isa(detected));
  }
}

TEST(CpuFeatures, BestIsaNeedsTheWholeFamily) {
  CpuFeatures features;
  EXPECT_EQ(best_isa(features), CpuIsa::Scalar);
  features.avx2 = true;
  EXPECT_EQ(best_isa(features), CpuIsa::Scalar);  // AVX2 kernels use FMA too
  features.fma = true;
  EXPECT_EQ(best_isa(features), CpuIsa::Scalar);  // and F16C (f16 loads and conversions)
  features.f16c = true;
  EXPECT_EQ(best_isa(features), CpuIsa::Avx2);
  features.avx512f = true;
  features.avx512bw = true;
  EXPECT_EQ(best_isa(features), CpuIsa::Avx2);  // no AVX-512VL
  features.avx512vl = true;
  EXPECT_EQ(best_isa(features), CpuIsa::Avx512);
  EXPECT_STREQ(isa_name(CpuIsa::Avx512), "avx512");
  EXPECT_STREQ(isa_name(CpuIsa::Avx2), "avx2");
  EXPECT_STREQ(isa_name(CpuIsa::Scalar), "scalar");
  EXPECT_EQ(features.to_string(), "avx2 fma f16c avx512f avx512bw avx512vl");
  // Detected features are consistent: every AVX-512 CPU also has AVX2 and FMA.
  const CpuFeatures detected = CpuFeatures::detect();
  if (detected.avx512f) {
    EXPECT_TRUE(detected.avx2 && detected.fma && detected.f16c) << detected.to_string();
  }
}

}  // namespace
}  // namespace anvil
