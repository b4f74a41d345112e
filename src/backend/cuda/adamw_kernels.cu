// AdamW: a grid-stride elementwise update. The per-step scalars are computed on the host in
// f64 exactly as the CPU backend does (src/backend/cpu/adamw.cpp), and the per-element f32
// arithmetic follows the same order, torch.optim.AdamW's: decay param, update the moments,
// then the bias-corrected step.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cuda/adamw_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

struct AdamWScalars {
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float eps;
  float grad_scale;
  float decay;         // 1 - lr * wd
  float step_size;     // lr / (1 - beta1^t)
  float inv_sqrt_bc2;  // 1 / sqrt(1 - beta2^t)
};

AdamWScalars adamw_scalars(const AdamWParams& params) {
  const auto step = static_cast<double>(params.step);
  const double lr = params.learning_rate;
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(params.beta1), step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(params.beta2), step);
  return {params.beta1,
          static_cast<float>(1.0 - params.beta1),
          params.beta2,
          static_cast<float>(1.0 - params.beta2),
          params.eps,
          params.grad_scale,
          static_cast<float>(1.0 - lr * params.weight_decay),
          static_cast<float>(lr / bias_correction1),
          static_cast<float>(1.0 / std::sqrt(bias_correction2))};
}

// One element, updated in place.
__device__ __forceinline__ void adamw_element(float& param, float& m, float& v, float grad, const AdamWScalars& s) {
  const float g = grad * s.grad_scale;
  const float m_new = s.beta1 * m + s.one_minus_beta1 * g;
  const float v_new = s.beta2 * v + s.one_minus_beta2 * g * g;
  m = m_new;
  v = v_new;
  param = param * s.decay - s.step_size * m_new / (sqrtf(v_new) * s.inv_sqrt_bc2 + s.eps);
}

// param, m, v, grad (count); grid-stride over elements.
__global__ void adamw_kernel(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, AdamWScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    adamw_element(param[i], m[i], v[i], load_float(grad, i), s);
  }
}

// Fast path (all four 16-byte aligned): four elements per step as float4 (param, m, v) and
// four grad values (16 bytes of f32 or 8 of bf16); the count % 4 tail goes element by
// element on the first threads.
template <typename G>
__global__ void adamw_vec_kernel(float* param, float* m, float* v, const G* grad, int64_t count, AdamWScalars s) {
  const int64_t quads = count / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t q = first; q < quads; q += stride) {
    float4 p4 = reinterpret_cast<float4*>(param)[q];
    float4 m4 = reinterpret_cast<float4*>(m)[q];
    float4 v4 = reinterpret_cast<float4*>(v)[q];
    float g[4];
    if constexpr (std::is_same_v<G, float>) {
      const float4 g4 = reinterpret_cast<const float4*>(grad)[q];
      g[0] = g4.x;
      g[1] = g4.y;
      g[2] = g4.z;
      g[3] = g4.w;
    } else {
      const uint2 raw = reinterpret_cast<const uint2*>(grad)[q];
      const G* values = reinterpret_cast<const G*>(&raw);
#pragma unroll
      for (int k = 0; k < 4; ++k) g[k] = widen(values[k]);
    }
    adamw_element(p4.x, m4.x, v4.x, g[0], s);
    adamw_element(p4.y, m4.y, v4.y, g[1], s);
    adamw_element(p4.z, m4.z, v4.z, g[2], s);
    adamw_element(p4.w, m4.w, v4.w, g[3], s);
    reinterpret_cast<float4*>(param)[q] = p4;
    reinterpret_cast<float4*>(m)[q] = m4;
    reinterpret_cast<float4*>(v)[q] = v4;
  }
  const int64_t tail = quads * 4 + first;
  if (tail < count) adamw_element(param[tail], m[tail], v[tail], widen(grad[tail]), s);
}

}  // namespace

void launch_adamw(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, const AdamWParams& params,
                  cudaStream_t stream) {
  if (count == 0) return;
  const AdamWScalars scalars = adamw_scalars(params);
  if (vector_ready(DType::F32, {{param, DType::F32}, {m, DType::F32}, {v, DType::F32}}) &&
      reinterpret_cast<uintptr_t>(grad.data) % 16 == 0) {
    // Threads cover the quads and at least the tail (< 4 elements).
    const int64_t threads_needed = std::max<int64_t>(count / 4, 4);
    const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (threads_needed + kThreads - 1) / kThreads));
    if (grad.dtype == DType::F32) {
      adamw_vec_kernel<float>
          <<<blocks, kThreads, 0, stream>>>(param, m, v, static_cast<const float*>(grad.data), count, scalars);
    } else {
      adamw_vec_kernel<__nv_bfloat16>
          <<<blocks, kThreads, 0, stream>>>(param, m, v, static_cast<const __nv_bfloat16*>(grad.data), count, scalars);
    }
  } else {
    const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (count + kThreads - 1) / kThreads));
    adamw_kernel<<<blocks, kThreads, 0, stream>>>(param, m, v, grad, count, scalars);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
