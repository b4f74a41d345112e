#pragma once
// quantized_matmul on the device: out (M, N) f32 = x (M, K) f32 @ weight (N, K)^T, weight
// block-quantized (Q8_0..Q6_K, dequantised on the fly) or f32/f16/bf16.
//
// Numerics follow the CPU (backend.h, cpu/quantized_matmul.cpp): x is quantised per block
// of 32 (legacy weights) or 256 (K-quants) to d = amax / 127, code = round-half-even(clamp(
// x * (127 / amax))), bit-identical to the CPU's quantiser; blocks of 32 keep d rounded to
// f16 and s = fp16(d * sum(codes)) for the min of Q4_1 / Q5_1 weights (ggml's Q8_0 / Q8_1
// activations); each weight block's integer dot with the codes is exact, and its f32 term
// ((d_w * d_x) * dot, plus m_w * s or the offset term) is the CPU's too. Only the order in which the block terms of one
// output are summed differs (lanes of a warp, then a tree), so results match the CPU to f32 rounding, not bitwise.
// Plain weights are dotted with the unquantised x in f32 (the CPU uses double).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil::cuda {

struct QuantizedMatmulArgs {
  DType weight_dtype;
  const void* weight;  // (N, K) rows of blocks
  const float* x;      // (M, K)
  float* out;          // (M, N)
  int64_t m, n, k;
};

// Where the quantised activations live in one scratch buffer: codes (M, K) i8, scales
// (M, K / block) f32, and the code sums of each 32 elements (M, K / 32) i32 (the CPU's
// per-group sums, regrouped: the same integers).
struct QuantizedActivationLayout {
  int block = 32;  // elements per activation scale: 32, or 256 for K-quant weights
  size_t scales_offset = 0;
  size_t sums_offset = 0;
  size_t block_sums_offset = 0;  // (M, K / 32) f32 s of each block of 32, legacy weights only
  size_t total_bytes = 0;
};

// The quantised activations themselves (pointers into the scratch buffer).
struct QuantizedActivations {
  int block = 32;
  int8_t* codes = nullptr;      // (M, K)
  float* scales = nullptr;      // (M, K / block)
  int32_t* sums = nullptr;      // (M, K / 32)
  float* block_sums = nullptr;  // (M, K / 32): fp16(d * sum(codes)) per block of 32 (legacy only)
};

// Whether the device kernels take `weight_dtype` (the quantized types and f32/f16/bf16).
bool quantized_matmul_supported(DType weight_dtype);

// The scratch layout for quantising x (M, K) for a weight of `weight_dtype`.
QuantizedActivationLayout activation_layout(DType weight_dtype, int64_t m, int64_t k);

// Quantises x into `scratch` (layout.total_bytes, 256-byte aligned), then the matmul:
// dp4a kernels for few rows (decode), tensor-core tiles (quantized_matmul_mma.h) for many.
void launch_quantized_matmul(const QuantizedMatmulArgs& args, const QuantizedActivationLayout& layout, void* scratch,
                             cudaStream_t stream);

// The activations of a Q8Act / Q8KAct tensor of (M, K) at `data` (16-byte aligned; layout:
// anvil/core/quant.h's activation_layout).
QuantizedActivations activations_at(void* data, DType activation_dtype, int64_t m, int64_t k);

// x (M, K) f32 quantised into `acts` (one kernel, a programmatic dependent of the one ahead).
void launch_quantize_activations(const float* x, int64_t m, int64_t k, const QuantizedActivations& acts,
                                 cudaStream_t stream);

// The matmul of activations quantised already (args.x is not read).
void launch_quantized_matmul_codes(const QuantizedMatmulArgs& args, const QuantizedActivations& acts,
                                   cudaStream_t stream);

// f32/f16/bf16 weights: out = x @ weight^T with f32 accumulation, x not quantised.
void launch_plain_weight_matmul(const QuantizedMatmulArgs& args, cudaStream_t stream);

}  // namespace anvil::cuda
