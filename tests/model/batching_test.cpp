// The same tokens give the same logits however the engine slices them: one prefill, chunked
// prefill, token-by-token decode, and several sequences sharing a batch. Also quantized
// (Q8_0) GGUF weights against the float64 reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "anvil/model/causal_lm.h"
#include "model/tiny_model.h"
#include "model/tiny_runner.h"

namespace anvil::testing {
namespace {

// Rows are computed with the same f32 kernels whatever the batch; only the matmul's
// blocking may differ with the row count, so results agree to f32 rounding.
const Tolerance kSameComputation{1e-5, 1e-6, 1.0};

std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, Rng& rng) {
  std::vector<int32_t> tokens;
  for (const double id : random_ints({count}, rng, 0, vocab).values) tokens.push_back(static_cast<int32_t>(id));
  return tokens;
}

std::vector<int32_t> slice(const std::vector<int32_t>& tokens, size_t begin, size_t end) {
  return {tokens.begin() + static_cast<std::ptrdiff_t>(begin), tokens.begin() + static_cast<std::ptrdiff_t>(end)};
}

// Appends the rows of `part` to `all`.
void append_rows(HostArray& all, const HostArray& part) {
  all.values.insert(all.values.end(), part.values.begin(), part.values.end());
  all.shape = {static_cast<int64_t>(all.values.size()) / part.shape[1], part.shape[1]};
}

struct Loaded {
  TempDir dir;
  std::unique_ptr<model::CausalLM> lm;
};

std::unique_ptr<Loaded> load_gguf(Ctx& ctx, const TinySpec& spec, const TinyWeights& weights,
                                  DType matrix_dtype = DType::F32) {
  auto loaded = std::make_unique<Loaded>();
  write_gguf_checkpoint(loaded->dir.path("tiny.gguf"), spec, weights, matrix_dtype);
  loaded->lm = model::load_causal_lm(ctx, loaded->dir.path("tiny.gguf"));
  return loaded;
}

TEST(CausalLmBatching, PrefillChunksAndDecodeGiveTheSameLogits) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const TinySpec& spec : {llama_spec(), mistral_spec(), qwen3_spec(), gpt2_spec()}) {
    SCOPED_TRACE(spec_label(spec));
    const auto loaded = load_gguf(ctx, spec, random_weights(spec, rng));
    const std::vector<int32_t> tokens = random_tokens(19, spec.vocab, rng);
    const HostArray whole = prefill_logits(ctx, *loaded->lm, tokens, 5, rng);

    CacheRunner chunked(ctx, loaded->lm->config(), 5, 8, rng);
    const int chunked_id = chunked.add_sequence();
    HostArray chunk_logits{{0, spec.vocab}, {}};
    for (const auto& [begin, end] : std::vector<std::pair<size_t, size_t>>{{0, 7}, {7, 8}, {8, 15}, {15, 19}}) {
      append_rows(chunk_logits, chunked.step(*loaded->lm, {{chunked_id, slice(tokens, begin, end)}}));
    }
    expect_close(chunk_logits, whole, kSameComputation, "chunked prefill");

    CacheRunner decoding(ctx, loaded->lm->config(), 16, 4, rng);
    const int decode_id = decoding.add_sequence();
    HostArray decode_logits{{0, spec.vocab}, {}};
    for (size_t t = 0; t < tokens.size(); ++t) {
      append_rows(decode_logits, decoding.step(*loaded->lm, {{decode_id, {tokens[t]}}}));
    }
    expect_close(decode_logits, whole, kSameComputation, "token-by-token decode");
  }
}

TEST(CausalLmBatching, SequencesInOneBatchMatchEachAlone) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const TinySpec& spec : {qwen2_spec(), mistral_spec(), gpt2_spec()}) {
    SCOPED_TRACE(spec_label(spec));
    const auto loaded = load_gguf(ctx, spec, random_weights(spec, rng));
    const std::vector<int32_t> a = random_tokens(13, spec.vocab, rng);
    const std::vector<int32_t> b = random_tokens(10, spec.vocab, rng);
    const HostArray a_alone = prefill_logits(ctx, *loaded->lm, a, 4, rng);
    const HostArray b_alone = prefill_logits(ctx, *loaded->lm, b, 4, rng);

    // Step 1: a prefills 10 tokens while b prefills 6; step 2: a decodes one token while b
    // finishes its prefill; step 3: b decodes one token, listed first, while a takes two.
    CacheRunner runner(ctx, loaded->lm->config(), 4, 16, rng);
    const int ia = runner.add_sequence();
    const int ib = runner.add_sequence();
    HostArray a_logits{{0, spec.vocab}, {}};
    HostArray b_logits{{0, spec.vocab}, {}};
    auto split = [&](const HostArray& rows, int64_t first_count, HostArray& first, HostArray& second) {
      const int64_t v = rows.shape[1];
      append_rows(first, {{first_count, v}, {rows.values.begin(), rows.values.begin() + first_count * v}});
      append_rows(second,
                  {{rows.shape[0] - first_count, v}, {rows.values.begin() + first_count * v, rows.values.end()}});
    };
    split(runner.step(*loaded->lm, {{ia, slice(a, 0, 10)}, {ib, slice(b, 0, 6)}}), 10, a_logits, b_logits);
    split(runner.step(*loaded->lm, {{ia, slice(a, 10, 11)}, {ib, slice(b, 6, 9)}}), 1, a_logits, b_logits);
    split(runner.step(*loaded->lm, {{ib, slice(b, 9, 10)}, {ia, slice(a, 11, 13)}}), 1, b_logits, a_logits);
    expect_close(a_logits, a_alone, kSameComputation, "sequence a");
    expect_close(b_logits, b_alone, kSameComputation, "sequence b");
  }
}

TEST(CausalLmBatching, LogitRowsSelectAndOrderTheOutput) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const TinySpec spec = llama_spec();
  const auto loaded = load_gguf(ctx, spec, random_weights(spec, rng));
  const std::vector<int32_t> tokens = random_tokens(9, spec.vocab, rng);
  const HostArray all = prefill_logits(ctx, *loaded->lm, tokens, 16, rng);
  CacheRunner runner(ctx, loaded->lm->config(), 16, 2, rng);
  model::Batch batch = runner.make_batch({{runner.add_sequence(), tokens}});
  batch.logit_rows = {8, 2, 8};
  const HostArray picked = to_host(ctx, loaded->lm->forward(ctx, batch, runner.cache()));
  HostArray expected{{3, spec.vocab}, {}};
  for (const int32_t row : batch.logit_rows) {
    expected.values.insert(expected.values.end(), all.values.begin() + row * spec.vocab,
                           all.values.begin() + (row + 1) * spec.vocab);
  }
  expect_close(picked, expected, kSameComputation, "picked rows");
  batch.logit_rows.clear();
  EXPECT_EQ(loaded->lm->forward(ctx, batch, runner.cache()).shape(), (Shape{0, spec.vocab}));
}

// Q8_0 weights: the reference uses the dequantised weights exactly and rounds each linear
// layer's input to 8 bits as quantized_matmul documents (blocks of 32, d = fp16(amax / 127),
// codes round-half-even(x * 127 / amax)), so what remains is f32 rounding, plus the rare input element whose f32
// value lands on the other side of a rounding boundary than the float64 one (probability
// ~ 1e-6 |x| / d ~ 1e-4 per element, ~10^4 rounded elements per run): such a flip moves
// that input by d ~ amax / 127 ~ 2% of its RMS, one output row by ~ d |w| ~ 0.5% of its
// RMS, and the logits by about as much through O(1)-gain layers — but attention's softmax
// can amplify a flip: over 160 model runs the worst error seen was 5.6% of the logits' RMS
// (most runs < 1%). 15% of the logits' RMS leaves room for that tail; a plumbing mistake
// (a wrong row, a missed bias or scale) moves logits by O(100%).
TEST(CausalLmBatching, Q8_0WeightsMatchTheReferenceWithinTheDerivedTolerance) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (TinySpec spec : {llama_spec(), qwen2_spec(), smollm_spec(), qwen3_spec()}) {
    SCOPED_TRACE(spec_label(spec));
    if (spec.qk_norm()) spec.head_dim = 32;  // Q8_0 rows need K a multiple of 32
    TinyWeights weights = random_weights(spec, rng);
    const auto loaded = load_gguf(ctx, spec, weights, DType::Q8_0);
    round_matrices(weights, DType::Q8_0);  // what the file holds, in HF layout
    spec.reference_rounds_inputs_q8 = true;
    const std::vector<int32_t> tokens = random_tokens(17, spec.vocab, rng);
    const HostArray reference = reference_logits(spec, weights, tokens);
    const HostArray logits = prefill_logits(ctx, *loaded->lm, tokens, 16, rng);
    expect_close(logits, reference, {1e-3, 0.0, 150.0}, "Q8_0 logits");
    double worst = 0.0;
    double squares = 0.0;
    for (int64_t i = 0; i < reference.numel(); ++i) {
      worst = std::max(worst, std::abs(logits[i] - reference[i]));
      squares += reference[i] * reference[i];
    }
    std::cout << "[ q8_0     ] " << spec_label(spec) << ": worst |error| / rms(logits) = "
              << worst / std::sqrt(squares / static_cast<double>(reference.numel())) << "\n";
  }
}

}  // namespace
}  // namespace anvil::testing
