// Wall-clock timing of GPU work for the CUDA bench programs: a device-wide synchronise that
// exits on error, and the median time per call over batches of calls.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace anvil::bench {

inline void synchronize() {
  if (cudaDeviceSynchronize() != cudaSuccess) {
    std::fprintf(stderr, "cudaDeviceSynchronize failed\n");
    std::exit(1);
  }
}

// Median seconds per call of `fn` over 7 timed batches of `calls_per_batch` calls, after 3
// warm-up calls.
template <typename Fn>
double seconds_per_call(Fn&& fn, int calls_per_batch) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) fn();
  synchronize();
  std::vector<double> batches;
  for (int b = 0; b < 7; ++b) {
    const auto start = Clock::now();
    for (int i = 0; i < calls_per_batch; ++i) fn();
    synchronize();
    batches.push_back(std::chrono::duration<double>(Clock::now() - start).count() / calls_per_batch);
  }
  std::sort(batches.begin(), batches.end());
  return batches[3];
}

}  // namespace anvil::bench
