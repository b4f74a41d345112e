#pragma once
// 16-byte vector access for the fast paths of the pointwise and row kernels: when every
// operand of an op shares one storage dtype and is 16-byte aligned, a thread moves 4 f32 or
// 8 bf16/f16 values per load instruction instead of one (scalar 2-byte loads leave a third
// of the memory bandwidth unused). Values are widened to f32 on load and rounded once,
// to nearest-even, on store, exactly like float_io.cuh.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "anvil/core/error.h"
#include "cuda/float_buffer.h"

namespace anvil::cuda {

// Elements of T in one 16-byte vector.
template <typename T>
inline constexpr int kVecSize = 16 / static_cast<int>(sizeof(T));

template <typename T>
__device__ __forceinline__ float widen(T value) {
  if constexpr (std::is_same_v<T, float>) {
    return value;
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat162float(value);
  } else {
    return __half2float(value);
  }
}

template <typename T>
__device__ __forceinline__ T narrow(float value) {
  if constexpr (std::is_same_v<T, float>) {
    return value;
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(value);
  } else {
    return __float2half_rn(value);
  }
}

// The DType of storage type T.
template <typename T>
__host__ __device__ constexpr DType float_dtype() {
  if constexpr (std::is_same_v<T, float>) {
    return DType::F32;
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return DType::BF16;
  } else {
    return DType::F16;
  }
}

// values[0 .. kVecSize<T>) = base[vec * kVecSize<T> + k]; base must be 16-byte aligned.
template <typename T>
__device__ __forceinline__ void load_vec(const T* base, int64_t vec, float* values) {
  const uint4 raw = reinterpret_cast<const uint4*>(base)[vec];
  const T* elements = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int k = 0; k < kVecSize<T>; ++k) values[k] = widen(elements[k]);
}

template <typename T>
__device__ __forceinline__ void store_vec(T* base, int64_t vec, const float* values) {
  uint4 raw;
  T* elements = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int k = 0; k < kVecSize<T>; ++k) elements[k] = narrow<T>(values[k]);
  reinterpret_cast<uint4*>(base)[vec] = raw;
}

// Host side: whether every buffer has `dtype` and a 16-byte aligned address (null = absent,
// ignored).
inline bool vector_ready(DType dtype, std::initializer_list<ConstFloatBuffer> buffers) {
  for (const ConstFloatBuffer& buffer : buffers) {
    if (buffer.data == nullptr) continue;
    if (buffer.dtype != dtype || reinterpret_cast<uintptr_t>(buffer.data) % 16 != 0) return false;
  }
  return true;
}

inline ConstFloatBuffer as_const(FloatBuffer buffer) { return {buffer.data, buffer.dtype}; }

// Calls fn(T{}) with T the storage type of a float dtype (f32, bf16, f16).
template <typename Fn>
void dispatch_storage(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32:
      return fn(float{});
    case DType::BF16:
      return fn(__nv_bfloat16{});
    case DType::F16:
      return fn(__half{});
    default:
      throw make_error("cuda: dtype ", dtype_name(dtype), " is not a float storage type");
  }
}

}  // namespace anvil::cuda
