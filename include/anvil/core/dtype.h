#pragma once
// Element types. Plain types store one element per `bytes`; block-quantized types
// (GGUF's Q8_0, Q4_K, ...) store `block_elems` elements in `block_bytes` bytes.
#include <cstdint>
#include <optional>
#include <string_view>

namespace anvil {

enum class DType : uint8_t {
  F32,
  F64,
  F16,
  BF16,
  F8E4M3,
  F8E5M2,
  I8,
  U8,
  I32,
  I64,
  Q8_0,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q4_K,
  Q5_K,
  Q6_K,
  // quantized_matmul's 8-bit activations (x quantised once, for every GEMV that reads it;
  // made by the op that produces x or by quantize_activations): blocks of 32 for Q8_0..Q5_1
  // weights (Q8Act), of 256 for the K-quants (Q8KAct). Unlike the weight types they are laid
  // out per tensor, not per block (activation_layout in quant.h), so a tensor of them is only
  // ever used whole: no row slices.
  Q8Act,
  Q8KAct,
};
inline constexpr int kNumDTypes = 20;

struct DTypeInfo {
  std::string_view name;
  int64_t block_elems;  // 1 for plain types
  int64_t block_bytes;  // bytes of one element (plain) or one block (quantized)
  bool is_float;        // holds real numbers (floats and quantized floats)
  bool is_quantized;    // block-quantized storage type
};

// Static facts about a dtype.
const DTypeInfo& dtype_info(DType dtype);
inline std::string_view dtype_name(DType dtype) { return dtype_info(dtype).name; }
// Parses "f32", "bf16", "q4_k", ...; nullopt when unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes needed for `num_elems` elements; throws if num_elems is not a whole number of blocks.
int64_t dtype_bytes_for(DType dtype, int64_t num_elems);
// Bytes of one element of a plain type; throws for block types.
int64_t dtype_elem_bytes(DType dtype);
// Whether dtype is one of quantized_matmul's activation types (Q8Act, Q8KAct).
inline bool is_activation_codes(DType dtype) { return dtype == DType::Q8Act || dtype == DType::Q8KAct; }

}  // namespace anvil
