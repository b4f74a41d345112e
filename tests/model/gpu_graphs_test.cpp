// CUDA graphs of the decode step (skipped without a GPU): a model replaying graphs gives
// the same logits, bit for bit, as the same model run eagerly, for the tiny fixtures and a
// quantized (Q8_0, Q4_0) GGUF, for one and several sequences, over the context buckets
// the graphs are captured for, and on a second KV cache after the first.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "anvil/model/causal_lm.h"
#include "model/tiny_model.h"
#include "model/tiny_runner.h"

namespace anvil::testing {
namespace {

const std::string kFixtures = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/models/";
constexpr int64_t kBlockSize = 16;
constexpr int64_t kNumBlocks = 32;

bool has_gpu() { return test_ctx().has_cuda(); }

std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, Rng& rng) {
  std::vector<int32_t> tokens;
  for (const double id : random_ints({count}, rng, 0, vocab).values) tokens.push_back(static_cast<int32_t>(id));
  return tokens;
}

// Runs the same steps on an eager and a graph-replaying copy of one model (each with its
// own cache, same block tables) and expects equal logits at every step. Prompts of 50, 9
// and 40 tokens (the 9-token one, all rows' logits wanted, is itself a graph step), then
// decode steps of all three sequences and of one, crossing the 64 and 128 buckets.
void expect_graphs_match_eager(model::CausalLM& eager, model::CausalLM& graphed, uint64_t seed) {
  Ctx& ctx = test_ctx();
  eager.set_device_graphs(false);
  graphed.set_device_graphs(true);
  Rng rng_eager(seed);
  Rng rng_graphed(seed);
  CacheRunner on_eager(ctx, eager.config(), kBlockSize, kNumBlocks, rng_eager, eager.device());
  CacheRunner on_graphed(ctx, graphed.config(), kBlockSize, kNumBlocks, rng_graphed, graphed.device());
  Rng rng(seed + 1);
  const int64_t vocab = eager.config().vocab_size;
  std::vector<std::vector<std::pair<int, std::vector<int32_t>>>> steps;
  for (const int64_t prompt : {50, 9, 40}) {
    const int id = on_eager.add_sequence();
    static_cast<void>(on_graphed.add_sequence());
    steps.push_back({{id, random_tokens(prompt, vocab, rng)}});
  }
  for (int step = 0; step < 90; ++step) {
    std::vector<std::pair<int, std::vector<int32_t>>> chunks;
    for (const int id : step % 4 == 3 ? std::vector<int>{0} : std::vector<int>{2, 0, 1}) {
      chunks.emplace_back(id, random_tokens(1, vocab, rng));
    }
    steps.push_back(chunks);
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    const HostArray want = on_eager.step(eager, steps[i]);
    const HostArray got = on_graphed.step(graphed, steps[i]);
    ASSERT_EQ(got.values, want.values) << "step " << i << " (" << steps[i].size() << " sequences)";
  }
  const model::DeviceGraphStats stats = graphed.device_graph_stats();
  std::printf("[ graphs   ] %lld shapes captured, %lld steps replayed\n", static_cast<long long>(stats.captured),
              static_cast<long long>(stats.replays));
  EXPECT_EQ(stats.failures, 0);
  EXPECT_GE(stats.captured, 4);  // 9 rows; 3 rows in buckets 64 and 128 (and 1 row)
  EXPECT_GT(stats.replays, 60);
  EXPECT_EQ(eager.device_graph_stats().replays, 0);
}

TEST(GpuGraphs, TinyFixturesDecodeBitIdenticalToEager) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  Ctx& ctx = test_ctx();
  for (const std::string name : {"llama3", "smollm2", "mistral", "qwen2", "qwen3"}) {
    SCOPED_TRACE(name);
    const auto eager = model::load_causal_lm(ctx, kFixtures + name, Device::cuda(0));
    const auto graphed = model::load_causal_lm(ctx, kFixtures + name, Device::cuda(0));
    expect_graphs_match_eager(*eager, *graphed, test_seed());
  }
}

TEST(GpuGraphs, QuantizedGgufDecodeBitIdenticalToEager) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const DType dtype : {DType::Q8_0, DType::Q4_0}) {
    SCOPED_TRACE(dtype_name(dtype));
    const TinySpec spec = llama_spec();
    TempDir dir;
    write_gguf_checkpoint(dir.path("tiny.gguf"), spec, random_weights(spec, rng), dtype);
    const auto eager = model::load_causal_lm(ctx, dir.path("tiny.gguf"), Device::cuda(0));
    const auto graphed = model::load_causal_lm(ctx, dir.path("tiny.gguf"), Device::cuda(0));
    expect_graphs_match_eager(*eager, *graphed, test_seed());
  }
}

// Graphs hold the cache's addresses: a second cache (another generator, say) must not be
// written through graphs captured for the first.
TEST(GpuGraphs, ASecondCacheGetsItsOwnGraphs) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  Ctx& ctx = test_ctx();
  const auto eager = model::load_causal_lm(ctx, kFixtures + "llama3", Device::cuda(0));
  const auto graphed = model::load_causal_lm(ctx, kFixtures + "llama3", Device::cuda(0));
  expect_graphs_match_eager(*eager, *graphed, test_seed());
  const int64_t captured = graphed->device_graph_stats().captured;
  // Holds the blocks the first caches freed, so the next ones live elsewhere.
  Rng rng(test_seed());
  CacheRunner hold(ctx, eager->config(), kBlockSize, kNumBlocks, rng, Device::cuda(0));
  expect_graphs_match_eager(*eager, *graphed, test_seed() + 7);
  EXPECT_GT(graphed->device_graph_stats().captured, captured);
}

// Single-row decode on the GPU takes paths prefill does not (fused QKV and gate/up GEMVs,
// one rope over q and k, the graph): token by token it still gives the CPU's logits to f32
// rounding, with graphs on and off.
TEST(GpuGraphs, DecodeMatchesTheCpu) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  Ctx& ctx = test_ctx();
  const Tolerance same_f32{1e-4, 1e-5, 1.0};
  for (const std::string name : {"llama3", "qwen2", "qwen3"}) {
    for (const bool graphs : {true, false}) {
      SCOPED_TRACE(name + (graphs ? " with graphs" : " eager"));
      const auto cpu = model::load_causal_lm(ctx, kFixtures + name);
      const auto gpu = model::load_causal_lm(ctx, kFixtures + name, Device::cuda(0));
      gpu->set_device_graphs(graphs);
      Rng rng_cpu(test_seed());
      Rng rng_gpu(test_seed());
      CacheRunner on_cpu(ctx, cpu->config(), kBlockSize, kNumBlocks, rng_cpu);
      CacheRunner on_gpu(ctx, gpu->config(), kBlockSize, kNumBlocks, rng_gpu, Device::cuda(0));
      static_cast<void>(on_cpu.add_sequence());
      static_cast<void>(on_gpu.add_sequence());
      Rng rng(test_seed() + 3);
      for (int step = 0; step < 40; ++step) {
        const std::vector<int32_t> token = random_tokens(1, cpu->config().vocab_size, rng);
        expect_close(on_gpu.step(*gpu, {{0, token}}), on_cpu.step(*cpu, {{0, token}}), same_f32,
                     "step " + std::to_string(step));
      }
      EXPECT_EQ(gpu->device_graph_stats().replays > 0, graphs);
    }
  }
}

TEST(GpuGraphs, PrefillAndCpuStayEager) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const auto gpu = model::load_causal_lm(ctx, kFixtures + "llama3", Device::cuda(0));
  const auto cpu = model::load_causal_lm(ctx, kFixtures + "llama3");
  gpu->set_device_graphs(true);
  cpu->set_device_graphs(true);
  const std::vector<int32_t> tokens = random_tokens(40, gpu->config().vocab_size, rng);
  static_cast<void>(prefill_logits(ctx, *gpu, tokens, kBlockSize, rng));  // 40 rows > kMaxRows
  static_cast<void>(prefill_logits(ctx, *cpu, {tokens.begin(), tokens.begin() + 3}, kBlockSize, rng));
  EXPECT_EQ(gpu->device_graph_stats().captured, 0);
  EXPECT_EQ(cpu->device_graph_stats().captured, 0);
}

}  // namespace
}  // namespace anvil::testing
