#pragma once
// Sampler: picks a sequence's next token from its logits, the way llama.cpp's default
// chain does: repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
// The filters look at the penalised logits at temperature 1 (as llama.cpp's do); the draw
// is softmax(logits / temperature) with a Philox stream, so a seed reproduces the output
// on every backend. temperature == 0 is greedy decoding (argmax of the penalised logits).
// One Sampler per sequence; a batch of sequences samples each row with its own Sampler.
#include <cstdint>
#include <span>

#include "anvil/context.h"

namespace anvil::infer {

struct SamplerParams {
  float temperature = 0.8F;     // 0 = greedy
  int64_t top_k = 40;           // <= 0 keeps every token
  float top_p = 0.95F;          // >= 1 keeps every token
  float min_p = 0.05F;          // 0 keeps every token
  float repeat_penalty = 1.0F;  // 1 = off; llama.cpp semantics (see apply_repetition_penalty)
  int64_t repeat_last_n = 64;   // tokens of history penalised; 0 = none, -1 = all
  uint64_t seed = 0;

  // Throws anvil::Error naming the parameter when a value is out of range.
  void validate() const;
  [[nodiscard]] bool greedy() const { return temperature == 0.0F; }
};

// llama.cpp's repetition penalty on one row of logits (V) f32 on the host: every distinct
// token of `recent` (ids outside [0, V) are ignored) has its logit divided by `penalty` when
// it is > 0 and multiplied by it otherwise; each token is penalised once however often it occurs.
void apply_repetition_penalty(Tensor& logits, std::span<const int32_t> recent, float penalty);

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);

  // The next token from `logits` (1, V) f32 on the host, which it overwrites (penalised and
  // filtered). `history` is the sequence so far (prompt and generated tokens); its last
  // repeat_last_n tokens are penalised. Throws anvil::Error if no token can be drawn.
  int32_t sample(Ctx& ctx, Tensor& logits, std::span<const int32_t> history);
  [[nodiscard]] const SamplerParams& params() const { return params_; }
  // Random draws made so far (the Philox counter of the next draw).
  [[nodiscard]] uint64_t draws() const { return draws_; }

 private:
  SamplerParams params_;
  uint64_t draws_ = 0;
};

}  // namespace anvil::infer
