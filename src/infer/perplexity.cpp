// evaluate_perplexity: chunked scoring with the paged forward pass.
#include "anvil/infer/perplexity.h"

#include <chrono>
#include <cmath>

#include "anvil/core/error.h"
#include "anvil/infer/block_allocator.h"
#include "anvil/infer/generator.h"

namespace anvil::infer {

namespace {

struct NllSums {
  double sum = 0.0;
  double sum_squares = 0.0;
  int64_t count = 0;

  void add(double nll) {
    sum += nll;
    sum_squares += nll * nll;
    ++count;
  }
};

void check_options(const PerplexityOptions& options, const model::ModelConfig& config, size_t num_tokens) {
  ANVIL_CHECK(options.context_tokens >= 2, "perplexity: the context must be >= 2 tokens, got ", options.context_tokens);
  ANVIL_CHECK(options.context_tokens <= config.max_position, "perplexity: context of ", options.context_tokens,
              " tokens is larger than the model's ", config.max_position);
  ANVIL_CHECK(options.first_scored >= 1 && options.first_scored < options.context_tokens,
              "perplexity: first scored token must be in [1, ", options.context_tokens, "), got ",
              options.first_scored);
  ANVIL_CHECK(options.max_batch_tokens > 0 && options.block_size > 0 && options.max_chunks >= 0,
              "perplexity: batch size and block size must be > 0, max_chunks >= 0");
  const int64_t needed = options.partial_last_chunk ? options.first_scored + 1 : options.context_tokens;
  ANVIL_CHECK(static_cast<int64_t>(num_tokens) >= needed, "perplexity: the text has ", num_tokens,
              " tokens, too few to score any (", needed, " needed)");
}

// -log softmax(row)[target], in float64.
double negative_log_likelihood(const float* row, int64_t vocab, int32_t target) {
  double max_value = row[0];
  for (int64_t i = 1; i < vocab; ++i) max_value = std::max(max_value, static_cast<double>(row[i]));
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) total += std::exp(static_cast<double>(row[i]) - max_value);
  return max_value + std::log(total) - static_cast<double>(row[target]);
}

PerplexityResult summarize(const NllSums& sums, int64_t chunks, int64_t evaluated, double seconds) {
  PerplexityResult result;
  result.chunks = chunks;
  result.evaluated_tokens = evaluated;
  result.scored_tokens = sums.count;
  result.seconds = seconds;
  if (sums.count == 0) return result;
  const auto n = static_cast<double>(sums.count);
  result.mean_nll = sums.sum / n;
  result.perplexity = std::exp(result.mean_nll);
  const double variance = sums.sum_squares / n - result.mean_nll * result.mean_nll;
  if (sums.count > 1 && variance > 0.0) result.perplexity_error = result.perplexity * std::sqrt(variance / (n - 1.0));
  return result;
}

// Scores one chunk from an empty cache: rows r with first_scored - 1 <= r < length - 1
// predict token r + 1.
void score_chunk(Ctx& ctx, model::CausalLM& model, std::span<const int32_t> chunk, const PerplexityOptions& options,
                 model::PagedKvCache& cache, BlockAllocator& blocks, SequenceId sequence, NllSums& sums) {
  blocks.truncate(sequence, 0);
  const auto length = static_cast<int64_t>(chunk.size());
  const int64_t vocab = model.config().vocab_size;
  for (int64_t begin = 0; begin < length; begin += options.max_batch_tokens) {
    const int64_t end = std::min(length, begin + options.max_batch_tokens);
    blocks.reserve(sequence, end);
    model::Batch batch =
        single_sequence_batch(chunk.subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)), begin,
                              blocks.block_table(sequence), false);
    for (int64_t row = std::max(begin, options.first_scored - 1); row < std::min(end, length - 1); ++row) {
      batch.logit_rows.push_back(static_cast<int32_t>(row - begin));
    }
    const Tensor logits = model.forward(ctx, batch, cache);
    for (size_t i = 0; i < batch.logit_rows.size(); ++i) {
      const int64_t target = begin + batch.logit_rows[i] + 1;
      sums.add(negative_log_likelihood(logits.data<float>() + static_cast<int64_t>(i) * vocab, vocab,
                                       chunk[static_cast<size_t>(target)]));
    }
  }
}

}  // namespace

PerplexityResult evaluate_perplexity(Ctx& ctx, model::CausalLM& model, std::span<const int32_t> tokens,
                                     const PerplexityOptions& options, const PerplexityProgress& progress) {
  const model::ModelConfig& config = model.config();
  check_options(options, config, tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    ANVIL_CHECK(tokens[i] >= 0 && tokens[i] < config.vocab_size, "perplexity: token ", i, " = ", tokens[i],
                " is outside the vocabulary of ", config.vocab_size);
  }
  const auto num_tokens = static_cast<int64_t>(tokens.size());
  int64_t chunks = num_tokens / options.context_tokens;
  if (options.partial_last_chunk && num_tokens % options.context_tokens > options.first_scored) ++chunks;
  if (options.max_chunks > 0) chunks = std::min(chunks, options.max_chunks);

  model::KvCacheShape shape;
  shape.num_layers = config.num_layers;
  shape.num_blocks = (options.context_tokens + options.block_size - 1) / options.block_size;
  shape.block_size = options.block_size;
  shape.num_kv_heads = config.num_kv_heads;
  shape.head_dim = config.head_dim;
  shape.dtype = options.kv_dtype;
  model::PagedKvCache cache(ctx, shape, model.device());
  BlockAllocator blocks(shape.num_blocks, shape.block_size);
  const SequenceId sequence = blocks.add_sequence();

  const auto start = std::chrono::steady_clock::now();
  NllSums sums;
  int64_t evaluated = 0;
  std::vector<int32_t> chunk;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * options.context_tokens;
    const int64_t end = std::min(num_tokens, begin + options.context_tokens);
    chunk.assign(tokens.begin() + begin, tokens.begin() + end);
    if (options.bos) chunk[0] = *options.bos;
    score_chunk(ctx, model, chunk, options, cache, blocks, sequence, sums);
    evaluated += end - begin;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress) progress(summarize(sums, c + 1, evaluated, seconds), chunks);
  }
  return summarize(sums, chunks, evaluated,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace anvil::infer
