#pragma once
// Reads the binary fixtures that tools/gen_*_fixtures.py write under tests/fixtures:
// little-endian u32 counts and raw arrays, read front to back.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "anvil/core/error.h"

namespace anvil::testing {

// Sequential reader over one fixture file, loaded whole.
class FixtureFile {
 public:
  // Loads ANVIL_FIXTURES_DIR/<name>; throws anvil::Error when missing.
  explicit FixtureFile(const std::string& name) : path_(std::string(ANVIL_FIXTURES_DIR) + "/" + name) {
    std::ifstream in(path_, std::ios::binary);
    ANVIL_CHECK(in.good(), "cannot open fixture ", path_, " (regenerate with tools/gen_*_fixtures.py)");
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // Checks the next bytes are `magic` (e.g. "ANVFLT01").
  void expect_magic(const std::string& magic) {
    const std::vector<uint8_t> got = read_bytes(static_cast<int64_t>(magic.size()));
    ANVIL_CHECK(std::memcmp(got.data(), magic.data(), magic.size()) == 0, "fixture ", path_, ": bad magic");
  }

  uint32_t read_u32() { return read_array<uint32_t>(1)[0]; }

  // Next `count` raw elements of T (the host is little-endian, as the files are).
  template <typename T>
  std::vector<T> read_array(int64_t count) {
    const auto bytes = static_cast<size_t>(count) * sizeof(T);
    ANVIL_CHECK(position_ + bytes <= bytes_.size(), "fixture ", path_, " is truncated");
    std::vector<T> values(static_cast<size_t>(count));
    if (bytes > 0) std::memcpy(values.data(), bytes_.data() + position_, bytes);
    position_ += bytes;
    return values;
  }

  std::vector<uint8_t> read_bytes(int64_t count) { return read_array<uint8_t>(count); }

  [[nodiscard]] bool at_end() const { return position_ == bytes_.size(); }

 private:
  std::string path_;
  std::vector<char> bytes_;
  size_t position_ = 0;
};

}  // namespace anvil::testing
