#pragma once
// Generator: text generation for one sequence on a CausalLM. The prompt is prefilled in
// chunks of at most max_batch_tokens, then tokens are decoded one step at a time until a
// stop condition: max tokens, a stop token (EOS / end of turn), a stop string in the decoded
// text, a full context, or the callback asking to stop. Text is streamed through a
// StreamingDecoder (never a split UTF-8 character) and a StopStringFilter (never part of a
// stop string). The KV of the sequence stays cached between calls: a prompt that extends
// the previous one (a chat) only prefills what is new.
//
// Each step is a model::Batch built from (sequence, tokens) chunks, the same call a batch of
// many sequences makes; the serving engine's scheduler will drive several at once.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anvil/infer/block_allocator.h"
#include "anvil/infer/sampler.h"
#include "anvil/model/causal_lm.h"
#include "anvil/tokenizer/tokenizer.h"

namespace anvil::infer {

struct GeneratorOptions {
  int64_t context_tokens = 4096;   // KV capacity of the sequence (prompt + generated); at most max_position
  int64_t block_size = 16;         // KV block size in tokens
  int64_t max_batch_tokens = 512;  // prefill chunk: tokens per forward call
  DType kv_dtype = DType::F32;
};

enum class StopReason : uint8_t { MaxTokens, StopToken, StopString, ContextFull, Cancelled };
const char* stop_reason_name(StopReason reason);

struct GenerationParams {
  int64_t max_tokens = 256;  // tokens sampled at most (a final stop token counts)
  SamplerParams sampler;
  std::vector<int32_t> stop_tokens;       // EOS / end-of-turn ids; the one sampled is not streamed
  std::vector<std::string> stop_strings;  // on decoded text; the match and what follows are not streamed
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t reused_tokens = 0;   // prompt prefix whose KV was already cached
  int64_t prefill_tokens = 0;  // prompt tokens run through the model
  double prefill_seconds = 0.0;
  int64_t generated_tokens = 0;  // tokens sampled
  double decode_seconds = 0.0;   // from the end of prefill to the last token (forward + sampling)

  [[nodiscard]] double prefill_tokens_per_second() const;
  [[nodiscard]] double decode_tokens_per_second() const;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // sampled tokens in order (a final stop token included)
  std::string text;             // everything streamed, concatenated
  StopReason stop_reason = StopReason::MaxTokens;
  std::string stop_string;  // the stop string that matched (StopReason::StopString)
  GenerationStats stats;
};

// One streaming event: `token` was sampled and completed `text` (possibly empty: bytes held
// back). A last event with token -1 flushes text held back at the end.
struct TokenEvent {
  int32_t token = -1;
  std::string_view text;
};
// Returns false to stop generating (StopReason::Cancelled).
using TokenCallback = std::function<bool(const TokenEvent& event)>;

class Generator {
 public:
  // Keeps its own handle on `tokenizer` (tokenizers are shared, immutable handles).
  Generator(Ctx& ctx, model::CausalLM& model, const tokenizer::Tokenizer& tokenizer,
            const GeneratorOptions& options = {});

  // Generates a continuation of `prompt` (non-empty, at most context_capacity() tokens).
  GenerationResult generate(std::span<const int32_t> prompt, const GenerationParams& params,
                            const TokenCallback& on_token = {});
  // Forgets the cached sequence (its blocks are freed).
  void reset();

  [[nodiscard]] int64_t context_capacity() const { return capacity_; }
  // Tokens whose K/V are in the cache, in order.
  [[nodiscard]] const std::vector<int32_t>& cached_tokens() const { return cached_; }
  [[nodiscard]] const KvBlockManager& blocks() const { return *blocks_; }
  [[nodiscard]] const model::PagedKvCache& kv_cache() const { return cache_; }

 private:
  // Runs `tokens` after the cached ones through the model in chunks of max_batch_tokens;
  // returns the logits (1, V) of the last token.
  Tensor forward(std::span<const int32_t> tokens);
  // Keeps the longest cached prefix of `prompt` usable (at most prompt.size() - 1 tokens).
  int64_t reuse_prefix(std::span<const int32_t> prompt);

  Ctx& ctx_;
  model::CausalLM& model_;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  GeneratorOptions options_;
  int64_t capacity_ = 0;
  model::PagedKvCache cache_;
  std::unique_ptr<KvBlockManager> blocks_;
  SequenceId sequence_ = 0;
  std::vector<int32_t> cached_;
};

// A batch step for one sequence: `tokens` at positions start .. start + n - 1, with the
// block table, asking for the logits of the last token when `want_logits`.
model::Batch single_sequence_batch(std::span<const int32_t> tokens, int64_t start,
                                   const std::vector<int32_t>& block_table, bool want_logits);

}  // namespace anvil::infer
