#pragma once
// Paged KV storage: per layer, K and V tensors of (num_blocks, block_size, Hkv, D).
// The model writes the K/V of a token at position p into block block_table[p / block_size],
// slot p % block_size. Which blocks belong to whom is decided above (infer/'s block
// pool); the cache itself is only memory.
#include <cstdint>
#include <vector>

#include "anvil/context.h"

namespace anvil::model {

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  DType dtype = DType::F32;
};

class PagedKvCache {
 public:
  PagedKvCache(Ctx& ctx, const KvCacheShape& shape, Device device);

  [[nodiscard]] const KvCacheShape& shape() const { return shape_; }
  [[nodiscard]] Device device() const { return keys_.front().device(); }
  [[nodiscard]] Tensor& keys(int64_t layer) { return keys_.at(static_cast<size_t>(layer)); }
  [[nodiscard]] Tensor& values(int64_t layer) { return values_.at(static_cast<size_t>(layer)); }
  [[nodiscard]] int64_t bytes() const;

 private:
  KvCacheShape shape_;
  std::vector<Tensor> keys_;    // per layer (num_blocks, block_size, Hkv, D)
  std::vector<Tensor> values_;  // per layer (num_blocks, block_size, Hkv, D)
};

}  // namespace anvil::model
