// GELU (tanh), SiLU, SwiGLU: forward against float64, backward against finite differences,
// every backend.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numbers>

#include "anvil/ops/activations.h"
#include "cpu/cpu_backend.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

// Odd sizes, and sizes that cross the CPU kernel's 4096-element chunks.
const std::vector<Shape> kShapes = {{1}, {7}, {3, 33}, {2, 5, 257}, {2, 4099}};

// Applies f to every element, in float64.
template <typename Fn>
HostArray map_reference(const HostArray& x, Fn f) {
  HostArray y = x;
  for (double& value : y.values) value = f(value);
  return y;
}

double gelu_reference(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

double silu_reference(double x) { return x / (1.0 + std::exp(-x)); }

HostArray swiglu_reference(const HostArray& gate, const HostArray& up) {
  HostArray y = gate;
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = silu_reference(gate[i]) * up[i];
  return y;
}

// d sum(dout * f(x)) / dx for an elementwise f: finite differences one element at a time, so
// large tensors stay cheap (the full harness call would be quadratic).
HostArray pointwise_finite_difference(const std::function<double(double, int64_t)>& f, const HostArray& x,
                                      const HostArray& dout) {
  HostArray gradient = x;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const HostArray point{{1}, {x[i]}};
    const HostArray weight{{1}, {dout[i]}};
    const auto element = [&](const HostArray& probe) { return HostArray{{1}, {f(probe[0], i)}}; };
    gradient[i] = finite_difference(element, point, weight)[0];
  }
  return gradient;
}

// Runs a one-input activation and its backward on every case.
using UnaryOp = void (*)(Ctx&, Tensor&, const Tensor&);
using UnaryBackward = void (*)(Ctx&, Tensor&, const Tensor&, const Tensor&);

void check_unary_forward(UnaryOp op, double (*reference)(double), double low, double high) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = random_array(shape, rng, low, high);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        op(ctx, out, x_tensor);
        expect_close(to_host(ctx, out), map_reference(x, reference), tolerance_for(dtype), "out");
      }
    }
  }
}

void check_unary_backward(UnaryBackward op_backward, double (*reference)(double)) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = random_array(shape, rng, -5.0, 5.0);
        HostArray dout = random_array(shape, rng);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
        Tensor dx = ctx.empty(shape, dtype, device);
        op_backward(ctx, dx, dout_tensor, x_tensor);
        const HostArray dx_ref =
            pointwise_finite_difference([&](double value, int64_t) { return reference(value); }, x, dout);
        Tolerance tolerance = gradient_tolerance(dtype);
        expect_close(to_host(ctx, dx), dx_ref, tolerance, "dx");
      }
    }
  }
}

TEST(OpGelu, ForwardMatchesFloat64) { check_unary_forward(gelu, gelu_reference, -6.0, 6.0); }
TEST(OpGelu, BackwardMatchesFiniteDifferences) { check_unary_backward(gelu_backward, gelu_reference); }
TEST(OpSilu, ForwardMatchesFloat64) { check_unary_forward(silu, silu_reference, -8.0, 8.0); }
TEST(OpSilu, BackwardMatchesFiniteDifferences) { check_unary_backward(silu_backward, silu_reference); }

TEST(OpActivations, ExtremeInputsStayAccurate) {
  // Far tails: exp overflows in f32 on one side; results must stay finite and right.
  Ctx& ctx = test_ctx();
  for (const Device device : test_devices(ctx)) {
    HostArray x{{10}, {-100.0, -40.0, -20.0, -5.0, -0.5, 0.0, 0.5, 5.0, 40.0, 100.0}};
    HostArray dout{{10}, {1.0, -1.0, 0.5, 2.0, 1.0, -1.0, 1.0, 0.25, 1.0, -1.0}};
    SCOPED_TRACE(case_label(DType::F32, device, x.shape));
    Tensor x_tensor = make_tensor(ctx, x, DType::F32, device);
    Tensor dout_tensor = make_tensor(ctx, dout, DType::F32, device);
    Tensor out = ctx.empty(x.shape, DType::F32, device);
    Tensor dx = ctx.empty(x.shape, DType::F32, device);
    const Tolerance tolerance{1e-5, 1e-6, 0.0};
    gelu(ctx, out, x_tensor);
    expect_close(to_host(ctx, out), map_reference(x, gelu_reference), tolerance, "gelu");
    gelu_backward(ctx, dx, dout_tensor, x_tensor);
    expect_close(to_host(ctx, dx),
                 pointwise_finite_difference([](double value, int64_t) { return gelu_reference(value); }, x, dout),
                 {1e-4, 1e-6, 0.0}, "gelu dx");
    silu(ctx, out, x_tensor);
    expect_close(to_host(ctx, out), map_reference(x, silu_reference), tolerance, "silu");
    silu_backward(ctx, dx, dout_tensor, x_tensor);
    expect_close(to_host(ctx, dx),
                 pointwise_finite_difference([](double value, int64_t) { return silu_reference(value); }, x, dout),
                 {1e-4, 1e-6, 0.0}, "silu dx");
  }
}

TEST(OpSwiglu, ForwardMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray gate = random_array(shape, rng, -6.0, 6.0);
        HostArray up = random_array(shape, rng, -2.0, 2.0);
        Tensor gate_tensor = make_tensor(ctx, gate, dtype, device);
        Tensor up_tensor = make_tensor(ctx, up, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        swiglu(ctx, out, gate_tensor, up_tensor);
        expect_close(to_host(ctx, out), swiglu_reference(gate, up), tolerance_for(dtype), "out");
      }
    }
  }
}

// Rows of 40: the CPU's vector SiLU (ggml's, for llama.cpp's bits) on the first 32 of each
// row, libm's expf on the rest; far tails included. The AVX2 and AVX-512 kernels agree to the bit.
TEST(OpSwiglu, WideRangeRowsMatchFloat64AndAgreeAcrossCpuKernels) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const Shape shape = {3, 40};
  HostArray gate = random_array(shape, rng, -30.0, 30.0);
  for (const double extreme : {-200.0, -100.0, -88.0, -40.0, 40.0, 88.0, 100.0, 200.0, 0.0, -1e-3}) {
    gate[static_cast<int64_t>(rng() % 120)] = extreme;
  }
  HostArray up = random_array(shape, rng, -2.0, 2.0);
  for (const Device device : test_devices(ctx)) {
    SCOPED_TRACE(case_label(DType::F32, device, shape));
    Tensor out = ctx.empty(shape, DType::F32, device);
    swiglu(ctx, out, make_tensor(ctx, gate, DType::F32, device), make_tensor(ctx, up, DType::F32, device));
    expect_close(to_host(ctx, out), swiglu_reference(gate, up), {1e-5, 1e-6, 0.0}, "out");
  }
  const CpuFeatures detected = CpuFeatures::detect();
  if (best_isa(detected) != CpuIsa::Avx512) return;
  CpuFeatures avx2_only;
  avx2_only.avx2 = detected.avx2;
  avx2_only.fma = detected.fma;
  avx2_only.f16c = detected.f16c;
  ThreadPool pool(2);
  cpu::CpuBackend avx2(pool, avx2_only);
  cpu::CpuBackend avx512(pool, detected);
  const Tensor gate_tensor = make_tensor(ctx, gate, DType::F32, Device::cpu());
  const Tensor up_tensor = make_tensor(ctx, up, DType::F32, Device::cpu());
  Tensor out_avx2 = Tensor::zeros(shape, DType::F32);
  Tensor out_avx512 = Tensor::zeros(shape, DType::F32);
  avx2.swiglu(out_avx2, gate_tensor, up_tensor);
  avx512.swiglu(out_avx512, gate_tensor, up_tensor);
  EXPECT_EQ(out_avx2.to_f32_vector(), out_avx512.to_f32_vector());
}

TEST(OpSwiglu, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray gate = random_array(shape, rng, -5.0, 5.0);
        HostArray up = random_array(shape, rng, -2.0, 2.0);
        HostArray dout = random_array(shape, rng);
        Tensor gate_tensor = make_tensor(ctx, gate, dtype, device);
        Tensor up_tensor = make_tensor(ctx, up, dtype, device);
        Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
        Tensor dgate = ctx.empty(shape, dtype, device);
        Tensor dup = ctx.empty(shape, dtype, device);
        swiglu_backward(ctx, dgate, dup, dout_tensor, gate_tensor, up_tensor);
        const HostArray dgate_ref = pointwise_finite_difference(
            [&](double value, int64_t i) { return silu_reference(value) * up[i]; }, gate, dout);
        const HostArray dup_ref = pointwise_finite_difference(
            [&](double value, int64_t i) { return silu_reference(gate[i]) * value; }, up, dout);
        Tolerance tolerance = gradient_tolerance(dtype);
        expect_close(to_host(ctx, dgate), dgate_ref, tolerance, "dgate");
        expect_close(to_host(ctx, dup), dup_ref, tolerance, "dup");
      }
    }
  }
}

TEST(OpActivations, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor x = Tensor::zeros({4, 8}, DType::F32);
  Tensor out = Tensor::zeros({4, 8}, DType::F32);
  Tensor wrong = Tensor::zeros({4, 7}, DType::F32);
  Tensor ids = Tensor::zeros({4, 8}, DType::I32);
  Tensor none;
  EXPECT_THROW(gelu(ctx, wrong, x), Error);
  EXPECT_THROW(gelu(ctx, out, ids), Error);
  EXPECT_THROW(gelu(ctx, out, none), Error);
  EXPECT_THROW(gelu_backward(ctx, out, wrong, x), Error);
  EXPECT_THROW(silu(ctx, ids, x), Error);
  EXPECT_THROW(silu_backward(ctx, out, x, wrong), Error);
  EXPECT_THROW(swiglu(ctx, out, x, wrong), Error);
  EXPECT_THROW(swiglu(ctx, out, ids, x), Error);
  Tensor dup = Tensor::zeros({4, 8}, DType::F32);
  EXPECT_THROW(swiglu_backward(ctx, out, none, x, x, x), Error);
  EXPECT_THROW(swiglu_backward(ctx, out, dup, x, x, wrong), Error);
  EXPECT_THROW(swiglu_backward(ctx, out, dup, ids, x, x), Error);
}

}  // namespace
}  // namespace anvil::testing
