// The AVX2 FMA loop (built with -mavx2 -mfma; called only when the CPU has them).
#include <immintrin.h>

#include <array>

#include "peak.h"

namespace anvil::bench {

double fma_loop_avx2(int64_t iterations) {
  // 12 independent chains (16 ymm registers, 2 hold the constants).
  constexpr int kChains = 12;
  __m256 acc[kChains];  // NOLINT(*-avoid-c-arrays): std::array drops the vector attributes
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(0.001F * static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.999999F);
  const __m256 b = _mm256_set1_ps(1e-6F);
  for (int64_t i = 0; i < iterations; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  __m256 total = acc[0];
  for (int j = 1; j < kChains; ++j) total = _mm256_add_ps(total, acc[j]);
  alignas(32) std::array<float, 8> lanes{};
  _mm256_store_ps(lanes.data(), total);
  volatile float sink = lanes[0] + lanes[7];
  static_cast<void>(sink);
  return static_cast<double>(iterations) * kChains * 8 * 2;
}

}  // namespace anvil::bench
