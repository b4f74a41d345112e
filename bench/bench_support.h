#pragma once
// Shared pieces of the op benchmarks: the context they run in, random inputs, the
// throughput counters (with "% of peak" against this machine's measured peak), and a
// timing loop that skips a benchmark cleanly when its op throws (not supported yet).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <random>
#include <string>

#include "anvil/context.h"
#include "peak.h"

namespace anvil::bench {

// What every benchmark needs; lives in main() for the whole run.
struct BenchEnv {
  Ctx& ctx;
  const MachinePeak& peak;
};

// A host tensor of `dtype` with uniform values in [-1, 1) (never all zero).
Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng);

// Counters "GFLOP/s" and "%peak" (of the all-thread f32 FMA peak) from the wall-clock
// `seconds` that all of state.iterations() took.
void set_flop_counters(benchmark::State& state, double flops_per_iteration, double seconds, const MachinePeak& peak);
// Counters "GB/s" and "%peak_bw" (of the measured memory bandwidth), likewise.
void set_byte_counters(benchmark::State& state, double bytes_per_iteration, double seconds, const MachinePeak& peak);

// Runs `op` once untimed (a warm-up that also catches "not supported": the benchmark is
// then skipped with the error), then times it. Returns the wall-clock seconds of the
// timed loop (the ops are multi-threaded, so CPU time of this thread means nothing), or
// nullopt when skipped.
template <typename Op>
std::optional<double> time_op(benchmark::State& state, Op&& op) {
  try {
    op();
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
    return std::nullopt;
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    op();
    benchmark::ClobberMemory();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Registration of each family (matmul_bench.cpp, attention_bench.cpp, rms_norm_bench.cpp).
void register_matmul_benchmarks(BenchEnv& env);
void register_attention_benchmarks(BenchEnv& env);
void register_rms_norm_benchmarks(BenchEnv& env);

}  // namespace anvil::bench
