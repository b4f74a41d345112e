// Generator: chunked prefill, then decode steps with stop conditions and streaming.
#include "anvil/infer/generator.h"

#include <algorithm>
#include <chrono>

#include "anvil/core/error.h"
#include "anvil/infer/stop_strings.h"
#include "anvil/tokenizer/streaming_decoder.h"

namespace anvil::infer {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

model::KvCacheShape cache_shape(const model::ModelConfig& config, const GeneratorOptions& options, int64_t capacity) {
  model::KvCacheShape shape;
  shape.num_layers = config.num_layers;
  shape.num_blocks = (capacity + options.block_size - 1) / options.block_size;
  shape.block_size = options.block_size;
  shape.num_kv_heads = config.num_kv_heads;
  shape.head_dim = config.head_dim;
  shape.dtype = options.kv_dtype;
  return shape;
}

int64_t checked_capacity(const model::ModelConfig& config, const GeneratorOptions& options) {
  ANVIL_CHECK(options.block_size > 0, "generator: block_size must be > 0, got ", options.block_size);
  ANVIL_CHECK(options.max_batch_tokens > 0, "generator: max_batch_tokens must be > 0, got ", options.max_batch_tokens);
  ANVIL_CHECK(options.context_tokens > 0, "generator: context size must be > 0, got ", options.context_tokens);
  ANVIL_CHECK(options.context_tokens <= config.max_position, "generator: context size ", options.context_tokens,
              " is larger than the model's ", config.max_position, " positions");
  return options.context_tokens;
}

// Decoded text of the sampled tokens, through the stop strings, to the callback.
class TextStream {
 public:
  TextStream(const tokenizer::Tokenizer& tokenizer, const GenerationParams& params, const TokenCallback& on_token,
             GenerationResult& result)
      : decoder_(tokenizer),
        vocab_size_(tokenizer.vocab_size()),
        filter_(params.stop_strings),
        on_token_(on_token),
        result_(result) {}

  // Streams the text `token` completes; false when the callback asked to stop. Ids past the
  // tokenizer's vocabulary (a model's padded rows, which an untrained or random model may
  // sample) have no text.
  bool push(int32_t token) {
    return emit(token, token < vocab_size_ ? filter_.push(decoder_.push(token)) : std::string());
  }
  [[nodiscard]] bool stopped() const { return filter_.stopped(); }
  [[nodiscard]] const std::string& matched() const { return filter_.matched(); }
  // Streams what was held back (nothing after a stop string).
  void finish() {
    if (filter_.stopped()) return;
    std::string tail = filter_.push(decoder_.finish());
    tail += filter_.finish();
    if (!tail.empty()) emit(-1, tail);
  }

 private:
  bool emit(int32_t token, const std::string& text) {
    result_.text += text;
    return !on_token_ || on_token_(TokenEvent{token, text});
  }

  tokenizer::StreamingDecoder decoder_;
  int32_t vocab_size_;
  StopStringFilter filter_;
  const TokenCallback& on_token_;
  GenerationResult& result_;
};

}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::MaxTokens:
      return "max tokens";
    case StopReason::StopToken:
      return "stop token";
    case StopReason::StopString:
      return "stop string";
    case StopReason::ContextFull:
      return "context full";
    case StopReason::Cancelled:
      return "cancelled";
  }
  return "?";
}

double GenerationStats::prefill_tokens_per_second() const {
  return prefill_seconds > 0.0 ? static_cast<double>(prefill_tokens) / prefill_seconds : 0.0;
}

double GenerationStats::decode_tokens_per_second() const {
  return decode_seconds > 0.0 ? static_cast<double>(generated_tokens) / decode_seconds : 0.0;
}

model::Batch single_sequence_batch(std::span<const int32_t> tokens, int64_t start,
                                   const std::vector<int32_t>& block_table, bool want_logits) {
  model::Batch batch;
  batch.tokens.assign(tokens.begin(), tokens.end());
  for (size_t i = 0; i < tokens.size(); ++i) batch.positions.push_back(static_cast<int32_t>(start + i));
  model::SequenceSlice slice;
  slice.token_begin = 0;
  slice.token_count = static_cast<int64_t>(tokens.size());
  slice.context_length = start + slice.token_count;
  slice.block_table = block_table;
  batch.sequences.push_back(std::move(slice));
  if (want_logits) batch.logit_rows.push_back(static_cast<int32_t>(tokens.size()) - 1);
  return batch;
}

Generator::Generator(Ctx& ctx, model::CausalLM& model, const tokenizer::Tokenizer& tokenizer,
                     const GeneratorOptions& options)
    : ctx_(ctx),
      model_(model),
      tokenizer_(tokenizer.clone()),
      options_(options),
      capacity_(checked_capacity(model.config(), options)),
      cache_(ctx, cache_shape(model.config(), options, capacity_), model.device()),
      blocks_(std::make_unique<BlockAllocator>(cache_.shape().num_blocks, options.block_size)),
      sequence_(blocks_->add_sequence()) {}

void Generator::reset() {
  blocks_->truncate(sequence_, 0);
  cached_.clear();
}

Tensor Generator::forward(std::span<const int32_t> tokens) {
  ANVIL_CHECK(!tokens.empty(), "generator: nothing to run");
  Tensor logits;
  for (size_t begin = 0; begin < tokens.size(); begin += static_cast<size_t>(options_.max_batch_tokens)) {
    const size_t end = std::min(tokens.size(), begin + static_cast<size_t>(options_.max_batch_tokens));
    const std::span<const int32_t> chunk = tokens.subspan(begin, end - begin);
    const auto start = static_cast<int64_t>(cached_.size());
    blocks_->reserve(sequence_, start + static_cast<int64_t>(chunk.size()));
    const model::Batch batch =
        single_sequence_batch(chunk, start, blocks_->block_table(sequence_), end == tokens.size());
    logits = model_.forward(ctx_, batch, cache_);
    cached_.insert(cached_.end(), chunk.begin(), chunk.end());
  }
  return logits;
}

int64_t Generator::reuse_prefix(std::span<const int32_t> prompt) {
  const size_t limit = std::min(cached_.size(), prompt.size() - 1);
  size_t common = 0;
  while (common < limit && cached_[common] == prompt[common]) ++common;
  cached_.resize(common);
  blocks_->truncate(sequence_, static_cast<int64_t>(common));
  return static_cast<int64_t>(common);
}

GenerationResult Generator::generate(std::span<const int32_t> prompt, const GenerationParams& params,
                                     const TokenCallback& on_token) {
  ANVIL_CHECK(!prompt.empty(), "generate: the prompt has no tokens");
  ANVIL_CHECK(static_cast<int64_t>(prompt.size()) <= capacity_, "generate: the prompt has ", prompt.size(),
              " tokens, more than the context size of ", capacity_);
  ANVIL_CHECK(params.max_tokens >= 0, "generate: max_tokens must be >= 0, got ", params.max_tokens);
  const int64_t vocab = model_.config().vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i) {
    ANVIL_CHECK(prompt[i] >= 0 && prompt[i] < vocab, "generate: prompt token ", i, " = ", prompt[i],
                " is outside the vocabulary of ", vocab);
  }
  Sampler sampler(params.sampler);
  GenerationResult result;
  GenerationStats& stats = result.stats;
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());

  auto start = Clock::now();
  stats.reused_tokens = reuse_prefix(prompt);
  stats.prefill_tokens = stats.prompt_tokens - stats.reused_tokens;
  Tensor logits = forward(prompt.subspan(static_cast<size_t>(stats.reused_tokens)));
  stats.prefill_seconds = seconds_since(start);

  start = Clock::now();
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  TextStream stream(*tokenizer_, params, on_token, result);
  const auto is_stop_token = [&](int32_t token) {
    return std::find(params.stop_tokens.begin(), params.stop_tokens.end(), token) != params.stop_tokens.end();
  };
  while (true) {
    if (stats.generated_tokens == params.max_tokens) {
      result.stop_reason = StopReason::MaxTokens;
      break;
    }
    const int32_t token = sampler.sample(ctx_, logits, history);
    history.push_back(token);
    result.tokens.push_back(token);
    ++stats.generated_tokens;
    if (is_stop_token(token)) {
      result.stop_reason = StopReason::StopToken;
      break;
    }
    if (!stream.push(token)) {
      result.stop_reason = StopReason::Cancelled;
      break;
    }
    if (stream.stopped()) {
      result.stop_reason = StopReason::StopString;
      result.stop_string = stream.matched();
      break;
    }
    if (stats.generated_tokens == params.max_tokens) continue;  // no need to run the last token
    if (static_cast<int64_t>(cached_.size()) >= capacity_) {
      result.stop_reason = StopReason::ContextFull;
      break;
    }
    logits = forward(std::span<const int32_t>(&token, 1));
  }
  if (result.stop_reason != StopReason::Cancelled && !stream.stopped()) {
    stream.finish();
    if (stream.stopped()) {  // completed by the U+FFFD of a character left unfinished at the end
      result.stop_reason = StopReason::StopString;
      result.stop_string = stream.matched();
    }
  }
  stats.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace anvil::infer
