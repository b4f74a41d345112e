#include "anvil/core/convert.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "anvil/core/error.h"
#include "anvil/core/float_convert.h"
#include "anvil/core/quant.h"

namespace anvil {
namespace {

// f64 -> f32 rounding to odd: a later rounding to a narrower format then gives the
// same result as rounding the f64 directly (no double-rounding error).
float f64_to_f32_round_to_odd(double value) {
  const auto nearest = static_cast<float>(value);
  if (!std::isfinite(nearest) || static_cast<double>(nearest) == value) return nearest;
  const float other =
      static_cast<double>(nearest) > value ? std::nextafter(nearest, -INFINITY) : std::nextafter(nearest, INFINITY);
  return (std::bit_cast<uint32_t>(nearest) & 1U) != 0 ? nearest : other;
}

template <typename Int>
Int saturate_round(double value) {
  if (std::isnan(value)) return 0;
  const double rounded = std::nearbyint(value);  // default mode: nearest, ties to even
  if (rounded <= static_cast<double>(std::numeric_limits<Int>::min())) return std::numeric_limits<Int>::min();
  if (rounded >= static_cast<double>(std::numeric_limits<Int>::max())) return std::numeric_limits<Int>::max();
  return static_cast<Int>(rounded);
}

double load_as_f64(DType dtype, const void* src, int64_t i) {
  switch (dtype) {
    case DType::F32:
      return static_cast<const float*>(src)[i];
    case DType::F64:
      return static_cast<const double*>(src)[i];
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::F8E4M3:
      return e4m3_to_f32(static_cast<const uint8_t*>(src)[i]);
    case DType::F8E5M2:
      return e5m2_to_f32(static_cast<const uint8_t*>(src)[i]);
    case DType::I8:
      return static_cast<const int8_t*>(src)[i];
    case DType::U8:
      return static_cast<const uint8_t*>(src)[i];
    case DType::I32:
      return static_cast<const int32_t*>(src)[i];
    case DType::I64:
      return static_cast<double>(static_cast<const int64_t*>(src)[i]);
    default:
      throw make_error("convert: cannot load elements of ", dtype_name(dtype));
  }
}

void store_from_f64(DType dtype, void* dst, int64_t i, double value) {
  switch (dtype) {
    case DType::F32:
      static_cast<float*>(dst)[i] = static_cast<float>(value);
      return;
    case DType::F64:
      static_cast<double*>(dst)[i] = value;
      return;
    case DType::F16:
      static_cast<uint16_t*>(dst)[i] = f32_to_f16(f64_to_f32_round_to_odd(value));
      return;
    case DType::BF16:
      static_cast<uint16_t*>(dst)[i] = f32_to_bf16(f64_to_f32_round_to_odd(value));
      return;
    case DType::F8E4M3:
      static_cast<uint8_t*>(dst)[i] = f32_to_e4m3(f64_to_f32_round_to_odd(value));
      return;
    case DType::F8E5M2:
      static_cast<uint8_t*>(dst)[i] = f32_to_e5m2(f64_to_f32_round_to_odd(value));
      return;
    case DType::I8:
      static_cast<int8_t*>(dst)[i] = saturate_round<int8_t>(value);
      return;
    case DType::U8:
      static_cast<uint8_t*>(dst)[i] = saturate_round<uint8_t>(value);
      return;
    case DType::I32:
      static_cast<int32_t*>(dst)[i] = saturate_round<int32_t>(value);
      return;
    case DType::I64:
      static_cast<int64_t*>(dst)[i] = saturate_round<int64_t>(value);
      return;
    default:
      throw make_error("convert: cannot store elements of ", dtype_name(dtype));
  }
}

// Fast paths for the conversions weights and activations use most.
bool convert_fast(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t n) {
  if (src_dtype == DType::F16 && dst_dtype == DType::F32) {
    for (int64_t i = 0; i < n; ++i) static_cast<float*>(dst)[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    return true;
  }
  if (src_dtype == DType::BF16 && dst_dtype == DType::F32) {
    for (int64_t i = 0; i < n; ++i) static_cast<float*>(dst)[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    return true;
  }
  if (src_dtype == DType::F32 && dst_dtype == DType::F16) {
    for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(static_cast<const float*>(src)[i]);
    return true;
  }
  if (src_dtype == DType::F32 && dst_dtype == DType::BF16) {
    for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(static_cast<const float*>(src)[i]);
    return true;
  }
  return false;
}

}  // namespace

void convert_host(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t num_elems) {
  if (num_elems == 0) return;
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, static_cast<size_t>(dtype_bytes_for(src_dtype, num_elems)));
    return;
  }
  ANVIL_CHECK(!is_activation_codes(dst_dtype), "convert: ", dtype_name(dst_dtype),
              " activations are made by quantize_activations (or the op producing them), not by a conversion");
  const bool src_quantized = dtype_info(src_dtype).is_quantized;
  const bool dst_quantized = dtype_info(dst_dtype).is_quantized;
  if (is_activation_codes(src_dtype)) {  // a whole tensor of them (they have no row views)
    std::vector<float> staging(static_cast<size_t>(num_elems));
    dequantize_activations(src_dtype, src, staging.data(), num_elems);
    convert_host(DType::F32, staging.data(), dst_dtype, dst, num_elems);
    return;
  }
  if (src_quantized || dst_quantized) {
    // Go through f32: dequantise, or quantise from f32.
    std::vector<float> staging(static_cast<size_t>(num_elems));
    if (src_quantized) {
      dequantize_row(src_dtype, src, staging.data(), num_elems);
    } else {
      convert_host(src_dtype, src, DType::F32, staging.data(), num_elems);
    }
    if (dst_quantized) {
      quantize_row(dst_dtype, staging.data(), dst, num_elems);
    } else {
      convert_host(DType::F32, staging.data(), dst_dtype, dst, num_elems);
    }
    return;
  }
  if (convert_fast(src_dtype, src, dst_dtype, dst, num_elems)) return;
  for (int64_t i = 0; i < num_elems; ++i) store_from_f64(dst_dtype, dst, i, load_as_f64(src_dtype, src, i));
}

}  // namespace anvil
