#include "bench_support.h"

#include <vector>

namespace anvil::bench {

Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-1.0F, 1.0F);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& value : values) value = uniform(rng);
  const Tensor f32 = Tensor::from_f32(shape, values);
  return dtype == DType::F32 ? f32 : f32.to_dtype(dtype);
}

void set_flop_counters(benchmark::State& state, double flops_per_iteration, double seconds, const MachinePeak& peak) {
  const double gflops = flops_per_iteration * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["%peak"] = 100.0 * gflops / peak.fma_gflops_all_cores;
}

void set_byte_counters(benchmark::State& state, double bytes_per_iteration, double seconds, const MachinePeak& peak) {
  const double gbps = bytes_per_iteration * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB/s"] = gbps;
  state.counters["%peak_bw"] = 100.0 * gbps / peak.memory_gbps();
}

}  // namespace anvil::bench
