// Softmax over the last dim: forward against float64 (including large values and masked -inf
// entries), backward against finite differences, every backend.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "anvil/ops/softmax.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

// y[r, c] = exp(x[r, c]) / sum_c exp(x[r, c]), in float64 with the row max subtracted
// (-inf entries give exactly 0).
HostArray softmax_reference(const HostArray& x) {
  const int64_t channels = x.shape.back();
  HostArray y = x;
  for (int64_t row = 0; row < x.numel() / channels; ++row) {
    const double* in = x.values.data() + row * channels;
    double row_max = kMinusInf;
    for (int64_t c = 0; c < channels; ++c) row_max = std::max(row_max, in[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < channels; ++c) sum += std::exp(in[c] - row_max);
    for (int64_t c = 0; c < channels; ++c) y[row * channels + c] = std::exp(in[c] - row_max) / sum;
  }
  return y;
}

// Which entries are masked: about a third of the entries of every third row, never a row's
// first entry (a fully masked row is undefined).
std::vector<bool> random_mask(const Shape& shape, Rng& rng) {
  const int64_t channels = shape.back();
  std::vector<bool> masked(static_cast<size_t>(shape_numel(shape)), false);
  std::bernoulli_distribution coin(1.0 / 3.0);
  for (int64_t row = 2; row < shape_numel(shape) / channels; row += 3) {
    for (int64_t c = 1; c < channels; ++c) masked[static_cast<size_t>(row * channels + c)] = coin(rng);
  }
  return masked;
}

// Values in [-4, 4), with every third row (from row 1) scaled to [-100, 100) (exp would overflow f32 without the max
// shift).
HostArray softmax_input(const Shape& shape, Rng& rng) {
  const int64_t channels = shape.back();
  HostArray x = random_array(shape, rng, -4.0, 4.0);
  for (int64_t row = 1; row < x.numel() / channels; row += 3) {
    for (int64_t c = 0; c < channels; ++c) x[row * channels + c] *= 25.0;
  }
  return x;
}

HostArray with_mask(HostArray x, const std::vector<bool>& masked) {
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (masked[static_cast<size_t>(i)]) x[i] = kMinusInf;
  }
  return x;
}

const std::vector<Shape> kShapes = {{1, 1}, {3, 7}, {17, 64}, {5, 257}, {2, 3, 33}, {4, 5000}};

TEST(OpSoftmax, ForwardMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = with_mask(softmax_input(shape, rng), random_mask(shape, rng));
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        softmax(ctx, out, x_tensor);
        const HostArray out_ref = softmax_reference(x);
        const HostArray got = to_host(ctx, out);
        expect_close(got, out_ref, tolerance_for(dtype), "out");
        for (int64_t i = 0; i < x.numel(); ++i) {
          if (x[i] == kMinusInf) {
            ASSERT_EQ(got[i], 0.0) << "masked entry " << i;
          }
        }
        // In place: out aliases x.
        softmax(ctx, x_tensor, x_tensor);
        expect_close(to_host(ctx, x_tensor), out_ref, tolerance_for(dtype), "out in place");
      }
    }
  }
}

TEST(OpSoftmax, BackwardMatchesFloat64) {
  // dx = y * (dout - sum(dout * y)) in float64 from exactly the y and dout the op sees. With y
  // stored in bf16/f16 this is the only fair reference for nearly one-hot rows: rounding y
  // near 1 moves dx by ~ulp * |dout|, far more than the true gradient's size there.
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        const int64_t channels = shape.back();
        HostArray y = softmax_reference(with_mask(softmax_input(shape, rng), random_mask(shape, rng)));
        HostArray dout = random_array(shape, rng);
        Tensor y_tensor = make_tensor(ctx, y, dtype, device);
        Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
        Tensor dx = ctx.empty(shape, dtype, device);
        softmax_backward(ctx, dx, dout_tensor, y_tensor);
        HostArray dx_ref = y;
        for (int64_t row = 0; row < y.numel() / channels; ++row) {
          double dot = 0.0;
          for (int64_t c = 0; c < channels; ++c) dot += dout[row * channels + c] * y[row * channels + c];
          for (int64_t c = 0; c < channels; ++c) {
            dx_ref[row * channels + c] = y[row * channels + c] * (dout[row * channels + c] - dot);
          }
        }
        expect_close(to_host(ctx, dx), dx_ref, tolerance_for(dtype), "dx");
      }
    }
  }
}

TEST(OpSoftmax, BackwardMatchesFiniteDifferences) {
  // The saved y is kept in f32 (the op takes any float dtype per argument) so the comparison
  // with the exact gradient is not dominated by the rounding of y; dout and dx use the dtype.
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : {Shape{1, 1}, Shape{3, 7}, Shape{6, 33}, Shape{2, 2, 9}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        // Masked entries are held at -inf by the probe, so differences are taken only in the
        // finite entries (their gradient is 0).
        HostArray x = softmax_input(shape, rng);
        const std::vector<bool> masked = random_mask(shape, rng);
        HostArray dout = random_array(shape, rng);
        round_to(x, dtype);
        Tensor x_tensor = make_tensor_exact(ctx, with_mask(x, masked), dtype, device);
        Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
        Tensor y = ctx.empty(shape, DType::F32, device);
        softmax(ctx, y, x_tensor);
        Tensor dx = ctx.empty(shape, dtype, device);
        softmax_backward(ctx, dx, dout_tensor, y);

        const HostArray dx_ref = finite_difference(
            [&](const HostArray& probe) { return softmax_reference(with_mask(probe, masked)); }, x, dout);
        Tolerance tolerance = gradient_tolerance(dtype);
        expect_close(to_host(ctx, dx), dx_ref, tolerance, "dx");
      }
    }
  }
}

TEST(OpSoftmax, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor x = Tensor::zeros({4, 8}, DType::F32);
  Tensor out = Tensor::zeros({4, 8}, DType::F32);
  Tensor wrong = Tensor::zeros({4, 7}, DType::F32);
  Tensor ids = Tensor::zeros({4, 8}, DType::I32);
  Tensor empty_rows = Tensor::zeros({4, 0}, DType::F32);
  Tensor none;
  EXPECT_THROW(softmax(ctx, wrong, x), Error);
  EXPECT_THROW(softmax(ctx, out, ids), Error);
  EXPECT_THROW(softmax(ctx, out, none), Error);
  EXPECT_THROW(softmax(ctx, empty_rows, empty_rows), Error);
  EXPECT_THROW(softmax_backward(ctx, out, wrong, x), Error);
  EXPECT_THROW(softmax_backward(ctx, out, x, ids), Error);
  EXPECT_THROW(softmax_backward(ctx, wrong, x, x), Error);
}

}  // namespace
}  // namespace anvil::testing
