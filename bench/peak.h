#pragma once
// This machine's measured peaks, the yardstick for the "% of peak" benchmark counters:
// f32 FMA throughput (an FMA loop on the widest vector ISA the CPU has) and memory
// bandwidth (STREAM-style triad and memcpy over arrays much larger than the caches).
#include <cstdint>
#include <string>

namespace anvil::bench {

struct MachinePeak {
  const char* isa = "scalar";         // vector ISA of the FMA loop
  int num_threads = 1;                // threads used for the all-core numbers
  double fma_gflops_one_core = 0.0;   // f32 GFLOP/s (an FMA counts 2) on one thread
  double fma_gflops_all_cores = 0.0;  // the same on num_threads threads at once
  double triad_gbps = 0.0;            // a[i] = b[i] + s * c[i]: 12 bytes per element, all threads
  double memcpy_gbps = 0.0;           // read + write bytes of a large memcpy, all threads
  // The memory bandwidth the "% of peak" counters compare with: the better of the two.
  [[nodiscard]] double memory_gbps() const { return triad_gbps > memcpy_gbps ? triad_gbps : memcpy_gbps; }
  // One line per number, for the benchmark context and logs.
  [[nodiscard]] std::string to_string() const;
};

// Measures everything above with `num_threads` threads (about a second in all).
MachinePeak measure_peak(int num_threads);

// FMA loops: each runs `iterations` rounds over independent accumulators and returns
// the f32 flops it executed (an FMA counts 2). Declared here, defined per ISA.
double fma_loop_scalar(int64_t iterations);
double fma_loop_avx2(int64_t iterations);    // peak_avx2.cpp (AVX2 + FMA)
double fma_loop_avx512(int64_t iterations);  // peak_avx512.cpp (AVX-512F)

}  // namespace anvil::bench
