#pragma once
// SIMD rows of the CPU activations (cpu/activations.cpp).
#include <cstdint>

namespace anvil::cpu {

// out[i] = silu(gate[i]) * up[i] for one row of n, as ggml-cpu's ggml_vec_swiglu_f32 (the
// AVX-512 build) computes it, for llama.cpp's bits: ggml's vector SiLU on each 16 elements
// from the row start, x / (1 + expf(-x)) with libm's expf on the rest.
void swiglu_row_ggml_order_avx512(const float* gate, const float* up, float* out, int64_t n);
// The same bits with AVX2 + FMA (ggml's AVX-512 expf emulated 8 lanes at a time).
void swiglu_row_ggml_order_avx2(const float* gate, const float* up, float* out, int64_t n);

}  // namespace anvil::cpu
