// Test main: with ANVIL_TEST_DEVICES=cuda the op tests run on the GPU only, and exit
// with 77 (ctest's skip) when there is no GPU, so the `gpu` label passes on CI machines.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string_view>

#include "support/op_harness.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* devices = std::getenv("ANVIL_TEST_DEVICES");
  if (devices != nullptr && std::string_view(devices) == "cuda" && !anvil::testing::test_ctx().has_cuda()) {
    std::cout << "no CUDA device available: skipping GPU tests\n";
    return 77;
  }
  return RUN_ALL_TESTS();
}
