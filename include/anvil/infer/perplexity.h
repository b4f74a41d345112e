#pragma once
// Perplexity of a model on a token stream, by the method of docs/reference.md: the stream is
// cut into non-overlapping chunks of `context_tokens` (the last one may be shorter), each run
// from an empty KV cache at positions 0.., and token i of a chunk (i >= first_scored) is scored
// by -log p(token i | tokens 0 .. i-1 of the chunk), log-softmax in float64 from the f32
// logits. PPL = exp(mean score), reported with the standard error of the mean carried through
// exp as llama.cpp does: PPL * sqrt(var / (n - 1)).
// llama.cpp's `llama-perplexity` tool is the same with first_scored = context / 2 + 1 and
// the partial last chunk dropped.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "anvil/model/causal_lm.h"

namespace anvil::infer {

struct PerplexityOptions {
  int64_t context_tokens = 512;    // chunk length
  int64_t first_scored = 1;        // first scored index in each chunk (>= 1)
  bool partial_last_chunk = true;  // score the shorter chunk left at the end
  std::optional<int32_t> bos;      // when set, replaces the first token of every chunk
  int64_t max_batch_tokens = 512;  // tokens per forward call
  int64_t max_chunks = 0;          // 0 = every whole chunk
  int64_t block_size = 16;
  DType kv_dtype = DType::F32;  // KV cache element type (llama.cpp's default is F16)
};

struct PerplexityResult {
  int64_t chunks = 0;
  int64_t evaluated_tokens = 0;  // run through the model
  int64_t scored_tokens = 0;
  double mean_nll = 0.0;  // nats per scored token
  double perplexity = 0.0;
  double perplexity_error = 0.0;  // standard error
  double seconds = 0.0;
};

// Called after each chunk with the totals so far.
using PerplexityProgress = std::function<void(const PerplexityResult& so_far, int64_t total_chunks)>;

// Throws anvil::Error when the stream has nothing to score or the options are inconsistent.
PerplexityResult evaluate_perplexity(Ctx& ctx, model::CausalLM& model, std::span<const int32_t> tokens,
                                     const PerplexityOptions& options, const PerplexityProgress& progress = {});

}  // namespace anvil::infer
