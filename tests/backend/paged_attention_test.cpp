// Paged attention and KV cache writes: a batch mixing decode rows and prefill chunks of
// several sequences, whose K/V live in randomly scattered cache blocks, against a float64
// reference that reads each sequence's K/V history directly (no paging). GQA, sliding
// windows, odd block sizes and head dims, f32/bf16/f16 caches; every backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "anvil/ops/paged_attention.h"
#include "anvil/ops/quantized_matmul.h"
#include "anvil/ops/rope.h"
#include "cpu/cpu_backend.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

struct Heads {
  int64_t q_heads, kv_heads, head_dim;
};

// One sequence of the batch: `context` tokens in the cache after the step, the last
// `new_tokens` of which are queried in this batch (1 = decode, context = full prefill).
struct SequenceCase {
  int64_t context, new_tokens;
};

// Everything one case draws: the K/V history of each sequence, the block tables, the
// batch's query tokens (shuffled over sequences) and q.
struct Scenario {
  Heads heads;
  int64_t block_size = 16;
  int64_t num_blocks = 0;
  int64_t max_blocks = 0;
  std::vector<HostArray> keys, values;  // per sequence (context, Hkv, D)
  std::vector<int32_t> block_tables;    // (S, max_blocks), -1 where unused
  std::vector<int32_t> token_sequences, positions;
  HostArray q;  // (N, Hq, D)

  [[nodiscard]] int64_t slot(int64_t sequence, int64_t position) const {
    return block_tables[static_cast<size_t>(sequence * max_blocks + position / block_size)] * block_size +
           position % block_size;
  }
};

int64_t blocks_for(int64_t tokens, int64_t block_size) { return (tokens + block_size - 1) / block_size; }

Scenario make_scenario(const Heads& heads, int64_t block_size, const std::vector<SequenceCase>& sequences, Rng& rng) {
  Scenario s;
  s.heads = heads;
  s.block_size = block_size;
  int64_t needed = 0;
  for (const SequenceCase& seq : sequences) {
    needed += blocks_for(seq.context, block_size);
    s.max_blocks = std::max(s.max_blocks, blocks_for(seq.context, block_size) + 2);  // spare columns stay -1
  }
  s.num_blocks = needed + 3;  // spare blocks nobody owns
  std::vector<int32_t> free_blocks(static_cast<size_t>(s.num_blocks));
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
  s.block_tables.assign(sequences.size() * static_cast<size_t>(s.max_blocks), -1);
  size_t next = 0;
  std::vector<std::pair<int32_t, int32_t>> tokens;  // (sequence, position)
  for (size_t i = 0; i < sequences.size(); ++i) {
    const SequenceCase& seq = sequences[i];
    for (int64_t b = 0; b < blocks_for(seq.context, block_size); ++b) {
      s.block_tables[i * static_cast<size_t>(s.max_blocks) + static_cast<size_t>(b)] = free_blocks[next++];
    }
    s.keys.push_back(random_array({seq.context, heads.kv_heads, heads.head_dim}, rng, -2.0, 2.0));
    s.values.push_back(random_array({seq.context, heads.kv_heads, heads.head_dim}, rng));
    for (int64_t p = seq.context - seq.new_tokens; p < seq.context; ++p) {
      tokens.emplace_back(static_cast<int32_t>(i), static_cast<int32_t>(p));
    }
  }
  std::shuffle(tokens.begin(), tokens.end(), rng);
  for (const auto& [sequence, position] : tokens) {
    s.token_sequences.push_back(sequence);
    s.positions.push_back(position);
  }
  s.q = random_array({static_cast<int64_t>(tokens.size()), heads.q_heads, heads.head_dim}, rng, -2.0, 2.0);
  return s;
}

// out (N, Hq, D) in float64: each token attends to its sequence's positions
// [max(0, p - window + 1), p], reading the history arrays directly.
HostArray paged_attention_reference(const Scenario& s, double scale, int64_t window) {
  const int64_t d = s.heads.head_dim;
  const int64_t group = s.heads.q_heads / s.heads.kv_heads;
  HostArray out{s.q.shape, std::vector<double>(s.q.values.size(), 0.0)};
  for (size_t i = 0; i < s.positions.size(); ++i) {
    const HostArray& keys = s.keys[static_cast<size_t>(s.token_sequences[i])];
    const HostArray& values = s.values[static_cast<size_t>(s.token_sequences[i])];
    const int64_t p = s.positions[i];
    const int64_t first = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
    for (int64_t h = 0; h < s.heads.q_heads; ++h) {
      const int64_t q_at = (static_cast<int64_t>(i) * s.heads.q_heads + h) * d;
      std::vector<double> scores;
      for (int64_t j = first; j <= p; ++j) {
        const int64_t k_at = (j * s.heads.kv_heads + h / group) * d;
        double dot = 0.0;
        for (int64_t c = 0; c < d; ++c) dot += s.q[q_at + c] * keys[k_at + c];
        scores.push_back(scale * dot);
      }
      const double top = *std::max_element(scores.begin(), scores.end());
      double total = 0.0;
      for (double& score : scores) total += (score = std::exp(score - top));
      for (int64_t j = first; j <= p; ++j) {
        const int64_t v_at = (j * s.heads.kv_heads + h / group) * d;
        for (int64_t c = 0; c < d; ++c)
          out[q_at + c] += scores[static_cast<size_t>(j - first)] / total * values[v_at + c];
      }
    }
  }
  return out;
}

Tensor int_tensor(Ctx& ctx, const Shape& shape, const std::vector<int32_t>& values, Device device) {
  const Tensor host = Tensor::from_i32(shape, values);
  return device.is_cpu() ? host : ctx.to_device(host, device);
}

// Caches filled with NaN, so reading a slot nobody wrote poisons the output.
Tensor nan_cache(Ctx& ctx, const Scenario& s, DType dtype, Device device) {
  const Shape shape{s.num_blocks, s.block_size, s.heads.kv_heads, s.heads.head_dim};
  HostArray nan{shape,
                std::vector<double>(static_cast<size_t>(shape_numel(shape)), std::numeric_limits<double>::quiet_NaN())};
  return make_tensor_exact(ctx, nan, dtype, device);
}

// Writes every sequence's whole history into the caches with one kv_cache_write (K/V rounded
// to `dtype` in place, as the cache stores them); checks each written slot reads back exactly.
// `slots_checked`: tell the op the slots were checked (it may skip its own check).
void fill_caches(Ctx& ctx, Scenario& s, DType dtype, Device device, Tensor& key_cache, Tensor& value_cache,
                 bool slots_checked) {
  const int64_t row = s.heads.kv_heads * s.heads.head_dim;
  HostArray all_keys{{0, s.heads.kv_heads, s.heads.head_dim}, {}};
  HostArray all_values = all_keys;
  std::vector<int32_t> slots;
  for (size_t seq = 0; seq < s.keys.size(); ++seq) {
    round_to(s.keys[seq], dtype);
    round_to(s.values[seq], dtype);
    all_keys.values.insert(all_keys.values.end(), s.keys[seq].values.begin(), s.keys[seq].values.end());
    all_values.values.insert(all_values.values.end(), s.values[seq].values.begin(), s.values[seq].values.end());
    for (int64_t p = 0; p < s.keys[seq].shape[0]; ++p) slots.push_back(static_cast<int32_t>(s.slot(seq, p)));
  }
  all_keys.shape[0] = all_values.shape[0] = static_cast<int64_t>(slots.size());
  const Tensor k = make_tensor_exact(ctx, all_keys, dtype, device);
  const Tensor v = make_tensor_exact(ctx, all_values, dtype, device);
  kv_cache_write(ctx, key_cache, value_cache, k, v,
                 int_tensor(ctx, {static_cast<int64_t>(slots.size())}, slots, device), slots_checked);
  const HostArray key_host = to_host(ctx, key_cache);
  const HostArray value_host = to_host(ctx, value_cache);
  for (size_t i = 0; i < slots.size(); ++i) {
    for (int64_t c = 0; c < row; ++c) {
      const auto src = static_cast<int64_t>(i) * row + c;
      ASSERT_EQ(key_host[slots[i] * row + c], all_keys[src]) << "key slot " << slots[i];
      ASSERT_EQ(value_host[slots[i] * row + c], all_values[src]) << "value slot " << slots[i];
    }
  }
}

struct RunOptions {
  DType q_dtype, cache_dtype;
  int64_t block_size;
  PagedAttentionParams params;
  std::optional<Tolerance> tolerance = {};  // default: q_dtype's
};

void run_case(Ctx& ctx, Device device, Rng& rng, const Heads& heads, const std::vector<SequenceCase>& sequences,
              const RunOptions& options) {
  Scenario s = make_scenario(heads, options.block_size, sequences, rng);
  const auto tokens = static_cast<int64_t>(s.positions.size());
  SCOPED_TRACE("q " + std::string(dtype_name(options.q_dtype)) + ", cache " +
               std::string(dtype_name(options.cache_dtype)) + " on " + device_string(device) +
               ", Hq=" + std::to_string(heads.q_heads) + " Hkv=" + std::to_string(heads.kv_heads) +
               " D=" + std::to_string(heads.head_dim) + " block=" + std::to_string(options.block_size) +
               " window=" + std::to_string(options.params.sliding_window) + " N=" + std::to_string(tokens));
  Tensor key_cache = nan_cache(ctx, s, options.cache_dtype, device);
  Tensor value_cache = nan_cache(ctx, s, options.cache_dtype, device);
  fill_caches(ctx, s, options.cache_dtype, device, key_cache, value_cache, options.params.checked_max_visible > 0);
  const Tensor q = make_tensor(ctx, s.q, options.q_dtype, device);
  Tensor out = ctx.empty(s.q.shape, options.q_dtype, device);
  paged_attention(ctx, out, q, key_cache, value_cache, int_tensor(ctx, {tokens}, s.token_sequences, device),
                  int_tensor(ctx, {tokens}, s.positions, device),
                  int_tensor(ctx, {static_cast<int64_t>(sequences.size()), s.max_blocks}, s.block_tables, device),
                  options.params);
  const double scale = options.params.scale != 0.0F ? static_cast<double>(options.params.scale)
                                                    : 1.0 / std::sqrt(static_cast<double>(heads.head_dim));
  expect_close(to_host(ctx, out), paged_attention_reference(s, scale, options.params.sliding_window),
               options.tolerance.value_or(tolerance_for(options.q_dtype)), "out");
}

// Decode rows, prefill chunks, a whole prefill, a one-token sequence and block boundaries.
const std::vector<SequenceCase> kMixedBatch = {{37, 1}, {20, 20}, {50, 7}, {1, 1}, {16, 1}, {33, 3}};
const std::vector<Heads> kHeads = {{4, 2, 16}, {3, 1, 7}, {2, 2, 33}, {8, 2, 64}};

TEST(OpPagedAttention, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Heads& heads : kHeads) {
        for (const int64_t block_size : {16, 5}) {
          run_case(ctx, device, rng, heads, kMixedBatch, {dtype, dtype, block_size, {}});
        }
      }
    }
  }
}

TEST(OpPagedAttention, SlidingWindowAndScale) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const int64_t window : {1, 4, 6, 20}) {
      for (const int64_t block_size : {16, 5}) {
        run_case(ctx, device, rng, {4, 2, 16}, kMixedBatch, {DType::F32, DType::F32, block_size, {0.0F, window}});
      }
    }
    run_case(ctx, device, rng, {6, 3, 12}, kMixedBatch, {DType::F32, DType::F32, 5, {0.37F, 9}});
  }
}

// With the indices vouched for by the caller (checked_max_visible, as the model layer passes)
// the result is the same: only the backend's own check is skipped. The bound is exact for
// kMixedBatch (longest context 50), or with a window, the window.
TEST(OpPagedAttention, CallerCheckedIndicesGiveTheSameResult) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const int64_t block_size : {16, 5}) {
      PagedAttentionParams checked;
      checked.checked_max_visible = 50;
      run_case(ctx, device, rng, {8, 2, 64}, kMixedBatch, {DType::BF16, DType::BF16, block_size, checked});
      checked.sliding_window = 6;
      checked.checked_max_visible = 6;
      run_case(ctx, device, rng, {4, 2, 16}, kMixedBatch, {DType::F32, DType::F32, block_size, checked});
    }
  }
}

// Contexts long enough that a GPU splits them into partitions (256 keys each at least) and
// combines the partial softmaxes.
TEST(OpPagedAttention, LongContextsMatchFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const std::vector<SequenceCase> long_batch = {{700, 1}, {520, 2}, {9, 1}, {1100, 1}};
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : {DType::F32, DType::BF16}) {
      run_case(ctx, device, rng, {8, 2, 64}, long_batch, {dtype, dtype, 16, {}});
    }
    run_case(ctx, device, rng, {4, 2, 16}, long_batch, {DType::F32, DType::F32, 16, {0.0F, 600}});
  }
}

// The shapes of real models (SmolLM2: Hq 9 / Hkv 3 / D 64; Llama-3-8B: 32 / 8 / 128; groups
// of 8 and 12) on f16/bf16 caches, which a GPU serves with its tiled decode kernel: contexts
// that split into partitions and partial tiles, prefill rows next to decode rows, odd block
// sizes, a window, and a caller's visible bound far above every token's range (as a CUDA
// graph captured for longer sequences replays it).
TEST(OpPagedAttention, ModelShapesOnLowPrecisionCaches) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const std::vector<SequenceCase> batch = {{1100, 1}, {300, 5}, {9, 1}, {64, 1}, {65, 2}, {2000, 1}};
  const std::vector<SequenceCase> short_batch = {{200, 3}, {129, 1}, {1, 1}};
  for (const Device device : test_devices(ctx)) {
    // f32 queries on an f16 cache take llama.cpp's arithmetic on the CPU (query and
    // probabilities rounded to f16, see F16CacheAtHeadDim64MatchesFloat64): f16 tolerance
    // there; the GPU keeps the f32 queries' tolerance.
    const auto f32_query_tolerance = [&](DType cache_dtype) -> std::optional<Tolerance> {
      if (device.is_cpu() && cache_dtype == DType::F16) return tolerance_for(DType::F16);
      return std::nullopt;
    };
    for (const DType cache_dtype : {DType::BF16, DType::F16}) {
      for (const Heads& heads : std::vector<Heads>{{9, 3, 64}, {32, 8, 128}}) {
        run_case(ctx, device, rng, heads, batch, {cache_dtype, cache_dtype, 16, {}});
      }
      run_case(ctx, device, rng, {16, 2, 128}, short_batch,
               {DType::F32, cache_dtype, 5, {}, f32_query_tolerance(cache_dtype)});
      run_case(ctx, device, rng, {24, 2, 64}, short_batch, {cache_dtype, cache_dtype, 16, {}});
      run_case(ctx, device, rng, {9, 3, 64}, batch,
               {DType::F32, cache_dtype, 5, {0.0F, 700}, f32_query_tolerance(cache_dtype)});
    }
    PagedAttentionParams bound;
    bound.checked_max_visible = 8192;
    run_case(ctx, device, rng, {32, 8, 128}, batch, {DType::BF16, DType::BF16, 16, bound});
    bound.sliding_window = 100;
    bound.checked_max_visible = 1000;
    run_case(ctx, device, rng, {9, 3, 64}, batch, {DType::F32, DType::F16, 16, bound, f32_query_tolerance(DType::F16)});
  }
}

// Out as the o projection's Q8Act activations (f32 queries, as a decode step's): the same
// bytes as the f32 output quantised by quantize_activations on the same device. The GPU writes
// them from its tiled kernel (one partition, or up to 32 merged in the kernel) and goes
// through f32 for the rest (the combine kernel, the warp kernel's head dims); Q8KAct always
// goes through f32.
TEST(OpPagedAttention, ActivationCodesOutIsTheQuantisedOutputOnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  struct Case {
    Heads heads;
    std::vector<SequenceCase> batch;
    DType cache_dtype;
    DType codes_dtype;
  };
  const std::vector<Case> cases = {
      {{9, 3, 64}, {{40, 1}}, DType::BF16, DType::Q8Act},                        // one partition
      {{9, 3, 64}, {{700, 1}, {33, 1}}, DType::BF16, DType::Q8Act},              // merged in the kernel
      {{32, 8, 128}, {{300, 1}, {1100, 1}, {9, 2}}, DType::BF16, DType::Q8Act},  // D 128, prefill rows
      {{9, 3, 64}, {{6000, 1}}, DType::BF16, DType::Q8Act},                      // many partitions
      {{4, 2, 32}, {{37, 1}, {20, 3}}, DType::F32, DType::Q8Act},                // not tiled
      {{4, 2, 64}, {{300, 1}, {9, 3}}, DType::BF16, DType::Q8KAct},              // super-blocks
  };
  for (const Device device : test_devices(ctx)) {
    for (const Case& c : cases) {
      Scenario s = make_scenario(c.heads, 16, c.batch, rng);
      const auto tokens = static_cast<int64_t>(s.positions.size());
      SCOPED_TRACE(case_label(c.codes_dtype, device, s.q.shape) + " cache " + std::string(dtype_name(c.cache_dtype)));
      Tensor key_cache = nan_cache(ctx, s, c.cache_dtype, device);
      Tensor value_cache = nan_cache(ctx, s, c.cache_dtype, device);
      fill_caches(ctx, s, c.cache_dtype, device, key_cache, value_cache, false);
      const Tensor q = make_tensor(ctx, s.q, DType::F32, device);
      const Tensor sequences = int_tensor(ctx, {tokens}, s.token_sequences, device);
      const Tensor positions = int_tensor(ctx, {tokens}, s.positions, device);
      const Tensor tables =
          int_tensor(ctx, {static_cast<int64_t>(c.batch.size()), s.max_blocks}, s.block_tables, device);
      Tensor values = ctx.empty(s.q.shape, DType::F32, device);
      paged_attention(ctx, values, q, key_cache, value_cache, sequences, positions, tables, {});
      Tensor expected = ctx.empty({tokens, c.heads.q_heads * c.heads.head_dim}, c.codes_dtype, device);
      Tensor flat = values.view({tokens, c.heads.q_heads * c.heads.head_dim});
      quantize_activations(ctx, expected, flat);
      if (c.codes_dtype == DType::Q8KAct) {  // rows of D = 64 are no super-blocks: (N, Hq * D) only
        EXPECT_THROW((void)ctx.empty(s.q.shape, c.codes_dtype, device), Error);
        continue;
      }
      Tensor codes = ctx.empty(s.q.shape, c.codes_dtype, device);
      paged_attention(ctx, codes, q, key_cache, value_cache, sequences, positions, tables, {});
      const Tensor got_host = device.is_cpu() ? codes : ctx.to_device(codes, Device::cpu());
      const Tensor want_host = device.is_cpu() ? expected : ctx.to_device(expected, Device::cpu());
      ASSERT_EQ(got_host.nbytes(), want_host.nbytes());
      const auto* got = static_cast<const uint8_t*>(got_host.raw_data());
      const auto* want = static_cast<const uint8_t*>(want_host.raw_data());
      int64_t differing = 0;
      for (int64_t i = 0; i < got_host.nbytes(); ++i) differing += got[i] != want[i] ? 1 : 0;
      EXPECT_EQ(differing, 0) << "bytes of the activations differ from the quantised f32 output";
      // And the f32 output itself is right (float64 reference).
      expect_close(to_host(ctx, values), paged_attention_reference(s, 1.0 / std::sqrt(c.heads.head_dim), 0),
                   tolerance_for(DType::F32), "out");
    }
  }
}

TEST(OpPagedAttention, LowPrecisionCacheWithF32Queries) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType cache_dtype : {DType::BF16, DType::F16}) {
      run_case(ctx, device, rng, {4, 2, 16}, kMixedBatch, {DType::F32, cache_dtype, 16, {}});
      run_case(ctx, device, rng, {3, 1, 7}, kMixedBatch, {DType::F32, cache_dtype, 5, {0.0F, 6}});
    }
  }
}

// f16 caches with heads a multiple of 64 wide take llama.cpp's arithmetic on the CPU (the
// query and the probabilities rounded to f16, see paged_attention_kernels.h): f16-level
// tolerance for f32 queries, in batches, in decode (one token: another summation order) and
// with long contexts.
TEST(OpPagedAttention, F16CacheAtHeadDim64MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const Tolerance f16 = tolerance_for(DType::F16);
  for (const Device device : test_devices(ctx)) {
    for (const int64_t block_size : {16, 5}) {
      run_case(ctx, device, rng, {9, 3, 64}, kMixedBatch, {DType::F32, DType::F16, block_size, {}, f16});
      run_case(ctx, device, rng, {9, 3, 64}, {{77, 1}}, {DType::F32, DType::F16, block_size, {}, f16});
    }
    run_case(ctx, device, rng, {8, 2, 128}, {{700, 1}, {520, 2}, {1100, 1}}, {DType::F32, DType::F16, 16, {}, f16});
    run_case(ctx, device, rng, {4, 2, 64}, {{300, 1}}, {DType::F32, DType::F16, 16, {}, f16});
  }
}

// That arithmetic is the same with AVX2 as with AVX-512 (the AVX-512 build's 16 lanes as two
// halves): the same bits, batched and one token at a time.
TEST(OpPagedAttention, CpuLlamaCppOrderIsTheSameOnAvx2AndAvx512) {
  const CpuFeatures detected = CpuFeatures::detect();
  if (best_isa(detected) != CpuIsa::Avx512) GTEST_SKIP() << "needs AVX-512";
  CpuFeatures avx2_only;
  avx2_only.avx2 = detected.avx2;
  avx2_only.fma = detected.fma;
  avx2_only.f16c = detected.f16c;
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  ThreadPool pool(2);
  cpu::CpuBackend avx2(pool, avx2_only);
  cpu::CpuBackend avx512(pool, detected);
  for (const std::vector<SequenceCase>& batch : {kMixedBatch, std::vector<SequenceCase>{{130, 1}}}) {
    Scenario s = make_scenario({9, 3, 64}, 16, batch, rng);
    const auto tokens = static_cast<int64_t>(s.positions.size());
    Tensor key_cache = nan_cache(ctx, s, DType::F16, Device::cpu());
    Tensor value_cache = nan_cache(ctx, s, DType::F16, Device::cpu());
    fill_caches(ctx, s, DType::F16, Device::cpu(), key_cache, value_cache, false);
    const Tensor q = make_tensor(ctx, s.q, DType::F32, Device::cpu());
    const Tensor sequences = Tensor::from_i32({tokens}, s.token_sequences);
    const Tensor positions = Tensor::from_i32({tokens}, s.positions);
    const Tensor tables = Tensor::from_i32({static_cast<int64_t>(batch.size()), s.max_blocks}, s.block_tables);
    Tensor out_avx2 = Tensor::zeros(s.q.shape, DType::F32);
    Tensor out_avx512 = Tensor::zeros(s.q.shape, DType::F32);
    avx2.paged_attention(out_avx2, q, key_cache, value_cache, sequences, positions, tables, {});
    avx512.paged_attention(out_avx512, q, key_cache, value_cache, sequences, positions, tables, {});
    EXPECT_EQ(out_avx2.to_f32_vector(), out_avx512.to_f32_vector()) << tokens << " tokens";
  }
}

// rope_kv_cache_write against the two ops it fuses (rope of each token's q and k heads, then
// kv_cache_write of the rotated k and of v), on the same device: rotate-half and interleaved
// pairs, a partial rotation (rot_dim < D), Llama 3 frequency scaling, caches of a lower
// precision than qkv, tokens at scattered slots, heads of no whole 16-byte vectors. Bit for bit on the CPU (its default
// runs exactly those ops); within the dtype's tolerance elsewhere (one kernel's contractions).
TEST(OpRopeKvCacheWrite, MatchesRopeThenKvCacheWrite) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  struct Case {
    int64_t tokens, q_heads, kv_heads, head_dim;
    RopeParams rope;
    DType qkv_dtype, cache_dtype;
  };
  RopeParams interleaved;
  interleaved.layout = RopeLayout::Interleaved;
  RopeParams partial;
  partial.rot_dim = 32;
  RopeParams llama3;
  llama3.base = 500000.0F;
  llama3.scaling = RopeScaling::Llama3;
  llama3.factor = 8.0F;
  llama3.low_freq_factor = 1.0F;
  llama3.high_freq_factor = 4.0F;
  llama3.original_max_position = 8192;
  const std::vector<Case> cases = {{1, 32, 8, 128, llama3, DType::F32, DType::BF16},
                                   {3, 4, 2, 64, RopeParams{}, DType::F32, DType::F32},
                                   {2, 9, 3, 64, interleaved, DType::F32, DType::F16},
                                   {2, 4, 4, 64, partial, DType::BF16, DType::BF16},
                                   {2, 2, 1, 6, RopeParams{}, DType::F32, DType::F32}};  // no whole vectors
  for (const Device device : test_devices(ctx)) {
    for (const Case& c : cases) {
      SCOPED_TRACE(case_label(c.qkv_dtype, device, {c.tokens, c.q_heads + 2 * c.kv_heads, c.head_dim}));
      const int64_t heads = c.q_heads + 2 * c.kv_heads;
      const Shape cache_shape{5, 4, c.kv_heads, c.head_dim};  // 20 slots
      HostArray qkv = random_array({c.tokens, heads, c.head_dim}, rng, -2.0, 2.0);
      std::vector<int32_t> positions;
      for (const double p : random_ints({c.tokens}, rng, 0, 100000).values)
        positions.push_back(static_cast<int32_t>(p));
      std::vector<int32_t> slots(20);
      std::iota(slots.begin(), slots.end(), 0);
      std::shuffle(slots.begin(), slots.end(), rng);
      slots.resize(static_cast<size_t>(c.tokens));
      const Tensor position_tensor = ctx.to_device(Tensor::from_i32({c.tokens}, positions), device);
      const Tensor slot_tensor = ctx.to_device(Tensor::from_i32({c.tokens}, slots), device);
      const HostArray empty_cache{cache_shape, std::vector<double>(static_cast<size_t>(20 * c.kv_heads * c.head_dim))};
      const auto zeros = [&] { return make_tensor_exact(ctx, empty_cache, c.cache_dtype, device); };
      // Fused.
      Tensor fused_qkv = make_tensor(ctx, qkv, c.qkv_dtype, device);
      Tensor fused_keys = zeros();
      Tensor fused_values = zeros();
      rope_kv_cache_write(ctx, fused_qkv, fused_keys, fused_values, position_tensor, slot_tensor, c.rope);
      // The two ops, one token at a time on contiguous copies.
      Tensor split_keys = zeros();
      Tensor split_values = zeros();
      HostArray rotated = qkv;
      for (int64_t t = 0; t < c.tokens; ++t) {
        const int64_t row = t * heads * c.head_dim;
        HostArray qk{{1, c.q_heads + c.kv_heads, c.head_dim},
                     {qkv.values.begin() + row, qkv.values.begin() + row + (c.q_heads + c.kv_heads) * c.head_dim}};
        HostArray v{{1, c.kv_heads, c.head_dim},
                    {qkv.values.begin() + row + (c.q_heads + c.kv_heads) * c.head_dim,
                     qkv.values.begin() + row + heads * c.head_dim}};
        Tensor qk_tensor = make_tensor_exact(ctx, qk, c.qkv_dtype, device);
        const Tensor one_position =
            ctx.to_device(Tensor::from_i32({1}, std::vector<int32_t>{positions[static_cast<size_t>(t)]}), device);
        rope(ctx, qk_tensor, qk_tensor, one_position, c.rope);
        const HostArray qk_rotated = to_host(ctx, qk_tensor);
        std::copy(qk_rotated.values.begin(), qk_rotated.values.end(), rotated.values.begin() + row);
        HostArray k{{1, c.kv_heads, c.head_dim},
                    {qk_rotated.values.begin() + c.q_heads * c.head_dim, qk_rotated.values.end()}};
        kv_cache_write(
            ctx, split_keys, split_values, make_tensor_exact(ctx, k, c.qkv_dtype, device),
            make_tensor_exact(ctx, v, c.qkv_dtype, device),
            ctx.to_device(Tensor::from_i32({1}, std::vector<int32_t>{slots[static_cast<size_t>(t)]}), device));
      }
      if (device.is_cpu()) {
        EXPECT_EQ(to_host(ctx, fused_qkv).values, rotated.values);
        EXPECT_EQ(to_host(ctx, fused_keys).values, to_host(ctx, split_keys).values);
        EXPECT_EQ(to_host(ctx, fused_values).values, to_host(ctx, split_values).values);
      } else {
        expect_close(to_host(ctx, fused_qkv), rotated, tolerance_for(c.qkv_dtype), "qkv");
        expect_close(to_host(ctx, fused_keys), to_host(ctx, split_keys), tolerance_for(c.cache_dtype), "keys");
        EXPECT_EQ(to_host(ctx, fused_values).values, to_host(ctx, split_values).values);  // copies
      }
    }
  }
}

TEST(OpRopeKvCacheWrite, RejectsBadShapes) {
  Ctx& ctx = test_ctx();
  Tensor key_cache = Tensor::zeros({3, 4, 2, 8}, DType::F32);
  Tensor value_cache = Tensor::zeros({3, 4, 2, 8}, DType::F32);
  const Tensor positions = Tensor::from_i32({1}, std::vector<int32_t>{7});
  const Tensor slots = Tensor::from_i32({1}, std::vector<int32_t>{5});
  const auto call = [&](Shape qkv_shape, const Tensor& slot_tensor, RopeParams params = {}) {
    Tensor qkv = Tensor::zeros(qkv_shape, DType::F32);
    rope_kv_cache_write(ctx, qkv, key_cache, value_cache, positions, slot_tensor, params);
  };
  EXPECT_NO_THROW(call({1, 8, 8}, slots));       // 4 q heads, 2 k, 2 v
  EXPECT_THROW(call({1, 4, 8}, slots), Error);   // no q heads
  EXPECT_THROW(call({1, 7, 8}, slots), Error);   // 3 q heads: not a multiple of 2
  EXPECT_THROW(call({1, 8, 16}, slots), Error);  // head_dim 16 vs the caches' 8
  EXPECT_THROW(call({2, 8, 8}, slots), Error);   // 2 tokens, 1 position
  EXPECT_THROW(call({1, 8, 8}, Tensor::from_i32({1}, std::vector<int32_t>{12})), Error);  // slot 12 of 12
  RopeParams odd;
  odd.rot_dim = 3;
  EXPECT_THROW(call({1, 8, 8}, slots, odd), Error);
}

TEST(OpPagedAttention, EmptyBatchIsANoOp) {
  Ctx& ctx = test_ctx();
  Tensor cache = Tensor::zeros({2, 4, 1, 8}, DType::F32);
  Tensor value_cache = Tensor::zeros({2, 4, 1, 8}, DType::F32);
  Tensor q = Tensor::zeros({0, 2, 8}, DType::F32);
  Tensor out = Tensor::zeros({0, 2, 8}, DType::F32);
  const Tensor none = Tensor::zeros({0}, DType::I32);
  const Tensor tables = Tensor::zeros({0, 1}, DType::I32);
  EXPECT_NO_THROW(paged_attention(ctx, out, q, cache, value_cache, none, none, tables, {}));
  const Tensor kv = Tensor::zeros({0, 1, 8}, DType::F32);
  EXPECT_NO_THROW(kv_cache_write(ctx, cache, value_cache, kv, kv, none));
}

// A valid small setup on the host that each bad-argument case perturbs once.
struct SmallCall {
  Tensor key_cache = Tensor::zeros({3, 4, 2, 8}, DType::F32);  // 3 blocks of 4 slots
  Tensor value_cache = Tensor::zeros({3, 4, 2, 8}, DType::F32);
  Tensor k = Tensor::zeros({2, 2, 8}, DType::F32);
  Tensor v = Tensor::zeros({2, 2, 8}, DType::F32);
  Tensor q = Tensor::zeros({2, 4, 8}, DType::F32);
  Tensor out = Tensor::zeros({2, 4, 8}, DType::F32);
  std::vector<int32_t> slots{0, 5};
  std::vector<int32_t> sequences{0, 1};
  std::vector<int32_t> positions{3, 6};
  std::vector<int32_t> tables{2, -1, 0, 1};  // (2, 2)

  void write(Ctx& ctx) {
    kv_cache_write(ctx, key_cache, value_cache, k, v, Tensor::from_i32({static_cast<int64_t>(slots.size())}, slots));
  }
  void attend(Ctx& ctx, const PagedAttentionParams& params = {}) {
    paged_attention(ctx, out, q, key_cache, value_cache,
                    Tensor::from_i32({static_cast<int64_t>(sequences.size())}, sequences),
                    Tensor::from_i32({static_cast<int64_t>(positions.size())}, positions),
                    Tensor::from_i32({static_cast<int64_t>(tables.size()) / 2, 2}, tables), params);
  }
};

TEST(OpPagedAttention, RejectsBadValues) {
  Ctx& ctx = test_ctx();
  EXPECT_NO_THROW(SmallCall().write(ctx));
  EXPECT_NO_THROW(SmallCall().attend(ctx));
  auto write_with_slots = [&](std::vector<int32_t> slots) {
    SmallCall call;
    call.slots = std::move(slots);
    call.write(ctx);
  };
  EXPECT_THROW(write_with_slots({0, 12}), Error);  // 3 * 4 slots
  EXPECT_THROW(write_with_slots({-1, 2}), Error);
  EXPECT_THROW(write_with_slots({4, 4}), Error);  // the same slot twice
  auto attend_with = [&](std::vector<int32_t> sequences, std::vector<int32_t> positions, std::vector<int32_t> tables) {
    SmallCall call;
    call.sequences = std::move(sequences);
    call.positions = std::move(positions);
    call.tables = std::move(tables);
    call.attend(ctx);
  };
  EXPECT_THROW(attend_with({0, 2}, {3, 6}, {2, -1, 0, 1}), Error);  // sequence 2 of 2
  EXPECT_THROW(attend_with({0, -1}, {3, 6}, {2, -1, 0, 1}), Error);
  EXPECT_THROW(attend_with({0, 1}, {-1, 6}, {2, -1, 0, 1}), Error);
  EXPECT_THROW(attend_with({0, 1}, {4, 6}, {2, -1, 0, 1}), Error);  // position 4 reads block -1
  EXPECT_THROW(attend_with({0, 1}, {3, 8}, {2, -1, 0, 1}), Error);  // block index 2 of 2 columns
  EXPECT_THROW(attend_with({0, 1}, {3, 6}, {2, -1, 0, 3}), Error);  // block id 3 of 3
  SmallCall windowed;
  windowed.tables = {-1, 2, 0, 1};  // block 0 of sequence 0 dropped: fine with a window of 2 at position 6
  windowed.positions = {6, 6};
  EXPECT_NO_THROW(windowed.attend(ctx, {0.0F, 2}));
  EXPECT_NO_THROW(windowed.attend(ctx, {0.0F, 3}));
  EXPECT_THROW(windowed.attend(ctx, {0.0F, 4}), Error);  // now position 3 of block 0 is visible
  EXPECT_THROW(windowed.attend(ctx), Error);
}

TEST(OpPagedAttention, RejectsBadShapes) {
  Ctx& ctx = test_ctx();
  {
    SmallCall call;
    call.q = Tensor::zeros({2, 3, 8}, DType::F32);  // 3 query heads over 2 kv heads
    call.out = Tensor::zeros({2, 3, 8}, DType::F32);
    EXPECT_THROW(call.attend(ctx), Error);
  }
  {
    SmallCall call;
    call.q = Tensor::zeros({2, 4, 7}, DType::F32);  // head_dim 7 vs 8
    call.out = Tensor::zeros({2, 4, 7}, DType::F32);
    EXPECT_THROW(call.attend(ctx), Error);
  }
  {
    SmallCall call;
    call.out = Tensor::zeros({2, 4, 8}, DType::BF16);
    EXPECT_THROW(call.attend(ctx), Error);
  }
  {
    SmallCall call;
    call.value_cache = Tensor::zeros({3, 4, 2, 8}, DType::BF16);
    EXPECT_THROW(call.attend(ctx), Error);
    EXPECT_THROW(call.write(ctx), Error);
  }
  {
    SmallCall call;
    call.positions = {3};  // one position for two tokens
    EXPECT_THROW(call.attend(ctx), Error);
  }
  {
    SmallCall call;
    EXPECT_THROW(call.attend(ctx, {-1.0F, 0}), Error);
    EXPECT_THROW(call.attend(ctx, {0.0F, -3}), Error);
  }
  {
    SmallCall call;
    call.k = Tensor::zeros({2, 1, 8}, DType::F32);  // kv heads 1 vs the cache's 2
    EXPECT_THROW(call.write(ctx), Error);
    call.k = Tensor::zeros({2, 2, 8}, DType::I32);
    call.v = Tensor::zeros({2, 2, 8}, DType::I32);
    EXPECT_THROW(call.write(ctx), Error);
  }
}

}  // namespace
}  // namespace anvil::testing
