#pragma once
// Tensor: a typed, strided view into reference-counted Storage.
// Strides and offsets are in elements for plain dtypes. Block-quantized tensors must be
// row-contiguous (last dimension a whole number of blocks); views may only slice rows.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "anvil/core/allocator.h"
#include "anvil/core/dtype.h"

namespace anvil {

using Shape = std::vector<int64_t>;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: used for optional arguments

  // New uninitialised contiguous tensor from `allocator`.
  static Tensor empty(const Shape& shape, DType dtype, Allocator& allocator);
  // New uninitialised contiguous host tensor.
  static Tensor empty(const Shape& shape, DType dtype);
  // New host tensor filled with zero bytes.
  static Tensor zeros(const Shape& shape, DType dtype);
  // Host f32 tensor holding `values` (size must equal the shape's element count).
  static Tensor from_f32(const Shape& shape, std::span<const float> values);
  // Host i32 tensor holding `values`.
  static Tensor from_i32(const Shape& shape, std::span<const int32_t> values);
  // A tensor over existing storage (for mmap'd weights and the like).
  Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, int64_t offset_bytes = 0);

  [[nodiscard]] bool defined() const { return storage_ != nullptr; }
  [[nodiscard]] const Shape& shape() const { return shape_; }
  [[nodiscard]] const Shape& strides() const { return strides_; }
  [[nodiscard]] int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  // Size of dimension `axis`; negative axes count from the end.
  [[nodiscard]] int64_t size(int64_t axis) const;
  [[nodiscard]] int64_t stride(int64_t axis) const;
  [[nodiscard]] int64_t numel() const;
  [[nodiscard]] int64_t nbytes() const { return dtype_bytes_for(dtype_, numel()); }
  [[nodiscard]] DType dtype() const { return dtype_; }
  [[nodiscard]] Device device() const;
  [[nodiscard]] bool is_contiguous() const;
  [[nodiscard]] const std::shared_ptr<Storage>& storage() const { return storage_; }
  [[nodiscard]] int64_t offset_bytes() const { return offset_bytes_; }

  // Pointer to the first element.
  [[nodiscard]] void* raw_data() const;
  template <typename T>
  [[nodiscard]] T* data() const {
    return static_cast<T*>(raw_data());
  }

  // Views (share storage).
  [[nodiscard]] Tensor view(const Shape& shape) const;  // contiguous only; one -1 allowed
  [[nodiscard]] Tensor slice(int64_t axis, int64_t begin, int64_t end) const;
  [[nodiscard]] Tensor select(int64_t axis, int64_t index) const;  // drops the axis
  [[nodiscard]] Tensor transpose(int64_t axis_a, int64_t axis_b) const;
  [[nodiscard]] Tensor flatten_rows() const;  // (..., C) -> (N, C); contiguous only

  // Copies (always contiguous, host unless a backend copies them elsewhere).
  [[nodiscard]] Tensor contiguous() const;
  [[nodiscard]] Tensor clone() const;
  // Host copy converted to `dtype`: any plain dtype; quantized sources are dequantised,
  // quantized targets quantised (rows a whole number of blocks).
  [[nodiscard]] Tensor to_dtype(DType dtype) const;
  // Host f32 values in logical (row-major) order.
  [[nodiscard]] std::vector<float> to_f32_vector() const;
  [[nodiscard]] std::vector<double> to_f64_vector() const;

  // "Tensor(f32, (2, 3), cpu)" plus up to `max_values` values per row, for debugging.
  [[nodiscard]] std::string to_string(int64_t max_values = 8) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_bytes_ = 0;
  DType dtype_ = DType::F32;
};

// Row-major strides for `shape`.
Shape contiguous_strides(const Shape& shape);
// Product of the dimensions.
int64_t shape_numel(const Shape& shape);

}  // namespace anvil
