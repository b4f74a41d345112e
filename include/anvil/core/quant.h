#pragma once
// GGUF block-quantized formats (ggml's layouts): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (32-element
// blocks) and the K-quants Q4_K, Q5_K, Q6_K (256-element super-blocks).
// Scales are f16 bit patterns. Dequantisation is bit-identical to ggml / the gguf package;
// Q8_0..Q5_1 quantisation is bit-identical to ggml's reference quantizers; the K-quant
// quantizers are simple round-to-nearest ones (not ggml's scale search).
#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil {

inline constexpr int kQuantBlock = 32;        // elements per Q8_0..Q5_1 block
inline constexpr int kQuantSuperBlock = 256;  // elements per K-quant super-block

// x = d * q, q in [-127, 127].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQuantBlock];
};
// x = d * (q - 8); element j < 16 in the low nibble of qs[j], element j + 16 in the high one.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQuantBlock / 2];
};
// x = d * q + m, nibbles as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQuantBlock / 2];
};
// x = d * (q - 16); low 4 bits as in Q4_0, bit 4 of element j is bit j of qh (little-endian u32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQuantBlock / 2];
};
// x = d * q + m, bits as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQuantBlock / 2];
};
// 8 sub-blocks of 32: x = (d * sc[j]) * q - dmin * m[j], with 6-bit sc/m packed in `scales`;
// sub-blocks 2c and 2c+1 are the low and high nibbles of qs[32c .. 32c+31].
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQuantSuperBlock / 2];
};
// As Q4_K with a fifth bit: bit 4 of element l of sub-block j is bit j of qh[l].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQuantSuperBlock / 8];
  uint8_t qs[kQuantSuperBlock / 2];
};
// 16 sub-blocks of 16: x = (d * scales[e / 16]) * (q - 32), q 6 bits: low 4 in ql, high 2 in qh.
struct BlockQ6_K {
  uint8_t ql[kQuantSuperBlock / 2];
  uint8_t qh[kQuantSuperBlock / 4];
  int8_t scales[kQuantSuperBlock / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Where the parts of a Q8Act / Q8KAct tensor of `num_elems` elements (rows of K, each a whole
// number of blocks) lie, as byte offsets from its start: codes (num_elems) i8 at 0, then
// scales (num_elems / block) f32 (x ~ scale * code per block), code sums of each 32 elements
// (num_elems / 32) i32, and for Q8Act the scaled sums fp16(d * sum) of each block (f32), the
// term Q4_1 / Q5_1 weights multiply by their min. Codes start 16-byte aligned with the tensor.
struct ActivationLayout {
  int block = kQuantBlock;
  int64_t scales_offset = 0;
  int64_t sums_offset = 0;
  int64_t block_sums_offset = 0;  // Q8Act only
  int64_t total_bytes = 0;
};
ActivationLayout activation_layout(DType activation_dtype, int64_t num_elems);
// Dequantises a whole Q8Act / Q8KAct tensor of `num_elems` elements: out[i] = scale * code.
void dequantize_activations(DType activation_dtype, const void* data, float* out, int64_t num_elems);

// Dequantises `num_elems` (a whole number of blocks) from `blocks` into `out`.
void dequantize_row(DType dtype, const void* blocks, float* out, int64_t num_elems);
// Quantises `num_elems` floats into blocks (round-to-nearest reference quantizers).
void quantize_row(DType dtype, const float* values, void* blocks, int64_t num_elems);

// One block each; `blocks` may be unaligned (they are copied before use).
namespace quant {
void dequantize_q8_0(const void* block, float* out);
void dequantize_q4_0(const void* block, float* out);
void dequantize_q4_1(const void* block, float* out);
void dequantize_q5_0(const void* block, float* out);
void dequantize_q5_1(const void* block, float* out);
void dequantize_q4_k(const void* block, float* out);
void dequantize_q5_k(const void* block, float* out);
void dequantize_q6_k(const void* block, float* out);
void quantize_q8_0(const float* values, void* block);
void quantize_q4_0(const float* values, void* block);
void quantize_q4_1(const float* values, void* block);
void quantize_q5_0(const float* values, void* block);
void quantize_q5_1(const float* values, void* block);
void quantize_q4_k(const float* values, void* block);
void quantize_q5_k(const float* values, void* block);
void quantize_q6_k(const float* values, void* block);
}  // namespace quant

}  // namespace anvil
