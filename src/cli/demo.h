#pragma once
// `anvil system` and `anvil demo`: a look at the runtime before models exist.
#include <cstdint>

namespace anvil::cli {

struct DemoOptions {
  int threads = 0;
  int steps = 40;
  uint64_t seed = 1234;
};

// Prints CPU features, the kernel ISA in use, thread count and backends.
int run_system(int threads);
// Trains a one-block Llama-style transformer (every CPU op, forward and backward, plus
// AdamW) on a synthetic next-token task and checks that the loss falls.
int run_demo(const DemoOptions& options);

}  // namespace anvil::cli
