// CPU matmul: out (M, N) f32 = a (M, K) @ b (K, N), a and b f32 or bf16. Reports
// GFLOP/s and %peak (f32 FMA peak; bf16 dot-product instructions can exceed it) and GB/s.
#include <array>
#include <string>

#include "anvil/ops/matmul.h"
#include "bench_support.h"

namespace anvil::bench {
namespace {

struct MatmulShape {
  int64_t m, k, n;
};

void bench_matmul(benchmark::State& state, BenchEnv& env, DType dtype, MatmulShape shape) {
  std::mt19937_64 rng(1);
  const Tensor a = random_tensor({shape.m, shape.k}, dtype, rng);
  const Tensor b = random_tensor({shape.k, shape.n}, dtype, rng);
  Tensor out = Tensor::empty({shape.m, shape.n}, DType::F32);
  const auto seconds = time_op(state, [&] { matmul(env.ctx, out, a, b); });
  if (!seconds) return;
  set_flop_counters(state, 2.0 * static_cast<double>(shape.m * shape.n * shape.k), *seconds, env.peak);
  // Bytes too: the one-token GEMV only streams b, so bandwidth is its yardstick.
  set_byte_counters(state, static_cast<double>(a.nbytes() + b.nbytes() + out.nbytes()), *seconds, env.peak);
}

}  // namespace

void register_matmul_benchmarks(BenchEnv& env) {
  // Square GEMMs, a GPT-2-small projection and MLP up-projection over 2048 tokens, and
  // one-token decoding (GEMV, memory-bound).
  constexpr std::array kShapes = {MatmulShape{512, 512, 512}, MatmulShape{1024, 1024, 1024},
                                  MatmulShape{2048, 768, 768}, MatmulShape{2048, 768, 3072},
                                  MatmulShape{1, 4096, 4096}};
  for (const DType dtype : {DType::F32, DType::BF16}) {
    for (const MatmulShape shape : kShapes) {
      const std::string name = "matmul/" + std::string(dtype_name(dtype)) + "/" + std::to_string(shape.m) + "x" +
                               std::to_string(shape.k) + "x" + std::to_string(shape.n);
      benchmark::RegisterBenchmark(
          name.c_str(), [&env, dtype, shape](benchmark::State& state) { bench_matmul(state, env, dtype, shape); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace anvil::bench
