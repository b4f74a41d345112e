#pragma once
// AdamW steps in place on param, m, v (f32) from grad (f32 or bf16).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

#include "anvil/backend/op_params.h"
#include "cuda/float_buffer.h"

namespace anvil::cuda {

void launch_adamw(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, const AdamWParams& params,
                  cudaStream_t stream);

// The step on the runs of flat buffers (sorted, disjoint; see Backend::adamw_runs), every run
// in one launch (one per 128 runs); elements outside the runs are untouched. param_low
// (bf16, may be null) receives each updated element rounded.
void launch_adamw_runs(float* param, float* m, float* v, ConstFloatBuffer grad, void* param_low,
                       std::span<const AdamWRun> runs, const AdamWParams& params, cudaStream_t stream);

}  // namespace anvil::cuda
