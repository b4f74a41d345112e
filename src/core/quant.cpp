#include "anvil/core/quant.h"

#include <cstring>

#include "anvil/core/error.h"

// Row-level entry points: validate, then walk the blocks with the per-format codecs in
// quant_legacy.cpp (Q8_0..Q5_1) and quant_k.cpp (Q4_K, Q5_K, Q6_K).
namespace anvil {
namespace {

using DequantizeBlock = void (*)(const void*, float*);
using QuantizeBlock = void (*)(const float*, void*);

struct BlockCodec {
  DequantizeBlock dequantize;
  QuantizeBlock quantize;
};

BlockCodec codec_for(DType dtype, const char* what) {
  switch (dtype) {
    case DType::Q8_0:
      return {quant::dequantize_q8_0, quant::quantize_q8_0};
    case DType::Q4_0:
      return {quant::dequantize_q4_0, quant::quantize_q4_0};
    case DType::Q4_1:
      return {quant::dequantize_q4_1, quant::quantize_q4_1};
    case DType::Q5_0:
      return {quant::dequantize_q5_0, quant::quantize_q5_0};
    case DType::Q5_1:
      return {quant::dequantize_q5_1, quant::quantize_q5_1};
    case DType::Q4_K:
      return {quant::dequantize_q4_k, quant::quantize_q4_k};
    case DType::Q5_K:
      return {quant::dequantize_q5_k, quant::quantize_q5_k};
    case DType::Q6_K:
      return {quant::dequantize_q6_k, quant::quantize_q6_k};
    default:
      throw make_error(what, ": ", dtype_name(dtype), " is not a block-quantized dtype");
  }
}

// Number of blocks in `num_elems`, which must be a whole number of them.
int64_t checked_num_blocks(DType dtype, int64_t num_elems, const char* what) {
  const DTypeInfo& info = dtype_info(dtype);
  ANVIL_CHECK(num_elems >= 0 && num_elems % info.block_elems == 0, what, ": ", num_elems, " elements of ", info.name,
              " is not a whole number of ", info.block_elems, "-element blocks");
  return num_elems / info.block_elems;
}

}  // namespace

ActivationLayout activation_layout(DType activation_dtype, int64_t num_elems) {
  ANVIL_CHECK(is_activation_codes(activation_dtype), "activation_layout: ", dtype_name(activation_dtype),
              " is not an activation type");
  const int64_t blocks = checked_num_blocks(activation_dtype, num_elems, "activation_layout");
  ActivationLayout layout;
  layout.block = activation_dtype == DType::Q8Act ? kQuantBlock : kQuantSuperBlock;
  const int64_t groups = num_elems / kQuantBlock;
  layout.scales_offset = num_elems;
  layout.sums_offset = layout.scales_offset + blocks * static_cast<int64_t>(sizeof(float));
  layout.block_sums_offset = layout.sums_offset + groups * static_cast<int64_t>(sizeof(int32_t));
  layout.total_bytes =
      layout.block_sums_offset + (activation_dtype == DType::Q8Act ? groups * static_cast<int64_t>(sizeof(float)) : 0);
  return layout;
}

void dequantize_activations(DType activation_dtype, const void* data, float* out, int64_t num_elems) {
  const ActivationLayout layout = activation_layout(activation_dtype, num_elems);
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (int64_t i = 0; i < num_elems; ++i) {
    float scale = 0.0F;
    std::memcpy(&scale, bytes + layout.scales_offset + (i / layout.block) * static_cast<int64_t>(sizeof(float)),
                sizeof(float));
    out[i] = scale * static_cast<float>(static_cast<int8_t>(bytes[i]));
  }
}

void dequantize_row(DType dtype, const void* blocks, float* out, int64_t num_elems) {
  const BlockCodec codec = codec_for(dtype, "dequantize_row");
  const int64_t num_blocks = checked_num_blocks(dtype, num_elems, "dequantize_row");
  const DTypeInfo& info = dtype_info(dtype);
  const auto* bytes = static_cast<const uint8_t*>(blocks);
  for (int64_t block = 0; block < num_blocks; ++block) {
    codec.dequantize(bytes + block * info.block_bytes, out + block * info.block_elems);
  }
}

void quantize_row(DType dtype, const float* values, void* blocks, int64_t num_elems) {
  const BlockCodec codec = codec_for(dtype, "quantize_row");
  const int64_t num_blocks = checked_num_blocks(dtype, num_elems, "quantize_row");
  const DTypeInfo& info = dtype_info(dtype);
  auto* bytes = static_cast<uint8_t*>(blocks);
  for (int64_t block = 0; block < num_blocks; ++block) {
    codec.quantize(values + block * info.block_elems, bytes + block * info.block_bytes);
  }
}

}  // namespace anvil
