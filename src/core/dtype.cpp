#include "anvil/core/dtype.h"

#include <array>

#include "anvil/core/error.h"

namespace anvil {
namespace {

// Block layouts follow ggml: Q8_0 = f16 scale + 32 i8; Q4_0 = f16 + 16 bytes of nibbles;
// Q4_1 = f16 scale + f16 min + 16; Q5_0 = f16 + 4 high bits + 16; Q5_1 = 2 f16 + 4 + 16;
// Q4_K = 2 f16 + 12 scale bytes + 128; Q5_K = 2 f16 + 12 + 32 + 128; Q6_K = 128 + 64 + 16 + f16.
constexpr std::array<DTypeInfo, kNumDTypes> kInfos = {{
    {"f32", 1, 4, true, false},          {"f64", 1, 8, true, false},     {"f16", 1, 2, true, false},
    {"bf16", 1, 2, true, false},         {"f8_e4m3", 1, 1, true, false}, {"f8_e5m2", 1, 1, true, false},
    {"i8", 1, 1, false, false},          {"u8", 1, 1, false, false},     {"i32", 1, 4, false, false},
    {"i64", 1, 8, false, false},         {"q8_0", 32, 34, true, true},   {"q4_0", 32, 18, true, true},
    {"q4_1", 32, 20, true, true},        {"q5_0", 32, 22, true, true},   {"q5_1", 32, 24, true, true},
    {"q4_k", 256, 144, true, true},      {"q5_k", 256, 176, true, true}, {"q6_k", 256, 210, true, true},
    {"q8_act", 32, 44, false, true},      // 32 codes + f32 scale + i32 code sum + f32 scaled sum
    {"q8_k_act", 256, 292, false, true},  // 256 codes + f32 scale + 8 i32 code sums
}};

}  // namespace

const DTypeInfo& dtype_info(DType dtype) {
  const auto index = static_cast<size_t>(dtype);
  ANVIL_CHECK(index < kInfos.size(), "unknown dtype code ", index);
  return kInfos[index];
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (size_t i = 0; i < kInfos.size(); ++i) {
    if (kInfos[i].name == name) return static_cast<DType>(i);
  }
  return std::nullopt;
}

int64_t dtype_bytes_for(DType dtype, int64_t num_elems) {
  const DTypeInfo& info = dtype_info(dtype);
  ANVIL_CHECK(num_elems % info.block_elems == 0, "dtype ", info.name, ": ", num_elems,
              " elements is not a whole number of ", info.block_elems, "-element blocks");
  int64_t bytes = 0;
  ANVIL_CHECK(!__builtin_mul_overflow(num_elems / info.block_elems, info.block_bytes, &bytes), "dtype ", info.name,
              ": ", num_elems, " elements take more bytes than int64 can count");
  return bytes;
}

int64_t dtype_elem_bytes(DType dtype) {
  const DTypeInfo& info = dtype_info(dtype);
  ANVIL_CHECK(!info.is_quantized, "dtype ", info.name, " is block-quantized and has no element size");
  return info.block_bytes;
}

}  // namespace anvil
