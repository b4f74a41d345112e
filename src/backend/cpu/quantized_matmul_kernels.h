#pragma once
// What the quantized_matmul kernels share: the tile of 8-bit activation rows they read and
// the row-kernel signature. Scalar kernels live in quantized_matmul.cpp, SIMD ones in
// quantized_matmul_avx2.cpp / quantized_matmul_avx512.cpp (built with those ISA flags).
#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil::cpu::qmm {

inline constexpr int kTileRows = 4;        // activation rows per weight-row load
inline constexpr int kLegacyBlock = 32;    // activation block for Q8_0..Q5_1 weights
inline constexpr int kSuperBlock = 256;    // activation block for K-quant weights
inline constexpr int kSuperSumGroup = 16;  // K-quant activations keep code sums per 16

// Up to kTileRows activation rows, each quantised as x ~ scale[block] * code.
// Legacy weights: blocks of 32, as ggml's Q8_0 / Q8_1 activations: scale = fp16(amax / 127)
// (stored rounded to f16), sums[b] = sum of the 32 codes of block b, and
// block_sums[b] = fp16((amax / 127) * sums[b]), the f32 scale times the code sum rounded to
// f16, which Q4_1 / Q5_1 weights multiply by their min (ggml's q8_1 `s`).
// K-quant weights: blocks of 256, scale = amax / 127 in f32, sums[g] = sum of the 16 codes
// of group g, no block_sums.
struct ActTile {
  int rows = 0;
  const int8_t* codes[kTileRows] = {};      // (K)
  const float* scales[kTileRows] = {};      // (K / block)
  const int16_t* sums[kTileRows] = {};      // (K / 32) or (K / 16)
  const float* block_sums[kTileRows] = {};  // (K / 32), legacy only
};

// out[r] = sum_k weight_row[k] * x_r[k] for r < tile.rows, with weight_row one row of K
// elements of the kernel's block type and x_r the tile's quantised rows.
using RowKernel = void (*)(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out);

// Quantises one activation row x (K) in blocks of `block` (32 or 256): scales (K / block)
// d = amax / 127, codes (K) round-half-even(clamp(x * (127 / amax), -127, 127)), and the
// code sums of each `sum_group` (32 or 16) elements (K / sum_group). Every version does the
// same f32 operations, so all give the same bits.
using RowQuantizer = void (*)(const float* x, int64_t k, int block, int sum_group, int8_t* codes, float* scales,
                              int16_t* sums);
void quantize_row_scalar(const float* x, int64_t k, int block, int sum_group, int8_t* codes, float* scales,
                         int16_t* sums);
void quantize_row_avx2(const float* x, int64_t k, int block, int sum_group, int8_t* codes, float* scales,
                       int16_t* sums);
void quantize_row_avx512(const float* x, int64_t k, int block, int sum_group, int8_t* codes, float* scales,
                         int16_t* sums);

// Kernels for a block-quantized dtype; nullptr when the family lacks that dtype.
// Q8_0 and Q4_1 are summed in "ggml order" (below) in every family.
RowKernel scalar_row_kernel(DType dtype);
RowKernel avx2_row_kernel(DType dtype);
RowKernel avx512_row_kernel(DType dtype, bool vnni);

// ggml order, for Q8_0 and Q4_1 (nullptr otherwise): each output is summed as ggml-cpu's
// ggml_vec_dot_q8_0_q8_0 / ggml_vec_dot_q4_1_q8_1 (x86) sum it, so that anvil's logits are
// llama.cpp's to the bit where the inputs are: 8 f32 lanes, lane j (j < 8) of block b adds
// fma(d_w * d_x, sum of the 4 code products at elements 4j..4j+3, lane), blocks in order;
// the lanes are summed ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)); Q4_1 then adds
// summs = fma(m_w, s_x, summs) accumulated over the blocks in order. Scalar, AVX2 and
// AVX-512 versions perform the same IEEE operations and give the same bits.
RowKernel avx2_ggml_order_kernel(DType dtype);
RowKernel avx512_ggml_order_kernel(DType dtype, bool vnni);

// Two weight rows against the tile (out0[r], out1[r]), each output as the row kernel gives it.
using PairKernel = void (*)(const uint8_t* weight_row0, const uint8_t* weight_row1, int64_t k, const ActTile& tile,
                            float* out0, float* out1);
PairKernel avx512_ggml_order_pair_kernel(DType dtype, bool vnni);

}  // namespace anvil::cpu::qmm
