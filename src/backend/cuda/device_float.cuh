#pragma once
// Device-side reads and writes of f32 / bf16 / f16 storage as f32 (compute is always f32;
// a store rounds once, to nearest-even), and the dispatch from a DType to the storage type.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "anvil/core/dtype.h"
#include "anvil/core/error.h"

namespace anvil::cuda {

__device__ __forceinline__ float load_float(const float* p) { return *p; }
__device__ __forceinline__ float load_float(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load_float(const __half* p) { return __half2float(*p); }

__device__ __forceinline__ void store_float(float* p, float value) { *p = value; }
__device__ __forceinline__ void store_float(__nv_bfloat16* p, float value) { *p = __float2bfloat16_rn(value); }
__device__ __forceinline__ void store_float(__half* p, float value) { *p = __float2half_rn(value); }

// Calls fn(T{}) with T the storage type of `dtype` (f32, bf16 or f16); throws otherwise.
template <typename Fn>
void dispatch_float_dtype(DType dtype, const char* what, Fn&& fn) {
  switch (dtype) {
    case DType::F32:
      fn(float{});
      return;
    case DType::BF16:
      fn(__nv_bfloat16{});
      return;
    case DType::F16:
      fn(__half{});
      return;
    default:
      throw make_error(what, ": dtype ", dtype_name(dtype), " is not f32, bf16 or f16");
  }
}

}  // namespace anvil::cuda
