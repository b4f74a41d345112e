// AVX-512 rows of the CPU activations (see activation_kernels.h).
// GCC 12's AVX-512 intrinsics pass an intentionally undefined vector as an unused merge
// source, which -Wmaybe-uninitialized reports from inside the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>

#include "cpu/activation_kernels.h"
#include "cpu/ggml_expf_avx512.h"

namespace anvil::cpu {

void swiglu_row_ggml_order_avx512(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, _mm512_mul_ps(ggml_silu(_mm512_loadu_ps(gate + i)), _mm512_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0F + std::exp(-gate[i])) * up[i];
}

}  // namespace anvil::cpu

#pragma GCC diagnostic pop
