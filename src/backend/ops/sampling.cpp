// Sampling primitives: argument checks, then dispatch to the logits' backend.
//
// Behaviour shared by every backend:
//  - NaN logits rank below every number (-inf included): argmax never picks one unless the
//    whole row is NaN (then it returns 0), filters that drop anything drop them, and they
//    are never sampled.
//  - Filters write -inf over dropped logits in place; kept logits are left untouched.
//  - top_k_filter: k <= 0 disables the filter, k >= V keeps everything.
//  - top_p_filter: top_p >= 1 keeps everything; top_p = 0 keeps only the most likely token.
//    Tokens are ranked by logit (descending, equal logits by lower index) and the shortest
//    prefix whose probability reaches top_p is kept.
//  - min_p_filter: min_p = 0 keeps everything.
//  - sample_multinomial: a row whose logits are all -inf or NaN has no candidate and yields -1.
//    +inf logits share all the probability equally.
#include "anvil/ops/sampling.h"

#include <cmath>
#include <limits>

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// logits must be (N, V) f32 with V >= 1; returns N.
int64_t check_logits(const char* op, const Tensor& logits) {
  oc::require_rank(op, {"logits", &logits}, 2);
  oc::require_dtype(op, {"logits", &logits}, {DType::F32});
  ANVIL_CHECK(logits.size(1) >= 1, "op ", op, ": logits ", shape_string(logits.shape()), " has an empty vocabulary");
  ANVIL_CHECK(logits.size(1) <= std::numeric_limits<int32_t>::max(), "op ", op, ": vocabulary of ", logits.size(1),
              " does not fit the i32 ids");
  return logits.size(0);
}

// ids must be (N) i32 on the logits' device; returns that device.
Device check_ids(const char* op, const Tensor& ids, const Tensor& logits) {
  const int64_t rows = check_logits(op, logits);
  oc::require_shape(op, {"ids", &ids}, {rows});
  oc::require_dtype(op, {"ids", &ids}, {DType::I32});
  return oc::common_device(op, {{"ids", &ids}, {"logits", &logits}});
}

void check_temperature(const char* op, float temperature) {
  ANVIL_CHECK(std::isfinite(temperature) && temperature > 0.0F, "op ", op,
              ": temperature must be finite and > 0 (use argmax for greedy decoding), got ", temperature);
}

}  // namespace

void argmax(Ctx& ctx, Tensor& ids, const Tensor& logits) {
  constexpr const char* kOp = "argmax";
  const Device device = check_ids(kOp, ids, logits);
  ctx.backend(device).argmax(ids, logits);
}

void top_k_filter(Ctx& ctx, Tensor& logits, int64_t k) {
  constexpr const char* kOp = "top_k_filter";
  check_logits(kOp, logits);
  if (k <= 0 || k >= logits.size(1)) return;  // disabled, or keeps every token
  ctx.backend(logits.device()).top_k_filter(logits, k);
}

void top_p_filter(Ctx& ctx, Tensor& logits, float top_p) {
  constexpr const char* kOp = "top_p_filter";
  check_logits(kOp, logits);
  ANVIL_CHECK(top_p >= 0.0F, "op ", kOp, ": top_p must be >= 0, got ", top_p);  // false for NaN too
  if (top_p >= 1.0F) return;
  ctx.backend(logits.device()).top_p_filter(logits, top_p);
}

void min_p_filter(Ctx& ctx, Tensor& logits, float min_p) {
  constexpr const char* kOp = "min_p_filter";
  check_logits(kOp, logits);
  ANVIL_CHECK(min_p >= 0.0F && min_p <= 1.0F, "op ", kOp, ": min_p must be in [0, 1], got ", min_p);
  if (min_p == 0.0F) return;
  ctx.backend(logits.device()).min_p_filter(logits, min_p);
}

// Host tensors are divided in place here (x / T, exactly rounded); other devices go through
// their backend's scale op with factor 1 / T.
void apply_temperature(Ctx& ctx, Tensor& logits, float temperature) {
  constexpr const char* kOp = "apply_temperature";
  oc::require(kOp, {"logits", &logits});
  oc::require_dtype(kOp, {"logits", &logits}, {DType::F32});
  check_temperature(kOp, temperature);
  if (!logits.device().is_cpu()) {
    ctx.backend(logits.device()).scale(logits, logits, 1.0F / temperature);
    return;
  }
  float* values = logits.data<float>();
  ctx.pool().parallel_for(logits.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) values[i] /= temperature;
  });
}

void sample_multinomial(Ctx& ctx, Tensor& ids, const Tensor& logits, float temperature, uint64_t seed,
                        uint64_t offset) {
  constexpr const char* kOp = "sample_multinomial";
  const Device device = check_ids(kOp, ids, logits);
  check_temperature(kOp, temperature);
  ctx.backend(device).sample_multinomial(ids, logits, temperature, seed, offset);
}

}  // namespace anvil
