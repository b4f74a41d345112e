// AdamW: a grid-stride elementwise update. The per-step scalars are computed on the host in
// f64 exactly as the CPU backend does (src/backend/cpu/adamw.cpp), and the per-element f32
// arithmetic follows the same order, torch.optim.AdamW's: decay param, update the moments,
// then the bias-corrected step.
#include <algorithm>
#include <cmath>

#include "cuda/adamw_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"

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

// param, m, v, grad (count); grid-stride over elements.
__global__ void adamw_kernel(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, AdamWScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const float g = load_float(grad, i) * s.grad_scale;
    const float m_new = s.beta1 * m[i] + s.one_minus_beta1 * g;
    const float v_new = s.beta2 * v[i] + s.one_minus_beta2 * g * g;
    m[i] = m_new;
    v[i] = v_new;
    param[i] = param[i] * s.decay - s.step_size * m_new / (sqrtf(v_new) * s.inv_sqrt_bc2 + s.eps);
  }
}

}  // namespace

void launch_adamw(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, const AdamWParams& params,
                  cudaStream_t stream) {
  if (count == 0) return;
  const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (count + kThreads - 1) / kThreads));
  adamw_kernel<<<blocks, kThreads, 0, stream>>>(param, m, v, grad, count, adamw_scalars(params));
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
