// Tensor: shapes, strides, views, slices, copies and conversions on the host.
#include "anvil/core/tensor.h"

#include <gtest/gtest.h>

#include <numeric>

#include "anvil/core/error.h"

namespace anvil {
namespace {

Tensor iota_tensor(const Shape& shape) {
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  std::iota(values.begin(), values.end(), 0.0F);
  return Tensor::from_f32(shape, values);
}

TEST(Tensor, ShapeStridesAndAlignment) {
  Tensor tensor = Tensor::empty({2, 3, 5}, DType::F32);
  EXPECT_EQ(tensor.numel(), 30);
  EXPECT_EQ(tensor.strides(), (Shape{15, 5, 1}));
  EXPECT_EQ(tensor.nbytes(), 120);
  EXPECT_TRUE(tensor.is_contiguous());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tensor.raw_data()) % CpuAllocator::kAlignment, 0U);
  EXPECT_EQ(tensor.size(-1), 5);
  EXPECT_THROW((void)tensor.size(3), Error);
}

TEST(Tensor, ViewSliceSelectTranspose) {
  Tensor tensor = iota_tensor({4, 6});
  Tensor rows = tensor.slice(0, 1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 6}));
  EXPECT_EQ(rows.to_f32_vector()[0], 6.0F);
  Tensor cols = tensor.slice(1, 2, 5);
  EXPECT_FALSE(cols.is_contiguous());
  EXPECT_EQ(cols.contiguous().to_f32_vector(), (std::vector<float>{2, 3, 4, 8, 9, 10, 14, 15, 16, 20, 21, 22}));
  Tensor transposed = tensor.transpose(0, 1);
  EXPECT_EQ(transposed.shape(), (Shape{6, 4}));
  EXPECT_EQ(transposed.contiguous().to_f32_vector()[1], 6.0F);
  EXPECT_EQ(tensor.select(0, 2).to_f32_vector()[0], 12.0F);
  EXPECT_EQ(tensor.view({-1}).shape(), (Shape{24}));
  EXPECT_EQ(tensor.view({3, -1}).shape(), (Shape{3, 8}));
  EXPECT_THROW((void)tensor.view({5, -1}), Error);
  EXPECT_THROW((void)cols.view({12}), Error);
  EXPECT_THROW((void)tensor.slice(0, 3, 5), Error);
}

TEST(Tensor, ViewsShareStorageClonesDoNot) {
  Tensor tensor = iota_tensor({2, 2});
  Tensor view = tensor.view({4});
  Tensor copy = tensor.clone();
  view.data<float>()[0] = 42.0F;
  EXPECT_EQ(tensor.to_f32_vector()[0], 42.0F);
  EXPECT_EQ(copy.to_f32_vector()[0], 0.0F);
}

TEST(Tensor, ToDtypeRoundTrips) {
  Tensor tensor = Tensor::from_f32({4}, std::vector<float>{1.5F, -2.25F, 65504.0F, 1e-8F});
  EXPECT_EQ(tensor.to_dtype(DType::F16).to_f32_vector(), (std::vector<float>{1.5F, -2.25F, 65504.0F, 0.0F}));
  EXPECT_EQ(tensor.to_dtype(DType::I32).to_f32_vector(), (std::vector<float>{2.0F, -2.0F, 65504.0F, 0.0F}));
  EXPECT_EQ(tensor.to_dtype(DType::BF16).to_f32_vector()[1], -2.25F);
}

TEST(Tensor, ToStringShowsTypeShapeAndValues) {
  const std::string text = iota_tensor({2, 3}).to_string();
  EXPECT_NE(text.find("Tensor(f32, (2, 3), cpu)"), std::string::npos);
  EXPECT_NE(text.find("[3, 4, 5]"), std::string::npos);
}

TEST(Tensor, StorageBoundsAreChecked) {
  auto storage = std::make_shared<Storage>(CpuAllocator::instance(), 16);
  EXPECT_THROW(Tensor(storage, {5}, DType::F32), Error);
  EXPECT_NO_THROW(Tensor(storage, {2}, DType::F32, 8));
  EXPECT_THROW(Tensor(storage, {2}, DType::F32, 12), Error);
}

}  // namespace
}  // namespace anvil
