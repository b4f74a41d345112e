#pragma once
// Rotary position embedding of x (N, H, D) at positions (N) i32, forward (direction +1) and
// backward (direction -1: the rotation's transpose). out may alias x exactly.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "anvil/backend/op_params.h"
#include "cuda/float_buffer.h"

namespace anvil::cuda {

void launch_rope(FloatBuffer out, ConstFloatBuffer x, const int32_t* positions, int64_t rows, int64_t heads,
                 int64_t head_dim, const RopeParams& params, double direction, cudaStream_t stream);

}  // namespace anvil::cuda
