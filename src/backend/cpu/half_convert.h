#pragma once
// Widening f16 / bf16 rows to f32 on the CPU with the best instructions the machine has
// (F16C for f16, a shift for bf16): the KV cache reads of attention over an f16 cache.
#include <cstdint>

#include "anvil/core/cpu_features.h"
#include "anvil/core/dtype.h"

namespace anvil::cpu {

// dst[i] = float(src[i]) for i < n; `dtype` is F16 or BF16 (exact conversions, so every
// path gives the same bits).
void widen_half_row(CpuIsa isa, DType dtype, const void* src, float* dst, int64_t n);

// The AVX2 + F16C version (half_convert_avx2.cpp).
void widen_half_row_avx2(DType dtype, const void* src, float* dst, int64_t n);

}  // namespace anvil::cpu
