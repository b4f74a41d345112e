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
RowKernel scalar_row_kernel(DType dtype);
RowKernel avx2_row_kernel(DType dtype);
RowKernel avx512_row_kernel(DType dtype, bool vnni);

}  // namespace anvil::cpu::qmm
