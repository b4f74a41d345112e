// CPU causal self-attention forward, Blocked and Reference implementations.
// FLOPs: QK^T and PV are 2*T*T*D each per head, so 4*B*H*T^2*D, halved for causal.
#include <cmath>
#include <string>

#include "anvil/ops/attention.h"
#include "bench_support.h"

namespace anvil::bench {
namespace {

constexpr int64_t kBatch = 1;
constexpr int64_t kHeads = 8;
constexpr int64_t kHeadDim = 64;

void bench_attention(benchmark::State& state, BenchEnv& env, AttentionImpl impl, DType dtype, int64_t tokens) {
  std::mt19937_64 rng(2);
  const Shape shape = {kBatch, tokens, kHeads, kHeadDim};  // (B, T, H, D)
  const Tensor q = random_tensor(shape, dtype, rng);
  const Tensor k = random_tensor(shape, dtype, rng);
  const Tensor v = random_tensor(shape, dtype, rng);
  Tensor out = Tensor::empty(shape, dtype);
  Tensor lse = Tensor::empty({kBatch, kHeads, tokens}, DType::F32);  // saved for backward in training
  AttentionParams params;
  params.causal = true;
  params.scale = 1.0F / std::sqrt(static_cast<float>(kHeadDim));
  params.impl = impl;
  const auto seconds = time_op(state, [&] { attention(env.ctx, out, lse, q, k, v, params); });
  if (!seconds) return;
  const double full = 4.0 * kBatch * kHeads * static_cast<double>(tokens * tokens) * kHeadDim;
  set_flop_counters(state, params.causal ? full / 2.0 : full, *seconds, env.peak);
}

}  // namespace

void register_attention_benchmarks(BenchEnv& env) {
  for (const AttentionImpl impl : {AttentionImpl::Blocked, AttentionImpl::Reference}) {
    for (const DType dtype : {DType::F32, DType::BF16}) {
      for (const int64_t tokens : {256, 1024}) {
        const std::string name = std::string("attention/") +
                                 (impl == AttentionImpl::Blocked ? "blocked" : "reference") + "/" +
                                 std::string(dtype_name(dtype)) + "/B1_H8_T" + std::to_string(tokens) + "_D64_causal";
        benchmark::RegisterBenchmark(
            name.c_str(),
            [&env, impl, dtype, tokens](benchmark::State& state) { bench_attention(state, env, impl, dtype, tokens); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
}

}  // namespace anvil::bench
