// PagedKvCache: per-layer K and V tensors of (num_blocks, block_size, Hkv, D).
#include "anvil/model/kv_cache.h"

#include "anvil/core/error.h"

namespace anvil::model {

PagedKvCache::PagedKvCache(Ctx& ctx, const KvCacheShape& shape, Device device) : shape_(shape) {
  ANVIL_CHECK(shape.num_layers > 0 && shape.num_blocks > 0 && shape.block_size > 0 && shape.num_kv_heads > 0 &&
                  shape.head_dim > 0,
              "kv cache: every size must be > 0, got layers ", shape.num_layers, ", blocks ", shape.num_blocks,
              ", block_size ", shape.block_size, ", kv heads ", shape.num_kv_heads, ", head_dim ", shape.head_dim);
  ANVIL_CHECK(shape.dtype == DType::F32 || shape.dtype == DType::BF16 || shape.dtype == DType::F16,
              "kv cache: dtype must be f32, bf16 or f16, got ", dtype_name(shape.dtype));
  const Shape tensor_shape{shape.num_blocks, shape.block_size, shape.num_kv_heads, shape.head_dim};
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    keys_.push_back(ctx.empty(tensor_shape, shape.dtype, device));
    values_.push_back(ctx.empty(tensor_shape, shape.dtype, device));
  }
}

int64_t PagedKvCache::bytes() const {
  int64_t total = 0;
  for (size_t layer = 0; layer < keys_.size(); ++layer) total += keys_[layer].nbytes() + values_[layer].nbytes();
  return total;
}

}  // namespace anvil::model
