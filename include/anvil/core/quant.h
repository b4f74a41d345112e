#pragma once
// GGUF block-quantized formats (ggml's layouts): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (32-element
// blocks) and the K-quants Q4_K, Q5_K, Q6_K (256-element super-blocks).
#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil {

// Dequantises `num_elems` (a whole number of blocks) from `blocks` into `out`.
void dequantize_row(DType dtype, const void* blocks, float* out, int64_t num_elems);
// Quantises `num_elems` floats into blocks (round-to-nearest reference quantizers).
void quantize_row(DType dtype, const float* values, void* blocks, int64_t num_elems);

}  // namespace anvil
