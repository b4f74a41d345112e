// Elementwise add / mul / scale: forward against float64 with b broadcast over a's leading
// dims (and in place), backward against finite differences, on every backend.
#include <gtest/gtest.h>

#include <functional>

#include "anvil/ops/elementwise.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

// (a's shape, b's shape): b is a suffix of a. Sizes cross the kernels' 4096-element blocks
// with periods that do not divide them.
struct BroadcastCase {
  Shape a;
  Shape b;
};
const std::vector<BroadcastCase> kCases = {
    {{1}, {1}},          {{7}, {}},        {{3, 7}, {7}},    {{5, 33}, {5, 33}}, {{2, 3, 257}, {3, 257}},
    {{3, 5000}, {5000}}, {{9000}, {9000}}, {{1000, 7}, {7}},
};

// out[i] = op(a[i], b[i mod |b|]) in float64.
HostArray broadcast_reference(const HostArray& a, const HostArray& b, const std::function<double(double, double)>& op) {
  HostArray out{a.shape, std::vector<double>(a.values.size())};
  for (int64_t i = 0; i < a.numel(); ++i) out[i] = op(a[i], b[i % b.numel()]);
  return out;
}

double plus(double x, double y) { return x + y; }
double times(double x, double y) { return x * y; }

using BinaryOp = void (*)(Ctx&, Tensor&, const Tensor&, const Tensor&);

// Runs `op` over every case and dtype (b in a's dtype, or f32 as a bias often is), out of
// place and in place (out aliasing a).
void check_binary_forward(BinaryOp op, double (*reference)(double, double)) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const BroadcastCase& c : kCases) {
        for (const DType b_dtype : {dtype, DType::F32}) {
          for (const bool in_place : {false, true}) {
            SCOPED_TRACE(case_label(dtype, device, c.a) + ", b " + shape_string(c.b) + " " +
                         std::string(dtype_name(b_dtype)) + (in_place ? ", in place" : ""));
            HostArray a = random_array(c.a, rng, -2.0, 2.0);
            HostArray b = random_array(c.b, rng, -2.0, 2.0);
            Tensor a_tensor = make_tensor(ctx, a, dtype, device);
            Tensor b_tensor = make_tensor(ctx, b, b_dtype, device);
            const HostArray ref = broadcast_reference(a, b, reference);
            Tensor out = in_place ? a_tensor : ctx.empty(c.a, dtype, device);
            op(ctx, out, a_tensor, b_tensor);
            expect_close(to_host(ctx, out), ref, tolerance_for(dtype), "out");
          }
        }
      }
    }
  }
}

TEST(OpElementwise, AddMatchesFloat64) { check_binary_forward(&add, &plus); }

TEST(OpElementwise, MulMatchesFloat64) { check_binary_forward(&mul, &times); }

TEST(OpElementwise, ScaleMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const BroadcastCase& c : kCases) {
        SCOPED_TRACE(case_label(dtype, device, c.a));
        HostArray a = random_array(c.a, rng, -2.0, 2.0);
        Tensor a_tensor = make_tensor(ctx, a, dtype, device);
        Tensor out = ctx.empty(c.a, dtype, device);
        const double factor = -0.3125;
        scale(ctx, out, a_tensor, static_cast<float>(factor));
        HostArray ref = a;
        for (double& value : ref.values) value *= factor;
        expect_close(to_host(ctx, out), ref, tolerance_for(dtype), "out");
      }
    }
  }
}

// Smaller cases for finite differences (cost grows with the square of the size); the last
// has more rows than the kernel's 64 row blocks of 32, so partial sums are combined.
const std::vector<BroadcastCase> kBackwardCases = {
    {{1}, {1}}, {{7}, {}}, {{3, 7}, {7}}, {{4, 5}, {4, 5}}, {{2, 3, 9}, {3, 9}}, {{2100, 1}, {1}},
};

TEST(OpElementwise, AddBackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const BroadcastCase& c : kBackwardCases) {
        SCOPED_TRACE(case_label(dtype, device, c.a) + ", b " + shape_string(c.b));
        HostArray a = random_array(c.a, rng);
        HostArray b = random_array(c.b, rng);
        HostArray grad_out = random_array(c.a, rng);
        Tensor grad_out_tensor = make_tensor(ctx, grad_out, dtype, device);
        Tensor grad_a = ctx.empty(c.a, dtype, device);
        Tensor grad_b = ctx.empty(c.b, DType::F32, device);
        add_backward(ctx, grad_a, grad_b, grad_out_tensor);
        const HostArray grad_a_ref =
            finite_difference([&](const HostArray& probe) { return broadcast_reference(probe, b, plus); }, a, grad_out);
        const HostArray grad_b_ref =
            finite_difference([&](const HostArray& probe) { return broadcast_reference(a, probe, plus); }, b, grad_out);
        // grad_b is f32: the sum runs in f64 and is rounded once, so f32's tolerance holds.
        expect_close(to_host(ctx, grad_a), grad_a_ref, tolerance_for(dtype), "grad_a");
        expect_close(to_host(ctx, grad_b), grad_b_ref, tolerance_for(DType::F32), "grad_b");
      }
    }
  }
}

TEST(OpElementwise, MulBackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const BroadcastCase& c : kBackwardCases) {
        SCOPED_TRACE(case_label(dtype, device, c.a) + ", b " + shape_string(c.b));
        HostArray a = random_array(c.a, rng);
        HostArray b = random_array(c.b, rng);
        HostArray grad_out = random_array(c.a, rng);
        Tensor a_tensor = make_tensor(ctx, a, dtype, device);
        Tensor b_tensor = make_tensor(ctx, b, dtype, device);
        Tensor grad_out_tensor = make_tensor(ctx, grad_out, dtype, device);
        Tensor grad_a = ctx.empty(c.a, dtype, device);
        Tensor grad_b = ctx.empty(c.b, dtype, device);
        mul_backward(ctx, grad_a, grad_b, grad_out_tensor, a_tensor, b_tensor);
        const HostArray grad_a_ref = finite_difference(
            [&](const HostArray& probe) { return broadcast_reference(probe, b, times); }, a, grad_out);
        const HostArray grad_b_ref = finite_difference(
            [&](const HostArray& probe) { return broadcast_reference(a, probe, times); }, b, grad_out);
        expect_close(to_host(ctx, grad_a), grad_a_ref, tolerance_for(dtype), "grad_a");
        expect_close(to_host(ctx, grad_b), grad_b_ref, tolerance_for(dtype), "grad_b");
      }
    }
  }
}

// Shapes too large for finite differences: many rows and columns wider than one kernel
// block. The gradient of a linear op is exact, so the float64 sum over rows is the reference:
// grad_b[j] = sum_r g[r, j] (add) and sum_r g[r, j] * a[r, j] (mul).
TEST(OpElementwise, BackwardSumsLargeShapes) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      // {2000, 64}: rows of whole 16-byte vectors in every dtype (the CUDA fast path).
      for (const BroadcastCase& c :
           {BroadcastCase{{3000, 5}, {5}}, BroadcastCase{{3, 4500}, {4500}}, BroadcastCase{{2000, 64}, {64}}}) {
        SCOPED_TRACE(case_label(dtype, device, c.a) + ", b " + shape_string(c.b));
        HostArray a = random_array(c.a, rng);
        HostArray b = random_array(c.b, rng);
        HostArray grad_out = random_array(c.a, rng);
        Tensor a_tensor = make_tensor(ctx, a, dtype, device);
        Tensor b_tensor = make_tensor(ctx, b, dtype, device);
        Tensor grad_out_tensor = make_tensor(ctx, grad_out, dtype, device);
        HostArray add_ref{c.b, std::vector<double>(b.values.size(), 0.0)};
        HostArray mul_ref = add_ref;
        for (int64_t i = 0; i < a.numel(); ++i) {
          add_ref[i % b.numel()] += grad_out[i];
          mul_ref[i % b.numel()] += grad_out[i] * a[i];
        }
        Tensor none;
        Tensor grad_b = ctx.empty(c.b, DType::F32, device);
        add_backward(ctx, none, grad_b, grad_out_tensor);
        expect_close(to_host(ctx, grad_b), add_ref, tolerance_for(DType::F32), "add grad_b");
        mul_backward(ctx, none, grad_b, grad_out_tensor, a_tensor, b_tensor);
        expect_close(to_host(ctx, grad_b), mul_ref, tolerance_for(DType::F32), "mul grad_b");
      }
    }
  }
}

TEST(OpElementwise, BackwardSkipsUndefinedGrads) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  HostArray a = random_array({6, 5}, rng);
  HostArray b = random_array({5}, rng);
  HostArray grad_out = random_array({6, 5}, rng);
  Tensor a_tensor = make_tensor(ctx, a, DType::F32, Device::cpu());
  Tensor b_tensor = make_tensor(ctx, b, DType::F32, Device::cpu());
  Tensor grad_out_tensor = make_tensor(ctx, grad_out, DType::F32, Device::cpu());
  Tensor none;
  Tensor grad_b = Tensor::empty({5}, DType::F32);
  mul_backward(ctx, none, grad_b, grad_out_tensor, a_tensor, b_tensor);
  const HostArray grad_b_ref =
      finite_difference([&](const HostArray& probe) { return broadcast_reference(a, probe, times); }, b, grad_out);
  expect_close(to_host(ctx, grad_b), grad_b_ref, tolerance_for(DType::F32), "grad_b");
  Tensor grad_a = Tensor::empty({6, 5}, DType::F32);
  add_backward(ctx, grad_a, none, grad_out_tensor);
  expect_close(to_host(ctx, grad_a), grad_out, tolerance_for(DType::F32), "grad_a");
}

TEST(OpElementwise, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor a = Tensor::zeros({4, 8}, DType::F32);
  Tensor out = Tensor::zeros({4, 8}, DType::F32);
  Tensor b_not_suffix = Tensor::zeros({4}, DType::F32);
  EXPECT_THROW(add(ctx, out, a, b_not_suffix), Error);
  EXPECT_THROW(mul(ctx, out, a, b_not_suffix), Error);
  Tensor b_too_big = Tensor::zeros({2, 4, 8}, DType::F32);
  EXPECT_THROW(add(ctx, out, a, b_too_big), Error);
  Tensor b = Tensor::zeros({8}, DType::F32);
  Tensor out_wrong = Tensor::zeros({4, 7}, DType::F32);
  EXPECT_THROW(add(ctx, out_wrong, a, b), Error);
  EXPECT_THROW(scale(ctx, out_wrong, a, 2.0F), Error);
  Tensor ints = Tensor::zeros({4, 8}, DType::I32);
  EXPECT_THROW(add(ctx, out, ints, b), Error);
  EXPECT_THROW(scale(ctx, out, ints, 2.0F), Error);
  const Tensor strided = Tensor::zeros({8, 4}, DType::F32).transpose(0, 1);
  EXPECT_THROW(add(ctx, out, strided, b), Error);

  Tensor grad_a = Tensor::zeros({4, 8}, DType::F32);
  Tensor grad_b_wrong = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(add_backward(ctx, grad_a, grad_b_wrong, out), Error);
  EXPECT_THROW(mul_backward(ctx, grad_a, grad_b_wrong, out, a, b), Error);
  Tensor grad_a_wrong = Tensor::zeros({8, 4}, DType::F32);
  Tensor grad_b = Tensor::zeros({8}, DType::F32);
  EXPECT_THROW(add_backward(ctx, grad_a_wrong, grad_b, out), Error);
}

}  // namespace
}  // namespace anvil::testing

namespace anvil::testing {
namespace {

// Backend::fill_zero (Ctx::zeros): every byte of random data cleared, sizes past the CPU's
// 1 MiB chunks included, on every backend.
TEST(OpFillZero, ClearsEveryElement) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const Shape& shape : {Shape{1}, Shape{7, 33}, Shape{300000}}) {
      SCOPED_TRACE(case_label(DType::F32, device, shape));
      HostArray values = random_array(shape, rng, 1.0, 2.0);
      Tensor tensor = make_tensor(ctx, values, DType::F32, device);
      ctx.backend(device).fill_zero(tensor);
      const HostArray got = to_host(ctx, tensor);
      for (int64_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got[i], 0.0) << "element " << i;
      const HostArray fresh = to_host(ctx, ctx.zeros(shape, DType::BF16, device));
      for (int64_t i = 0; i < fresh.numel(); ++i) ASSERT_EQ(fresh[i], 0.0) << "zeros element " << i;
    }
  }
}

}  // namespace
}  // namespace anvil::testing
