#pragma once
// The per-step scalars of an AdamW update, computed once on the host in float64 from the
// hyper-parameters: the CPU and CUDA backends share them, so their per-element f32
// arithmetic starts from the same bits.
#include "anvil/backend/op_params.h"

namespace anvil {

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

AdamWScalars adamw_scalars(const AdamWParams& params);

}  // namespace anvil
