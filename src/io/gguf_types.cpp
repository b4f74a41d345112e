// GGUF / ggml type codes and their names, and the mapping to anvil dtypes.
#include <array>
#include <string>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"

namespace anvil::io {
namespace {

// ggml_type codes from ggml.h (0..30); gaps are removed types.
constexpr std::array<const char*, 31> kGgmlTypeNames = {
    "F32",   "F16",    "Q4_0", "Q4_1", "Q4_2?", "Q4_3?",   "Q5_0",   "Q5_1",    "Q8_0",  "Q8_1",   "Q2_K",
    "Q3_K",  "Q4_K",   "Q5_K", "Q6_K", "Q8_K",  "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
    "IQ2_S", "IQ4_XS", "I8",   "I16",  "I32",   "I64",     "F64",    "IQ1_M",   "BF16"};

struct TypePair {
  uint32_t ggml_type;
  DType dtype;
};
constexpr std::array<TypePair, 14> kTypePairs = {{
    {0, DType::F32},
    {1, DType::F16},
    {2, DType::Q4_0},
    {3, DType::Q4_1},
    {6, DType::Q5_0},
    {7, DType::Q5_1},
    {8, DType::Q8_0},
    {12, DType::Q4_K},
    {13, DType::Q5_K},
    {14, DType::Q6_K},
    {24, DType::I8},
    {26, DType::I32},
    {27, DType::I64},
    {28, DType::F64},
}};
constexpr uint32_t kGgmlBf16 = 30;

}  // namespace

std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type) {
  if (ggml_type == kGgmlBf16) return DType::BF16;
  for (const TypePair& pair : kTypePairs) {
    if (pair.ggml_type == ggml_type) return pair.dtype;
  }
  return std::nullopt;
}

uint32_t ggml_type_from_dtype(DType dtype) {
  if (dtype == DType::BF16) return kGgmlBf16;
  for (const TypePair& pair : kTypePairs) {
    if (pair.dtype == dtype) return pair.ggml_type;
  }
  throw make_error("dtype ", dtype_name(dtype), " has no GGUF tensor type");
}

std::string ggml_type_name(uint32_t ggml_type) {
  if (ggml_type < kGgmlTypeNames.size()) return kGgmlTypeNames[ggml_type];
  return "type " + std::to_string(ggml_type);
}

const char* gguf_type_name(GgufType type) {
  static constexpr std::array<const char*, 13> kNames = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                         "bool", "string", "array", "u64", "i64", "f64"};
  const auto index = static_cast<size_t>(type);
  return index < kNames.size() ? kNames[index] : "unknown";
}

}  // namespace anvil::io
