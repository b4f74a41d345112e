#pragma once
// Device-side f32 access to FloatBuffer / ConstFloatBuffer elements. The dtype switch is
// uniform across a launch, so every warp takes the same branch; the kernels using it are
// memory-bound and the extra compare costs little next to the load. Values are computed in
// f32 and rounded once, to nearest-even, on store.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/float_buffer.h"

namespace anvil::cuda {

__device__ __forceinline__ float load_float(ConstFloatBuffer buffer, int64_t index) {
  switch (buffer.dtype) {
    case DType::BF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(buffer.data)[index]);
    case DType::F16:
      return __half2float(static_cast<const __half*>(buffer.data)[index]);
    default:
      return static_cast<const float*>(buffer.data)[index];
  }
}

__device__ __forceinline__ float load_float(FloatBuffer buffer, int64_t index) {
  return load_float(ConstFloatBuffer{buffer.data, buffer.dtype}, index);
}

__device__ __forceinline__ void store_float(FloatBuffer buffer, int64_t index, float value) {
  switch (buffer.dtype) {
    case DType::BF16:
      static_cast<__nv_bfloat16*>(buffer.data)[index] = __float2bfloat16_rn(value);
      return;
    case DType::F16:
      static_cast<__half*>(buffer.data)[index] = __float2half_rn(value);
      return;
    default:
      static_cast<float*>(buffer.data)[index] = value;
      return;
  }
}

// The element at `offset` elements past the start, as a buffer of the same dtype.
__device__ __forceinline__ ConstFloatBuffer offset_buffer(ConstFloatBuffer buffer, int64_t offset) {
  const int bytes = buffer.dtype == DType::F32 ? 4 : 2;
  return {static_cast<const char*>(buffer.data) + offset * bytes, buffer.dtype};
}

__device__ __forceinline__ FloatBuffer offset_buffer(FloatBuffer buffer, int64_t offset) {
  const int bytes = buffer.dtype == DType::F32 ? 4 : 2;
  return {static_cast<char*>(buffer.data) + offset * bytes, buffer.dtype};
}

}  // namespace anvil::cuda
