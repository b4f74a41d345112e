#pragma once
// Attention over a paged KV cache: the inference path for prefill, chunked prefill and
// decode alike. Caches are (num_blocks, block_size, Hkv, D); a flat slot is
// block * block_size + offset.
#include "anvil/context.h"

namespace anvil {

// PagedAttentionParams (scale, sliding_window) lives in anvil/backend/op_params.h.

// Writes k, v (N, Hkv, D) into key_cache/value_cache at slots (N) i32; slots must be
// distinct and in [0, num_blocks * block_size). Dtypes may differ (converted on write).
// `slots_checked`: the caller has verified that already (the model layer does, on the host),
// so the backend may skip its own check (a host wait per call on a GPU).
void kv_cache_write(Ctx& ctx, Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v,
                    const Tensor& slots, bool slots_checked = false);

// Decode's rotary embedding and cache write in one call: qkv (N, Hq + 2 Hkv, D) holds each
// token's q, k and v heads (Hkv = the caches' kv heads, Hq a positive multiple of it); q and k
// rotate in place by `params` at positions (N) i32 (as rope does), then k and v are written
// to slots (N) i32 as kv_cache_write writes them (`slots_checked` likewise).
void rope_kv_cache_write(Ctx& ctx, Tensor& qkv, Tensor& key_cache, Tensor& value_cache, const Tensor& positions,
                         const Tensor& slots, const RopeParams& params, bool slots_checked = false);

// out (N, Hq, D) for q (N, Hq, D) (out in q's dtype, or for f32 q quantized_matmul's Q8Act /
// Q8KAct activations of the o projection, quantised as quantize_activations does): token i of sequence s =
// token_sequences[i] at position p = positions[i] attends to that sequence's cached positions 0..p (causal; its own K/V
// must already be written). block_tables (S, max_blocks) i32 maps position / block_size
// to a block id. Hq % Hkv == 0 (grouped-query heads).
void paged_attention(Ctx& ctx, Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                     const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                     const PagedAttentionParams& params);

}  // namespace anvil
