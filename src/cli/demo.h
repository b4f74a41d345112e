#pragma once
// `anvil system` and `anvil demo`: a look at the runtime before models exist.
#include <cstdint>

namespace anvil::cli {

struct DemoOptions {
  int threads = 0;
  int64_t tokens = 256;
  int64_t width = 256;
  uint64_t seed = 1234;
};

// Prints CPU features, the kernel ISA in use, thread count and backends.
int run_system(int threads);
// Runs an RMSNorm + attention + SwiGLU block forward and backward, printing timings.
int run_demo(const DemoOptions& options);

}  // namespace anvil::cli
