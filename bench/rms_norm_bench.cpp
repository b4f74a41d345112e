// CPU RMSNorm forward over rows of C channels: memory-bound, so reported in GB/s.
// Bytes per run: read x and write out (N*C elements each), read weight (C), write rstd (N f32).
// Note: 4096x768 f32 (12 MiB in, 12 MiB out) fits in a 32 MiB L3, so it can beat the
// DRAM bandwidth the "%peak_bw" counter compares with; the larger shapes cannot.
#include <array>
#include <string>

#include "anvil/ops/rms_norm.h"
#include "bench_support.h"

namespace anvil::bench {
namespace {

struct RowsShape {
  int64_t rows, channels;
};

void bench_rms_norm(benchmark::State& state, BenchEnv& env, DType dtype, RowsShape shape) {
  std::mt19937_64 rng(3);
  const Tensor x = random_tensor({shape.rows, shape.channels}, dtype, rng);
  const Tensor weight = random_tensor({shape.channels}, dtype, rng);
  Tensor out = Tensor::empty({shape.rows, shape.channels}, dtype);
  Tensor rstd = Tensor::empty({shape.rows}, DType::F32);
  const auto seconds = time_op(state, [&] { rms_norm(env.ctx, out, rstd, x, weight, 1e-5F); });
  if (!seconds) return;
  const auto elem_bytes = static_cast<double>(dtype_elem_bytes(dtype));
  const auto elems = static_cast<double>(shape.rows * shape.channels);
  const double bytes = 2.0 * elems * elem_bytes + static_cast<double>(shape.channels) * elem_bytes +
                       static_cast<double>(shape.rows) * sizeof(float);
  set_byte_counters(state, bytes, *seconds, env.peak);
}

}  // namespace

void register_rms_norm_benchmarks(BenchEnv& env) {
  constexpr std::array kShapes = {RowsShape{4096, 768}, RowsShape{4096, 4096}, RowsShape{16384, 2048}};
  for (const DType dtype : {DType::F32, DType::BF16}) {
    for (const RowsShape shape : kShapes) {
      const std::string name = "rms_norm/" + std::string(dtype_name(dtype)) + "/" + std::to_string(shape.rows) + "x" +
                               std::to_string(shape.channels);
      benchmark::RegisterBenchmark(
          name.c_str(), [&env, dtype, shape](benchmark::State& state) { bench_rms_norm(state, env, dtype, shape); })
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace anvil::bench
