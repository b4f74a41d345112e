// AVX2 rows of the CPU activations (see activation_kernels.h).
#include <immintrin.h>

#include <cmath>

#include "cpu/activation_kernels.h"
#include "cpu/ggml_expf_avx2.h"

namespace anvil::cpu {

void swiglu_row_ggml_order_avx2(const float* gate, const float* up, float* out, int64_t n) {
  const int64_t vector_end = n / 16 * 16;  // the AVX-512 build's 16-element steps, 8 lanes at a time
  int64_t i = 0;
  for (; i < vector_end; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(ggml_silu_8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0F + std::exp(-gate[i])) * up[i];
}

}  // namespace anvil::cpu
