#include "anvil/core/quant.h"

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
