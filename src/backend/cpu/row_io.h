#pragma once
// Row access in f32 for kernels that compute in f32 whatever the storage dtype:
// f32 rows are used in place, bf16/f16 rows go through a per-thread scratch row.
#include <cstdint>
#include <vector>

#include "anvil/core/convert.h"
#include "anvil/core/tensor.h"

namespace anvil::cpu {

// Pointer to row `row` (of length `length`) of a contiguous tensor, as raw bytes.
inline char* row_bytes(const Tensor& tensor, int64_t row, int64_t length) {
  return static_cast<char*>(tensor.raw_data()) + dtype_bytes_for(tensor.dtype(), row * length);
}

// Reads row `row` of `tensor` (viewed as (rows, length)) as f32. Returns a pointer that is
// either into the tensor (f32) or into `scratch` (resized as needed).
inline const float* load_row(const Tensor& tensor, int64_t row, int64_t length, std::vector<float>& scratch) {
  if (tensor.dtype() == DType::F32) return reinterpret_cast<const float*>(row_bytes(tensor, row, length));
  scratch.resize(static_cast<size_t>(length));
  convert_host(tensor.dtype(), row_bytes(tensor, row, length), DType::F32, scratch.data(), length);
  return scratch.data();
}

// A place to write row `row` as f32: into the tensor (f32) or into `scratch`; call
// store_row afterwards to convert the scratch back.
inline float* output_row(Tensor& tensor, int64_t row, int64_t length, std::vector<float>& scratch) {
  if (tensor.dtype() == DType::F32) return reinterpret_cast<float*>(row_bytes(tensor, row, length));
  scratch.resize(static_cast<size_t>(length));
  return scratch.data();
}

// Finishes an output_row write (no-op for f32).
inline void store_row(Tensor& tensor, int64_t row, int64_t length, const float* values) {
  if (tensor.dtype() == DType::F32) return;
  convert_host(DType::F32, values, tensor.dtype(), row_bytes(tensor, row, length), length);
}

}  // namespace anvil::cpu
