#pragma once
// The inner step of the CPU paged attention (cpu/paged_attention.cpp): one query row's
// online-softmax update over a run of cached keys/values. Scalar in paged_attention.cpp,
// AVX-512 in paged_attention_avx512.cpp.
#include <cstdint>

namespace anvil::cpu {

// For query row q (D, pre-scaled) and `count` key/value rows (D floats each, `key_stride` /
// `value_stride` apart): scores[j] = q . k_j; new max m' = max(max, scores);
// acc = acc * exp(max - m') + sum_j exp(scores[j] - m') v_j; sum likewise; max = m'.
// `scores` has room for count floats.
using AttendRows = void (*)(const float* q, const float* keys, int64_t key_stride, const float* values,
                            int64_t value_stride, int64_t count, int64_t d, float* scores, float* acc, float* max,
                            float* sum);

void attend_rows_avx512(const float* q, const float* keys, int64_t key_stride, const float* values,
                        int64_t value_stride, int64_t count, int64_t d, float* scores, float* acc, float* max,
                        float* sum);

// llama.cpp's attention for f16 caches, to the bit (ggml-cpu with flash attention off, see
// docs/reference.md): out (D) for one query row q (D, f32, not scaled) against the `count`
// f16 key and value rows (count, D) of positions 0..count-1. q is rounded to f16; scores are
// ggml's f16 dot products (`batched`: llamafile's tinyBLAS order, used for batches of two or
// more tokens; else ggml_vec_dot_f16's), times scale; softmax with ggml's vector expf and its
// double sum over chunks of 16 positions; probabilities rounded to f16; out the same f16 dot
// order over positions. D must be a multiple of 64. `scratch` holds (count rounded up to 64) + 65 * D floats.
void attend_ggml_order_avx512(const float* q, const uint16_t* keys, const uint16_t* values, int64_t count, int64_t d,
                              float scale, bool batched, float* scratch, float* out);
// The same bits with AVX2 + FMA + F16C (the AVX-512 build's 16 lanes as two halves).
void attend_ggml_order_avx2(const float* q, const uint16_t* keys, const uint16_t* values, int64_t count, int64_t d,
                            float scale, bool batched, float* scratch, float* out);

}  // namespace anvil::cpu
