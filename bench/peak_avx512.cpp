// The AVX-512 FMA loop (built with -mavx512f; called only when the CPU has it).
#include <immintrin.h>

#include <array>

#include "peak.h"

namespace anvil::bench {

double fma_loop_avx512(int64_t iterations) {
  // 16 independent chains: covers FMA latency (4-5 cycles) times two FMA pipes with room
  // to spare, and leaves registers for the constants (32 zmm registers).
  constexpr int kChains = 16;
  __m512 acc[kChains];  // NOLINT(*-avoid-c-arrays): std::array drops the vector attributes
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.001F * static_cast<float>(j));
  // acc = acc * a + b converges to b / (1 - a): stays normal, never overflows.
  const __m512 a = _mm512_set1_ps(0.999999F);
  const __m512 b = _mm512_set1_ps(1e-6F);
  for (int64_t i = 0; i < iterations; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 total = acc[0];
  for (int j = 1; j < kChains; ++j) total = _mm512_add_ps(total, acc[j]);
  // A plain store, not _mm512_reduce_add_ps (GCC 12 warns falsely inside it).
  alignas(64) std::array<float, 16> lanes{};
  _mm512_store_ps(lanes.data(), total);
  volatile float sink = lanes[0] + lanes[15];  // keeps the loop from being removed
  static_cast<void>(sink);
  return static_cast<double>(iterations) * kChains * 16 * 2;
}

}  // namespace anvil::bench
