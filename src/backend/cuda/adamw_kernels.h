#pragma once
// One AdamW step in place on param, m, v (f32) from grad (f32 or bf16).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "anvil/backend/op_params.h"
#include "cuda/float_buffer.h"

namespace anvil::cuda {

void launch_adamw(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, const AdamWParams& params,
                  cudaStream_t stream);

}  // namespace anvil::cuda
