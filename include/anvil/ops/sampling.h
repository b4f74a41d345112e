#pragma once
#include "anvil/context.h"

namespace anvil {
// Edge cases, the same on every backend: NaN ranks below every number (filters drop it,
// sampling never draws it); +inf logits share all the probability; a row with no finite
// or +inf candidate samples -1; top-p breaks equal logits by the lower index.

// ids (N) i32 = argmax over each row of logits (N, V) f32; ties pick the lowest index.
void argmax(Ctx& ctx, Tensor& ids, const Tensor& logits);
// Keep the k largest logits of each row (ties at the k-th value kept), others -> -inf; k <= 0 keeps all.
void top_k_filter(Ctx& ctx, Tensor& logits, int64_t k);
// Keep the smallest set of largest-probability tokens whose probability sums to >= top_p
// (at least one); top_p >= 1 keeps all.
void top_p_filter(Ctx& ctx, Tensor& logits, float top_p);
// Keep tokens whose probability is >= min_p * the row's largest probability; 0 keeps all.
void min_p_filter(Ctx& ctx, Tensor& logits, float min_p);
// out = logits / temperature (temperature > 0).
void apply_temperature(Ctx& ctx, Tensor& logits, float temperature);
// Draws one id per row from softmax(logits / temperature), reproducibly: row r uses
// Philox(seed, stream r) at counter `offset`. -inf logits are never drawn.
void sample_multinomial(Ctx& ctx, Tensor& ids, const Tensor& logits, float temperature, uint64_t seed, uint64_t offset);
}  // namespace anvil
