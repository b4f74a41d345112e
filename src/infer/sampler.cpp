// Sampler: the sampling ops chained the way llama.cpp chains its samplers.
#include "anvil/infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "anvil/core/error.h"
#include "anvil/ops/sampling.h"

namespace anvil::infer {

void SamplerParams::validate() const {
  ANVIL_CHECK(std::isfinite(temperature) && temperature >= 0.0F, "sampler: temperature must be >= 0, got ",
              temperature);
  ANVIL_CHECK(top_p >= 0.0F, "sampler: top_p must be >= 0, got ", top_p);  // false for NaN too
  ANVIL_CHECK(min_p >= 0.0F && min_p <= 1.0F, "sampler: min_p must be in [0, 1], got ", min_p);
  ANVIL_CHECK(std::isfinite(repeat_penalty) && repeat_penalty > 0.0F, "sampler: repeat_penalty must be > 0, got ",
              repeat_penalty);
  ANVIL_CHECK(repeat_last_n >= -1, "sampler: repeat_last_n must be >= -1, got ", repeat_last_n);
}

void apply_repetition_penalty(Tensor& logits, std::span<const int32_t> recent, float penalty) {
  ANVIL_CHECK(logits.device().is_cpu() && logits.dtype() == DType::F32 && logits.is_contiguous(),
              "repetition penalty: logits must be contiguous f32 on the host, got ", logits.to_string(0));
  if (penalty == 1.0F) return;
  const int64_t vocab = logits.size(-1);
  float* values = logits.data<float>();
  std::unordered_set<int32_t> seen;
  for (const int32_t token : recent) {
    if (token < 0 || token >= vocab || !seen.insert(token).second) continue;
    float& logit = values[token];
    logit = logit <= 0.0F ? logit * penalty : logit / penalty;
  }
}

Sampler::Sampler(const SamplerParams& params) : params_(params) { params_.validate(); }

int32_t Sampler::sample(Ctx& ctx, Tensor& logits, std::span<const int32_t> history) {
  ANVIL_CHECK(logits.dim() == 2 && logits.size(0) == 1, "sampler: logits must be (1, V), got ",
              shape_string(logits.shape()));
  const auto recent_count =
      params_.repeat_last_n < 0 ? history.size() : std::min(history.size(), static_cast<size_t>(params_.repeat_last_n));
  apply_repetition_penalty(logits, history.last(recent_count), params_.repeat_penalty);

  Tensor ids = Tensor::empty({1}, DType::I32);
  if (params_.greedy()) {
    argmax(ctx, ids, logits);
  } else {
    top_k_filter(ctx, logits, params_.top_k);
    top_p_filter(ctx, logits, params_.top_p);
    min_p_filter(ctx, logits, params_.min_p);
    sample_multinomial(ctx, ids, logits, params_.temperature, params_.seed, draws_++);
  }
  const int32_t token = ids.data<int32_t>()[0];
  ANVIL_CHECK(token >= 0, "sampler: no token can be drawn (every logit is -inf or NaN)");
  return token;
}

}  // namespace anvil::infer
