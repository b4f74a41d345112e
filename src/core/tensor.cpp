#include "anvil/core/tensor.h"

#include <cstring>
#include <sstream>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"

namespace anvil {

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (const int64_t extent : shape) {
    ANVIL_CHECK(extent >= 0, "negative dimension in shape ", shape_string(shape));
    // Shapes come from files too: an overflowing product is an error, not wrapped arithmetic.
    ANVIL_CHECK(!__builtin_mul_overflow(count, extent, &count), "shape ", shape_string(shape),
                " has more elements than int64 can count");
  }
  return count;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, int64_t offset_bytes)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(contiguous_strides(shape_)),
      offset_bytes_(offset_bytes),
      dtype_(dtype) {
  const DTypeInfo& info = dtype_info(dtype);
  ANVIL_CHECK(!info.is_quantized || shape_.empty() || shape_.back() % info.block_elems == 0, "tensor of ", info.name,
              ": last dimension ", shape_.empty() ? 0 : shape_.back(), " is not a multiple of ", info.block_elems);
  ANVIL_CHECK(offset_bytes_ >= 0 && offset_bytes_ + nbytes() <= static_cast<int64_t>(storage_->bytes()), "tensor ",
              shape_string(shape_), " ", info.name, " at byte offset ", offset_bytes_, " does not fit in storage of ",
              storage_->bytes(), " bytes");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Allocator& allocator) {
  const int64_t bytes = dtype_bytes_for(dtype, shape_numel(shape));
  return {std::make_shared<Storage>(allocator, static_cast<size_t>(bytes)), shape, dtype};
}

Tensor Tensor::empty(const Shape& shape, DType dtype) { return empty(shape, dtype, CpuAllocator::instance()); }

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor tensor = empty(shape, dtype);
  std::memset(tensor.raw_data(), 0, static_cast<size_t>(tensor.nbytes()));
  return tensor;
}

Tensor Tensor::from_f32(const Shape& shape, std::span<const float> values) {
  ANVIL_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_f32: ", values.size(),
              " values for shape ", shape_string(shape));
  Tensor tensor = empty(shape, DType::F32);
  std::memcpy(tensor.raw_data(), values.data(), values.size_bytes());
  return tensor;
}

Tensor Tensor::from_i32(const Shape& shape, std::span<const int32_t> values) {
  ANVIL_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_i32: ", values.size(),
              " values for shape ", shape_string(shape));
  Tensor tensor = empty(shape, DType::I32);
  std::memcpy(tensor.raw_data(), values.data(), values.size_bytes());
  return tensor;
}

int64_t Tensor::size(int64_t axis) const {
  const int64_t rank = dim();
  if (axis < 0) axis += rank;
  ANVIL_CHECK(axis >= 0 && axis < rank, "axis ", axis, " out of range for shape ", shape_string(shape_));
  return shape_[static_cast<size_t>(axis)];
}

int64_t Tensor::stride(int64_t axis) const {
  const int64_t rank = dim();
  if (axis < 0) axis += rank;
  ANVIL_CHECK(axis >= 0 && axis < rank, "axis ", axis, " out of range for shape ", shape_string(shape_));
  return strides_[static_cast<size_t>(axis)];
}

int64_t Tensor::numel() const { return shape_numel(shape_); }

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_) || numel() <= 1; }

void* Tensor::raw_data() const {
  ANVIL_CHECK(defined(), "use of an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_bytes_;
}

Tensor Tensor::view(const Shape& shape) const {
  ANVIL_CHECK(is_contiguous(), "view of a non-contiguous tensor ", shape_string(shape_));
  Shape resolved = shape;
  int64_t known = 1;
  int inferred_axis = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      ANVIL_CHECK(inferred_axis < 0, "view: more than one -1 in ", shape_string(shape));
      inferred_axis = static_cast<int>(i);
    } else {
      known *= resolved[i];
    }
  }
  if (inferred_axis >= 0) {
    ANVIL_CHECK(known > 0 && numel() % known == 0, "view ", shape_string(shape), " of ", shape_string(shape_));
    resolved[static_cast<size_t>(inferred_axis)] = numel() / known;
  }
  ANVIL_CHECK(shape_numel(resolved) == numel(), "view ", shape_string(shape), " does not match ", shape_string(shape_));
  return {storage_, resolved, dtype_, offset_bytes_};
}

Tensor Tensor::slice(int64_t axis, int64_t begin, int64_t end) const {
  if (axis < 0) axis += dim();
  const int64_t extent = size(axis);
  ANVIL_CHECK(0 <= begin && begin <= end && end <= extent, "slice [", begin, ", ", end, ") of axis ", axis,
              " with size ", extent);
  const DTypeInfo& info = dtype_info(dtype_);
  Tensor result = *this;
  const int64_t skipped_elems = begin * strides_[static_cast<size_t>(axis)];
  ANVIL_CHECK(!is_activation_codes(dtype_) || (begin == 0 && end == extent), "slice of a ", info.name,
              " tensor: its activations are laid out per tensor and are only used whole");
  if (info.is_quantized) {
    ANVIL_CHECK(axis != dim() - 1 || (begin % info.block_elems == 0 && end % info.block_elems == 0),
                "slice of quantized tensor must keep whole blocks");
    ANVIL_CHECK(axis == dim() - 1 || is_contiguous(), "slice of a non-contiguous quantized tensor");
  }
  result.offset_bytes_ += dtype_bytes_for(dtype_, skipped_elems);
  result.shape_[static_cast<size_t>(axis)] = end - begin;
  return result;
}

Tensor Tensor::select(int64_t axis, int64_t index) const {
  if (axis < 0) axis += dim();
  Tensor result = slice(axis, index, index + 1);
  result.shape_.erase(result.shape_.begin() + axis);
  result.strides_.erase(result.strides_.begin() + axis);
  return result;
}

Tensor Tensor::transpose(int64_t axis_a, int64_t axis_b) const {
  ANVIL_CHECK(!dtype_info(dtype_).is_quantized, "transpose of a quantized tensor");
  if (axis_a < 0) axis_a += dim();
  if (axis_b < 0) axis_b += dim();
  ANVIL_CHECK(axis_a >= 0 && axis_a < dim() && axis_b >= 0 && axis_b < dim(), "transpose axes out of range");
  Tensor result = *this;
  std::swap(result.shape_[static_cast<size_t>(axis_a)], result.shape_[static_cast<size_t>(axis_b)]);
  std::swap(result.strides_[static_cast<size_t>(axis_a)], result.strides_[static_cast<size_t>(axis_b)]);
  return result;
}

Tensor Tensor::flatten_rows() const {
  ANVIL_CHECK(dim() >= 1, "flatten_rows of a scalar");
  return view({-1, shape_.back()});
}

namespace {

// Copies a strided plain-dtype tensor into a contiguous buffer, one element at a time
// (innermost axis as a run when it is unit-strided).
void gather_strided(const Tensor& src, char* dst) {
  const auto elem_bytes = static_cast<size_t>(dtype_elem_bytes(src.dtype()));
  const int64_t rank = src.dim();
  const int64_t total = src.numel();
  if (total == 0) return;
  if (rank == 0) {
    std::memcpy(dst, src.raw_data(), elem_bytes);
    return;
  }
  const int64_t inner = src.size(-1);
  const int64_t inner_stride = src.stride(-1);
  Shape index(static_cast<size_t>(rank), 0);
  const char* base = static_cast<const char*>(src.raw_data());
  for (int64_t row = 0; row < total / inner; ++row) {
    int64_t offset = 0;
    for (int64_t axis = 0; axis + 1 < rank; ++axis) offset += index[static_cast<size_t>(axis)] * src.stride(axis);
    for (int64_t i = 0; i < inner; ++i) {
      std::memcpy(dst, base + static_cast<size_t>(offset + i * inner_stride) * elem_bytes, elem_bytes);
      dst += elem_bytes;
    }
    for (int64_t axis = rank - 2; axis >= 0; --axis) {
      if (++index[static_cast<size_t>(axis)] < src.size(axis)) break;
      index[static_cast<size_t>(axis)] = 0;
    }
  }
}

void require_host(const Tensor& tensor, const char* what) {
  ANVIL_CHECK(tensor.defined(), what, " of an undefined tensor");
  ANVIL_CHECK(tensor.device().is_cpu(), what, " needs a host tensor; this one is on ", device_string(tensor.device()),
              " (copy it with Ctx::to_device first)");
}

}  // namespace

Tensor Tensor::contiguous() const {
  require_host(*this, "contiguous");
  if (is_contiguous()) return *this;
  Tensor result = empty(shape_, dtype_);
  gather_strided(*this, static_cast<char*>(result.raw_data()));
  return result;
}

Tensor Tensor::clone() const {
  require_host(*this, "clone");
  Tensor result = empty(shape_, dtype_);
  if (is_contiguous()) {
    std::memcpy(result.raw_data(), raw_data(), static_cast<size_t>(nbytes()));
  } else {
    gather_strided(*this, static_cast<char*>(result.raw_data()));
  }
  return result;
}

Tensor Tensor::to_dtype(DType dtype) const {
  const Tensor source = contiguous();
  Tensor result = empty(shape_, dtype);
  convert_host(dtype_, source.raw_data(), dtype, result.raw_data(), numel());
  return result;
}

std::vector<float> Tensor::to_f32_vector() const {
  const Tensor source = contiguous();
  std::vector<float> values(static_cast<size_t>(numel()));
  convert_host(dtype_, source.raw_data(), DType::F32, values.data(), numel());
  return values;
}

std::vector<double> Tensor::to_f64_vector() const {
  const Tensor source = contiguous();
  std::vector<double> values(static_cast<size_t>(numel()));
  convert_host(dtype_, source.raw_data(), DType::F64, values.data(), numel());
  return values;
}

std::string Tensor::to_string(int64_t max_values) const {
  std::ostringstream text;
  if (!defined()) return "Tensor(undefined)";
  text << "Tensor(" << dtype_name(dtype_) << ", " << shape_string(shape_) << ", " << device_string(device());
  if (!device().is_cpu() || numel() == 0) {
    text << ")";
    return text.str();
  }
  text << ")\n";
  const std::vector<float> values = to_f32_vector();
  const int64_t row_length = shape_.empty() ? 1 : shape_.back();
  const int64_t rows = numel() / row_length;
  for (int64_t row = 0; row < rows && row < max_values; ++row) {
    text << "  [";
    for (int64_t i = 0; i < row_length && i < max_values; ++i) {
      text << (i > 0 ? ", " : "") << values[static_cast<size_t>(row * row_length + i)];
    }
    text << (row_length > max_values ? ", ...]\n" : "]\n");
  }
  if (rows > max_values) text << "  ...\n";
  return text.str();
}

}  // namespace anvil
