#pragma once
// Elementwise add / mul with b broadcast over a's leading dims, and scale. Any mix of f32,
// bf16 and f16 storage; computed in f32.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/float_buffer.h"

namespace anvil::cuda {

enum class BinaryOp : uint8_t { Add, Mul };

// out[i] = a[i] op b[i mod period] for i < count (period = b's element count, > 0 when
// count > 0). out may alias a or b exactly.
void launch_broadcast_binary(BinaryOp op, FloatBuffer out, ConstFloatBuffer a, ConstFloatBuffer b, int64_t count,
                             int64_t period, cudaStream_t stream);

// out[i] = a[i] * factor for i < count. out may alias a.
void launch_scale(FloatBuffer out, ConstFloatBuffer a, float factor, int64_t count, cudaStream_t stream);

}  // namespace anvil::cuda
