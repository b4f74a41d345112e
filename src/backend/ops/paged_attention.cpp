#include "anvil/ops/paged_attention.h"

#include <cmath>

#include "ops/activation_codes.h"
#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// key_cache/value_cache (num_blocks, block_size, Hkv, D), one float dtype, one shape.
void check_caches(const char* op, const Tensor& key_cache, const Tensor& value_cache) {
  oc::require_rank(op, {"key_cache", &key_cache}, 4);
  oc::require_float(op, {"key_cache", &key_cache});
  oc::require_same_shape(op, {"key_cache", &key_cache}, {"value_cache", &value_cache});
  oc::require_dtype(op, {"value_cache", &value_cache}, {key_cache.dtype()});
  ANVIL_CHECK(key_cache.size(1) > 0 && key_cache.size(2) > 0 && key_cache.size(3) > 0, "op ", op, ": key_cache ",
              shape_string(key_cache.shape()), " must have positive block_size, kv heads and head_dim");
}

// A token-indexed i32 vector of length n.
void check_token_ids(const char* op, const oc::Arg& arg, int64_t n) {
  oc::require_shape(op, arg, {n});
  oc::require_dtype(op, arg, {DType::I32});
}

// `arg` (N, H, D) (rank checked) of a float dtype with the caches' head_dim, and q_heads
// (its query heads) a positive multiple of the caches' kv heads.
void check_heads(const char* op, const oc::Arg& arg, int64_t q_heads, const Tensor& key_cache) {
  oc::require_float(op, arg);
  ANVIL_CHECK(arg.tensor->size(2) == key_cache.size(3), "op ", op, ": head_dim of ", arg.name, " ",
              shape_string(arg.tensor->shape()), " must match key_cache ", shape_string(key_cache.shape()));
  ANVIL_CHECK(q_heads > 0 && q_heads % key_cache.size(2) == 0, "op ", op, ": query heads (", q_heads,
              ") must be a positive multiple of kv heads (", key_cache.size(2), ")");
}

}  // namespace

void kv_cache_write(Ctx& ctx, Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v,
                    const Tensor& slots, bool slots_checked) {
  constexpr const char* kOp = "kv_cache_write";
  check_caches(kOp, key_cache, value_cache);
  oc::require_rank(kOp, {"k", &k}, 3);
  oc::require_float(kOp, {"k", &k});
  const int64_t tokens = k.size(0);
  oc::require_shape(kOp, {"k", &k}, {tokens, key_cache.size(2), key_cache.size(3)});
  oc::require_same_shape(kOp, {"k", &k}, {"v", &v});
  oc::require_dtype(kOp, {"v", &v}, {k.dtype()});
  check_token_ids(kOp, {"slots", &slots}, tokens);
  const Device device = oc::common_device(
      kOp, {{"key_cache", &key_cache}, {"value_cache", &value_cache}, {"k", &k}, {"v", &v}, {"slots", &slots}});
  if (tokens == 0) return;
  ctx.backend(device).kv_cache_write(key_cache, value_cache, k, v, slots, slots_checked);
}

void rope_kv_cache_write(Ctx& ctx, Tensor& qkv, Tensor& key_cache, Tensor& value_cache, const Tensor& positions,
                         const Tensor& slots, const RopeParams& params, bool slots_checked) {
  constexpr const char* kOp = "rope_kv_cache_write";
  check_caches(kOp, key_cache, value_cache);
  oc::require_rank(kOp, {"qkv", &qkv}, 3);
  const int64_t tokens = qkv.size(0);
  check_heads(kOp, {"qkv", &qkv}, qkv.size(1) - 2 * key_cache.size(2), key_cache);  // after 2 x kv heads of k, v
  check_token_ids(kOp, {"positions", &positions}, tokens);
  check_token_ids(kOp, {"slots", &slots}, tokens);
  oc::require_rope_params(kOp, params, qkv.size(2));
  const Device device = oc::common_device(kOp, {{"qkv", &qkv},
                                                {"key_cache", &key_cache},
                                                {"value_cache", &value_cache},
                                                {"positions", &positions},
                                                {"slots", &slots}});
  if (tokens == 0) return;
  ctx.backend(device).rope_kv_cache_write(qkv, key_cache, value_cache, positions, slots, params, slots_checked);
}

void paged_attention(Ctx& ctx, Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                     const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                     const PagedAttentionParams& params) {
  constexpr const char* kOp = "paged_attention";
  check_caches(kOp, key_cache, value_cache);
  oc::require_rank(kOp, {"q", &q}, 3);
  const int64_t tokens = q.size(0);
  check_heads(kOp, {"q", &q}, q.size(1), key_cache);
  oc::require_same_shape(kOp, {"q", &q}, {"out", &out});
  if (is_activation_codes(out.dtype())) {  // the o projection's input: from f32 queries
    oc::require_dtype(kOp, {"q", &q}, {DType::F32});
    oc::require_activation_codes(kOp, out);
  } else {
    oc::require_dtype(kOp, {"out", &out}, {q.dtype()});
  }
  check_token_ids(kOp, {"token_sequences", &token_sequences}, tokens);
  check_token_ids(kOp, {"positions", &positions}, tokens);
  oc::require_rank(kOp, {"block_tables", &block_tables}, 2);
  oc::require_dtype(kOp, {"block_tables", &block_tables}, {DType::I32});
  ANVIL_CHECK(std::isfinite(params.scale) && params.scale >= 0.0F, "op ", kOp, ": scale ", params.scale,
              " must be finite and >= 0 (0 means 1/sqrt(head_dim))");
  ANVIL_CHECK(params.sliding_window >= 0, "op ", kOp, ": sliding_window ", params.sliding_window,
              " must be >= 0 (0 means full attention)");
  const Device device = oc::common_device(kOp, {{"out", &out},
                                                {"q", &q},
                                                {"key_cache", &key_cache},
                                                {"value_cache", &value_cache},
                                                {"token_sequences", &token_sequences},
                                                {"positions", &positions},
                                                {"block_tables", &block_tables}});
  if (tokens == 0) return;
  Backend& backend = ctx.backend(device);
  oc::produce_activations(ctx, backend, OpKind::PagedAttention, out, [&](Tensor& target) {
    backend.paged_attention(target, q, key_cache, value_cache, token_sequences, positions, block_tables, params);
  });
}

}  // namespace anvil
