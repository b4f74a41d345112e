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

// rope_kv_cache_write (anvil/ops/paged_attention.h): qkv (rows, q_heads + 2 kv_heads,
// head_dim); the q and k heads rotate in place, k and v go to the caches (num_blocks,
// block_size, kv_heads, head_dim) at slots. Slots must be valid (checked by the caller).
// One kernel over 16-byte vectors of qkv; false (nothing launched) when qkv is not aligned
// or a head, or its rotated part, is not a whole number of vectors.
struct RopeKvWriteArgs {
  FloatBuffer qkv;
  FloatBuffer key_cache;
  FloatBuffer value_cache;
  const int32_t* positions;
  const int32_t* slots;
  int64_t rows, q_heads, kv_heads, head_dim;
};
bool launch_rope_kv_cache_write(const RopeKvWriteArgs& args, const RopeParams& params, cudaStream_t stream);

}  // namespace anvil::cuda
