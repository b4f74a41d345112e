// Attention on the device: picks the tensor-core or the generic implementation and runs
// the backward's delta pre-pass (delta = rowsum(dout * out)).
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <cmath>

#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/attention_kernels.h"
#include "cuda/cuda_check.h"

namespace anvil::cuda {
namespace {

using attention::Args;

constexpr int kDeltaWarps = 8;

// delta[b, h, t] = sum_c dout[b, t, h, c] * out[b, t, h, c] in f32. Grid
// ceil(B * T * Hq / 8), 8 warps; warp w takes row (b, t, h) number blockIdx.x * 8 + w.
template <typename T>
__global__ void __launch_bounds__(kDeltaWarps * 32)
    delta_kernel(const T* dout, const T* out, float* delta, int64_t rows, int seq, int heads, int d) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kDeltaWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float sum = 0.0F;
  for (int c = lane; c < d; c += 32) {
    sum = fmaf(attention::to_float(dout[row * d + c]), attention::to_float(out[row * d + c]), sum);
  }
  sum = attention::warp_sum(sum);
  if (lane == 0) {
    const int64_t h = row % heads;
    const int64_t t = (row / heads) % seq;
    const int64_t b = row / (static_cast<int64_t>(heads) * seq);
    delta[(b * heads + h) * seq + t] = sum;
  }
}

// Same with 16-byte loads, for rows of kLanes 16-byte chunks (kLanes a power of two <= 32):
// kLanes consecutive lanes take one row, then sum over their segment of the warp.
template <typename T, int kLanes>
__global__ void __launch_bounds__(kDeltaWarps * 32)
    delta_vec_kernel(const T* dout, const T* out, float* delta, int64_t rows, int seq, int heads) {
  constexpr int kElems = 16 / static_cast<int>(sizeof(T));
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = thread / kLanes;
  const int part = static_cast<int>(thread % kLanes);
  float sum = 0.0F;
  if (row < rows) {  // no early return: the whole warp takes part in the shuffles below
    const int64_t offset = row * (kLanes * kElems) + part * kElems;
    const uint4 a = *reinterpret_cast<const uint4*>(dout + offset);
    const uint4 b = *reinterpret_cast<const uint4*>(out + offset);
    const T* a_values = reinterpret_cast<const T*>(&a);
    const T* b_values = reinterpret_cast<const T*>(&b);
#pragma unroll
    for (int i = 0; i < kElems; ++i)
      sum = fmaf(attention::to_float(a_values[i]), attention::to_float(b_values[i]), sum);
  }
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffU, sum, offset);
  if (row < rows && part == 0) {
    const int64_t h = row % heads;
    const int64_t t = (row / heads) % seq;
    const int64_t b = row / (static_cast<int64_t>(heads) * seq);
    delta[(b * heads + h) * seq + t] = sum;
  }
}

template <typename T, int kLanes>
void launch_delta_vec(const Args& args, const void* out, int64_t rows, cudaStream_t stream) {
  constexpr int kThreads = kDeltaWarps * 32;
  const auto blocks = static_cast<unsigned>((rows * kLanes + kThreads - 1) / kThreads);
  delta_vec_kernel<T, kLanes><<<blocks, kThreads, 0, stream>>>(
      static_cast<const T*>(args.dout), static_cast<const T*>(out), args.delta, rows, args.seq, args.q_heads);
  ANVIL_CUDA_CHECK_LAUNCH();
}

bool aligned16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

template <typename T>
void launch_delta(const Args& args, const void* out, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(args.batch) * args.seq * args.q_heads;
  const int64_t row_bytes = static_cast<int64_t>(args.head_dim) * static_cast<int64_t>(sizeof(T));
  if (row_bytes % 16 == 0 && aligned16(args.dout) && aligned16(out)) {
    switch (row_bytes / 16) {
      case 4:
        return launch_delta_vec<T, 4>(args, out, rows, stream);
      case 8:
        return launch_delta_vec<T, 8>(args, out, rows, stream);
      case 16:
        return launch_delta_vec<T, 16>(args, out, rows, stream);
      case 32:
        return launch_delta_vec<T, 32>(args, out, rows, stream);
      default:
        break;
    }
  }
  const auto blocks = static_cast<unsigned>((rows + kDeltaWarps - 1) / kDeltaWarps);
  delta_kernel<T><<<blocks, kDeltaWarps * 32, 0, stream>>>(static_cast<const T*>(args.dout), static_cast<const T*>(out),
                                                           args.delta, rows, args.seq, args.q_heads, args.head_dim);
  ANVIL_CUDA_CHECK_LAUNCH();
}

Args make_args(const AttentionShape& shape) {
  ANVIL_CHECK(shape.batch * shape.q_heads <= INT_MAX && shape.seq <= INT_MAX / 2 && (shape.seq + 15) / 16 <= 65535 &&
                  shape.batch * shape.seq * shape.q_heads / 8 < UINT_MAX,
              "cuda attention: shape too large (B ", shape.batch, ", T ", shape.seq, ", Hq ", shape.q_heads, ")");
  ANVIL_CHECK(shape.head_dim <= attention::kGenericMaxHeadDim, "cuda attention: head_dim ", shape.head_dim,
              " is above the supported ", attention::kGenericMaxHeadDim);
  Args args;
  args.batch = static_cast<int>(shape.batch);
  args.seq = static_cast<int>(shape.seq);
  args.q_heads = static_cast<int>(shape.q_heads);
  args.kv_heads = static_cast<int>(shape.kv_heads);
  args.head_dim = static_cast<int>(shape.head_dim);
  args.scale = shape.scale;
  args.scale_log2 = shape.scale * attention::kLog2e;
  args.causal = shape.causal;
  return args;
}

// The tensor-core kernels take bf16/f16 with D = 64 or 128 and 16-byte aligned rows.
bool use_mma(const Args& args, DType dtype, std::initializer_list<const void*> pointers) {
  if (dtype != DType::BF16 && dtype != DType::F16) return false;
  if (args.head_dim != 64 && args.head_dim != 128) return false;
  for (const void* pointer : pointers) {
    if (!aligned16(pointer)) return false;
  }
  return true;
}

}  // namespace

void launch_attention_forward(const AttentionShape& shape, DType dtype, const void* q, const void* k, const void* v,
                              void* out, float* lse, cudaStream_t stream) {
  if (shape.batch * shape.seq * shape.q_heads == 0) return;
  Args args = make_args(shape);
  args.q = q;
  args.k = k;
  args.v = v;
  args.out = out;
  args.lse = lse;
  if (use_mma(args, dtype, {q, k, v, out})) {
    // Auto: the warp-specialised TMA kernel, 1.02-1.38x the plain wgmma one and 1.26-1.90x
    // mma.sync on the H100 (docs/perf.md).
    switch (shape.forward_kernel) {
      case AttentionForwardKernel::MmaSync:
        return attention::mma_forward(args, dtype, /*delta_mode=*/false, stream);
      case AttentionForwardKernel::Wgmma:
        return attention::wgmma_forward(args, dtype, stream);
      default:
        return attention::wgmma_tma_forward(args, dtype, shape.forward_variant, stream);
    }
  } else {
    attention::generic_forward(args, dtype, /*delta_mode=*/false, stream);
  }
}

int64_t attention_backward_dq_accum_elements(const AttentionShape& shape, DType dtype) {
  if ((dtype != DType::BF16 && dtype != DType::F16) || (shape.head_dim != 64 && shape.head_dim != 128)) return 0;
  // The wgmma kernel's tiled layout; the mma.sync kernel's (B, T, Hq, D) fits in it.
  return attention::wgmma_dq_accum_elements(make_args(shape));
}

void launch_attention_backward(const AttentionShape& shape, DType dtype, bool exact_delta, const void* dout,
                               const void* q, const void* k, const void* v, const void* out, const float* lse, void* dq,
                               void* dk, void* dv, float* delta, float* dq_accum, cudaStream_t stream) {
  if (shape.batch * shape.seq * shape.q_heads == 0) return;
  Args args = make_args(shape);
  args.q = q;
  args.k = k;
  args.v = v;
  args.dout = dout;
  args.lse = const_cast<float*>(lse);  // read only by the backward kernels
  args.delta = delta;
  args.dq = dq;
  args.dk = dk;
  args.dv = dv;
  const bool mma = use_mma(args, dtype, {q, k, v, dout, dq, dk, dv});
  if (exact_delta && dtype != DType::F32) {
    // Recompute O in f32 and take delta from it (writes delta only).
    if (mma) {
      attention::mma_forward(args, dtype, /*delta_mode=*/true, stream);
    } else {
      attention::generic_forward(args, dtype, /*delta_mode=*/true, stream);
    }
  } else {
    switch (dtype) {
      case DType::F32:
        launch_delta<float>(args, out, stream);
        break;
      case DType::BF16:
        launch_delta<__nv_bfloat16>(args, out, stream);
        break;
      case DType::F16:
        launch_delta<__half>(args, out, stream);
        break;
      default:
        throw make_error("cuda attention: unsupported dtype ", dtype_name(dtype));
    }
  }
  if (mma && dq_accum != nullptr) {
    const int64_t elements = attention_backward_dq_accum_elements(shape, dtype);
    ANVIL_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, sizeof(float) * static_cast<size_t>(elements), stream));
    // wgmma: 1.28-1.33x the mma.sync kernel on the H100 at D = 64, 1.63-1.74x at D = 128
    // (docs/perf.md).
    if (shape.backward_kernel != AttentionBackwardKernel::MmaSync) {
      attention::wgmma_backward(args, dtype, dq_accum, stream);
      attention::wgmma_dq_accum_to_dq(args, dtype, dq_accum, stream);
    } else {
      attention::mma_backward_fused(args, dtype, dq_accum, stream);
      attention::dq_accum_to_dq(args, dtype, dq_accum, stream);
    }
  } else if (mma) {
    attention::mma_backward(args, dtype, stream);
  } else {
    attention::generic_backward(args, dtype, stream);
  }
}

}  // namespace anvil::cuda
