// Elementwise dtype casts between f32, bf16 and f16 on the device: the first CUDA kernel,
// used by device->device copies that change dtype.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "anvil/core/error.h"
#include "cuda/cast_kernels.h"
#include "cuda/cuda_check.h"

namespace anvil::cuda {
namespace {

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 65535;

__device__ __forceinline__ float to_float(float value) { return value; }
__device__ __forceinline__ float to_float(__nv_bfloat16 value) { return __bfloat162float(value); }
__device__ __forceinline__ float to_float(__half value) { return __half2float(value); }

template <typename Dst>
__device__ __forceinline__ Dst from_float(float value);
template <>
__device__ __forceinline__ float from_float<float>(float value) {
  return value;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float value) {
  return __float2bfloat16_rn(value);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float value) {
  return __float2half_rn(value);
}

// Grid-stride loop: any num_elems with a bounded grid. bf16 and f16 both convert exactly
// to f32, so going through f32 rounds once, to nearest-even, like the host converter.
template <typename Src, typename Dst>
__global__ void cast_kernel(const Src* __restrict__ src, Dst* __restrict__ dst, int64_t num_elems) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < num_elems; i += stride) {
    dst[i] = from_float<Dst>(to_float(src[i]));
  }
}

template <typename Src, typename Dst>
void launch_typed(const void* src, void* dst, int64_t num_elems, cudaStream_t stream) {
  const int64_t blocks = std::min(kMaxBlocks, (num_elems + kThreadsPerBlock - 1) / kThreadsPerBlock);
  cast_kernel<Src, Dst><<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, stream>>>(
      static_cast<const Src*>(src), static_cast<Dst*>(dst), num_elems);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename Src>
void launch_from(const void* src, DType dst_dtype, void* dst, int64_t num_elems, cudaStream_t stream) {
  switch (dst_dtype) {
    case DType::F32:
      return launch_typed<Src, float>(src, dst, num_elems, stream);
    case DType::BF16:
      return launch_typed<Src, __nv_bfloat16>(src, dst, num_elems, stream);
    case DType::F16:
      return launch_typed<Src, __half>(src, dst, num_elems, stream);
    default:
      break;
  }
}

bool is_cast_float(DType dtype) { return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16; }

}  // namespace

bool cast_supported(DType src_dtype, DType dst_dtype) { return is_cast_float(src_dtype) && is_cast_float(dst_dtype); }

void launch_cast(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t num_elems, cudaStream_t stream) {
  ANVIL_CHECK(cast_supported(src_dtype, dst_dtype), "cuda cast: ", dtype_name(src_dtype), " -> ", dtype_name(dst_dtype),
              " has no device kernel (f32, bf16 and f16 only)");
  if (num_elems == 0) return;
  switch (src_dtype) {
    case DType::F32:
      return launch_from<float>(src, dst_dtype, dst, num_elems, stream);
    case DType::BF16:
      return launch_from<__nv_bfloat16>(src, dst_dtype, dst, num_elems, stream);
    case DType::F16:
      return launch_from<__half>(src, dst_dtype, dst, num_elems, stream);
    default:
      break;
  }
}

}  // namespace anvil::cuda
