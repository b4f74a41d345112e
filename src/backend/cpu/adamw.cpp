// AdamW on the CPU: one elementwise pass over param, m, v in f32 (grad f32 or bf16).
#include <algorithm>
#include <array>
#include <cmath>

#include "adamw_scalars.h"
#include "anvil/core/convert.h"
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

namespace {

// The update of `count` elements, in torch.optim.AdamW's order: decay param, update the
// moments, then the bias-corrected step.
void adamw_block(float* param, float* m, float* v, const float* grad, int64_t count, const AdamWScalars& s) {
  for (int64_t i = 0; i < count; ++i) {
    const float g = grad[i] * s.grad_scale;
    const float m_new = s.beta1 * m[i] + s.one_minus_beta1 * g;
    const float v_new = s.beta2 * v[i] + s.one_minus_beta2 * g * g;
    m[i] = m_new;
    v[i] = v_new;
    param[i] = param[i] * s.decay - s.step_size * m_new / (std::sqrt(v_new) * s.inv_sqrt_bc2 + s.eps);
  }
}

}  // namespace

void CpuBackend::adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params) {
  const AdamWScalars scalars = adamw_scalars(params);
  const int64_t numel = param.numel();
  float* param_data = param.data<float>();
  float* m_data = m.data<float>();
  float* v_data = v.data<float>();
  constexpr int64_t kBlock = 1024;  // bf16 gradients are widened one block at a time
  pool_.parallel_for(numel, 4 * kBlock, [&](int64_t begin, int64_t end) {
    std::array<float, kBlock> grad_scratch{};
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t count = std::min(kBlock, end - start);
      const float* g = nullptr;
      if (grad.dtype() == DType::F32) {
        g = grad.data<const float>() + start;
      } else {
        convert_host(grad.dtype(), static_cast<const char*>(grad.raw_data()) + dtype_bytes_for(grad.dtype(), start),
                     DType::F32, grad_scratch.data(), count);
        g = grad_scratch.data();
      }
      adamw_block(param_data + start, m_data + start, v_data + start, g, count, scalars);
    }
  });
}

}  // namespace anvil::cpu
