// anvil_bench: CPU op benchmarks (Google Benchmark) with throughput and "% of peak"
// counters against this machine's measured FMA peak and memory bandwidth.
//   anvil_bench [--threads=N] [--benchmark_filter=REGEX] [other --benchmark_* flags]
// Threads: --threads=N, else env ANVIL_BENCH_THREADS, else one per hardware thread.
#include <benchmark/benchmark.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

#include "bench_support.h"

namespace {

// Parses a thread count >= 0 (0: all hardware threads); nullopt when malformed.
std::optional<int> parse_threads(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// Removes --threads=N from argv (Google Benchmark rejects flags it does not know).
std::optional<int> take_threads_flag(int& argc, char** argv) {
  constexpr std::string_view kFlag = "--threads=";
  std::optional<int> threads;
  int kept = 0;
  for (int i = 0; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (i > 0 && arg.starts_with(kFlag)) {
      threads = parse_threads(arg.substr(kFlag.size()));
      if (!threads) threads = -1;
      continue;
    }
    argv[kept++] = argv[i];
  }
  argc = kept;
  return threads;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<int> threads = take_threads_flag(argc, argv);
  const char* env_threads = std::getenv("ANVIL_BENCH_THREADS");
  if (!threads && env_threads != nullptr) threads = parse_threads(env_threads).value_or(-1);
  if (threads.value_or(0) < 0) {
    std::fprintf(stderr, "anvil_bench: the thread count must be an integer >= 0\n");
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  anvil::CtxOptions options;
  options.num_threads = threads.value_or(0);
  options.use_cuda = false;  // CPU benchmarks
  anvil::Ctx ctx(options);
  const int num_threads = ctx.pool().num_threads();
  const anvil::bench::MachinePeak peak = anvil::bench::measure_peak(num_threads);
  std::fprintf(stderr, "anvil_bench: %d threads; measured peak: %s\n", num_threads, peak.to_string().c_str());
  benchmark::AddCustomContext("anvil_threads", std::to_string(num_threads));
  benchmark::AddCustomContext("anvil_cpu_isa", anvil::isa_name(anvil::best_isa(ctx.cpu_features())));
  benchmark::AddCustomContext("anvil_peak", peak.to_string());

  anvil::bench::BenchEnv env{ctx, peak};
  anvil::bench::register_matmul_benchmarks(env);
  anvil::bench::register_attention_benchmarks(env);
  anvil::bench::register_rms_norm_benchmarks(env);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
