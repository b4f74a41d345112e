// Matmul: forward against float64 (every dtype, transpose combination, batched and shared
// weights, M = 1), backward against finite differences, on every backend. The portable
// CPU path (operands widened to f32) is checked too, through a context forced to scalar.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "anvil/ops/matmul.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

// One problem: out (batch..., M, N) = op(a) (batch..., M, K) @ op(b) (K, N), b batched or shared.
struct MatmulCase {
  Shape batch;
  int64_t m;
  int64_t n;
  int64_t k;
  bool shared_b = false;
};

struct Transposes {
  bool a;
  bool b;
};
const std::vector<Transposes> kTransposes = {{false, false}, {false, true}, {true, false}, {true, true}};

Shape with_matrix(const Shape& batch, int64_t rows, int64_t cols) {
  Shape shape = batch;
  shape.push_back(rows);
  shape.push_back(cols);
  return shape;
}

Shape a_shape(const MatmulCase& c, Transposes t) { return with_matrix(c.batch, t.a ? c.k : c.m, t.a ? c.m : c.k); }
Shape b_shape(const MatmulCase& c, Transposes t) {
  return with_matrix(c.shared_b ? Shape{} : c.batch, t.b ? c.n : c.k, t.b ? c.k : c.n);
}
Shape out_shape(const MatmulCase& c) { return with_matrix(c.batch, c.m, c.n); }

// out = alpha * op(a) @ op(b) + beta * c0 (c0 may be absent: beta ignored), in float64.
HostArray matmul_reference(const MatmulCase& c, Transposes t, const HostArray& a, const HostArray& b,
                           const HostArray* c0, double alpha, double beta) {
  HostArray out{out_shape(c), std::vector<double>(static_cast<size_t>(shape_numel(out_shape(c))))};
  const int64_t entries = shape_numel(c.batch);
  for (int64_t e = 0; e < entries; ++e) {
    const int64_t a_base = e * c.m * c.k;
    const int64_t b_base = c.shared_b ? 0 : e * c.k * c.n;
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        double sum = 0.0;
        for (int64_t p = 0; p < c.k; ++p) {
          const double a_value = a[a_base + (t.a ? p * c.m + i : i * c.k + p)];
          const double b_value = b[b_base + (t.b ? j * c.k + p : p * c.n + j)];
          sum += a_value * b_value;
        }
        const int64_t index = (e * c.m + i) * c.n + j;
        out[index] = alpha * sum + (c0 != nullptr ? beta * (*c0)[index] : 0.0);
      }
    }
  }
  return out;
}

// f32 accumulation error grows like sqrt(K) relative to the output's rms (rounding errors
// of the running sum add up as a random walk), so the absolute allowance scales with it.
Tolerance matmul_tolerance(DType out_dtype, int64_t reduction_length) {
  Tolerance tolerance = tolerance_for(out_dtype);
  tolerance.atol_scale = std::max(1.0, std::sqrt(static_cast<double>(reduction_length)) / 8.0);
  return tolerance;
}

std::string trans_label(Transposes t, DType out_dtype, float alpha, float beta) {
  return std::string("trans_a=") + (t.a ? "1" : "0") + " trans_b=" + (t.b ? "1" : "0") +
         " out=" + std::string(dtype_name(out_dtype)) + " alpha=" + std::to_string(alpha) +
         " beta=" + std::to_string(beta);
}

const std::vector<MatmulCase> kForwardCases = {
    {{}, 1, 1, 1},          {{}, 7, 13, 5},           {{}, 33, 65, 17}, {{3}, 17, 5, 9},
    {{3}, 17, 5, 9, true},  {{2, 3}, 5, 7, 11, true}, {{}, 1, 37, 300}, {{}, 1, 100, 64},
    {{}, 100, 300, 40},     {{}, 45, 70, 300},        {{3}, 2, 37, 45}, {{4}, 3, 19, 70, true},
    {{2}, 1, 50, 33, true}, {{}, 16, 70, 300},        {{}, 5, 300, 33},
};

// Runs every forward case on `ctx`.
void check_forward(Ctx& ctx, Rng& rng) {
  int64_t counter = 0;
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const MatmulCase& c : kForwardCases) {
        for (const Transposes t : kTransposes) {
          std::vector<DType> out_dtypes = {DType::F32};
          if (dtype != DType::F32) out_dtypes.push_back(dtype);
          ++counter;
          for (size_t out_index = 0; out_index < out_dtypes.size(); ++out_index) {
            const DType out_dtype = out_dtypes[out_index];
            // Alternate between a plain product (out full of NaN: beta 0 must not read it)
            // and a scaled accumulation into random out.
            const bool accumulate = (counter + static_cast<int64_t>(out_index)) % 2 == 1;
            const float alpha = accumulate ? 0.75F : 1.0F;
            const float beta = accumulate ? -1.25F : 0.0F;
            SCOPED_TRACE(case_label(dtype, device, out_shape(c)) + ", " + trans_label(t, out_dtype, alpha, beta));
            HostArray a = random_array(a_shape(c, t), rng);
            HostArray b = random_array(b_shape(c, t), rng);
            HostArray c0 = random_array(out_shape(c), rng);
            if (!accumulate) std::fill(c0.values.begin(), c0.values.end(), std::numeric_limits<double>::quiet_NaN());
            Tensor a_tensor = make_tensor(ctx, a, dtype, device);
            Tensor b_tensor = make_tensor(ctx, b, dtype, device);
            Tensor out = make_tensor(ctx, c0, out_dtype, device);
            matmul(ctx, out, a_tensor, b_tensor, t.a, t.b, alpha, beta);
            const HostArray ref = matmul_reference(c, t, a, b, accumulate ? &c0 : nullptr, alpha, beta);
            expect_close(to_host(ctx, out), ref, matmul_tolerance(out_dtype, c.k), "out");
          }
        }
      }
    }
  }
}

TEST(OpMatmul, ForwardMatchesFloat64) {
  Rng rng(test_seed());
  check_forward(test_ctx(), rng);
}

// A context whose CPU backend is limited to the portable kernels (ANVIL_CPU_ISA=scalar).
Ctx& portable_ctx() {
  static const std::unique_ptr<Ctx> ctx = [] {
    const char* previous = std::getenv("ANVIL_CPU_ISA");
    const std::optional<std::string> saved = previous ? std::optional<std::string>(previous) : std::nullopt;
    setenv("ANVIL_CPU_ISA", "scalar", 1);
    auto made = std::make_unique<Ctx>(CtxOptions{.num_threads = 2, .use_cuda = false});
    if (saved) {
      setenv("ANVIL_CPU_ISA", saved->c_str(), 1);
    } else {
      unsetenv("ANVIL_CPU_ISA");
    }
    return made;
  }();
  return *ctx;
}

TEST(OpMatmul, PortableCpuPathMatchesFloat64) {
  Rng rng(test_seed());
  check_forward(portable_ctx(), rng);
}

const std::vector<MatmulCase> kBackwardCases = {
    {{}, 1, 1, 1},        {{}, 7, 13, 5},          {{}, 1, 9, 7},    {{3}, 4, 6, 5},
    {{2}, 5, 3, 4, true}, {{2, 2}, 3, 4, 6, true}, {{}, 13, 40, 17},
};

TEST(OpMatmul, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  int64_t counter = 0;
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const MatmulCase& c : kBackwardCases) {
        for (const Transposes t : kTransposes) {
          // Overwrite grads stored in a's dtype, or accumulate into f32 grads.
          const bool accumulate = (counter++ % 2) == 1;
          const DType grad_dtype = accumulate ? DType::F32 : dtype;
          SCOPED_TRACE(case_label(dtype, device, out_shape(c)) + ", " + trans_label(t, grad_dtype, 1.0F, 0.0F) +
                       (accumulate ? " accumulate" : ""));
          HostArray a = random_array(a_shape(c, t), rng);
          HostArray b = random_array(b_shape(c, t), rng);
          HostArray grad_out = random_array(out_shape(c), rng);
          HostArray grad_a_start = random_array(a.shape, rng);
          HostArray grad_b_start = random_array(b.shape, rng);
          Tensor a_tensor = make_tensor(ctx, a, dtype, device);
          Tensor b_tensor = make_tensor(ctx, b, dtype, device);
          Tensor grad_out_tensor = make_tensor(ctx, grad_out, dtype, device);
          Tensor grad_a = make_tensor(ctx, grad_a_start, grad_dtype, device);
          Tensor grad_b = make_tensor(ctx, grad_b_start, grad_dtype, device);
          matmul_backward(ctx, grad_a, grad_b, grad_out_tensor, a_tensor, b_tensor, t.a, t.b, accumulate);

          HostArray grad_a_ref = finite_difference(
              [&](const HostArray& probe) { return matmul_reference(c, t, probe, b, nullptr, 1.0, 0.0); }, a, grad_out);
          HostArray grad_b_ref = finite_difference(
              [&](const HostArray& probe) { return matmul_reference(c, t, a, probe, nullptr, 1.0, 0.0); }, b, grad_out);
          if (accumulate) {
            for (int64_t i = 0; i < grad_a_ref.numel(); ++i) grad_a_ref[i] += grad_a_start[i];
            for (int64_t i = 0; i < grad_b_ref.numel(); ++i) grad_b_ref[i] += grad_b_start[i];
          }
          // grad_a sums over N; grad_b over M (times the batch entries when b is shared).
          const int64_t b_reduction = c.m * (c.shared_b ? shape_numel(c.batch) : 1);
          expect_close(to_host(ctx, grad_a), grad_a_ref, matmul_tolerance(grad_dtype, c.n), "grad_a");
          expect_close(to_host(ctx, grad_b), grad_b_ref, matmul_tolerance(grad_dtype, b_reduction), "grad_b");
        }
      }
    }
  }
}

// Only grad_b, of a shared bf16 weight under a transposed a: the per-entry sum runs in an
// f32 scratch and is rounded once.
TEST(OpMatmul, BackwardSharedWeightOnlyGradB) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const MatmulCase c{{3}, 3, 5, 4, true};
  const Transposes t{true, false};
  for (const Device device : test_devices(ctx)) {
    SCOPED_TRACE(case_label(DType::BF16, device, out_shape(c)));
    HostArray a = random_array(a_shape(c, t), rng);
    HostArray b = random_array(b_shape(c, t), rng);
    HostArray grad_out = random_array(out_shape(c), rng);
    Tensor a_tensor = make_tensor(ctx, a, DType::BF16, device);
    Tensor b_tensor = make_tensor(ctx, b, DType::BF16, device);
    Tensor grad_out_tensor = make_tensor(ctx, grad_out, DType::BF16, device);
    Tensor grad_a;
    Tensor grad_b = ctx.empty(b.shape, DType::BF16, device);
    matmul_backward(ctx, grad_a, grad_b, grad_out_tensor, a_tensor, b_tensor, t.a, t.b);
    const HostArray grad_b_ref = finite_difference(
        [&](const HostArray& probe) { return matmul_reference(c, t, a, probe, nullptr, 1.0, 0.0); }, b, grad_out);
    expect_close(to_host(ctx, grad_b), grad_b_ref, tolerance_for(DType::BF16), "grad_b");
  }
}

TEST(OpMatmul, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor a = Tensor::zeros({4, 8}, DType::F32);
  Tensor b = Tensor::zeros({8, 3}, DType::F32);
  Tensor out = Tensor::zeros({4, 3}, DType::F32);
  matmul(ctx, out, a, b);  // the good call works

  Tensor b_wrong_k = Tensor::zeros({7, 3}, DType::F32);
  EXPECT_THROW(matmul(ctx, out, a, b_wrong_k), Error);
  EXPECT_THROW(matmul(ctx, out, a, b, true, false), Error);  // op(a) would be (8, 4)
  Tensor b_bf16 = Tensor::zeros({8, 3}, DType::BF16);
  EXPECT_THROW(matmul(ctx, out, a, b_bf16), Error);
  Tensor out_wrong = Tensor::zeros({4, 4}, DType::F32);
  EXPECT_THROW(matmul(ctx, out_wrong, a, b), Error);
  Tensor a_bf16 = Tensor::zeros({4, 8}, DType::BF16);
  Tensor out_f16 = Tensor::zeros({4, 3}, DType::F16);
  EXPECT_THROW(matmul(ctx, out_f16, a_bf16, b_bf16), Error);  // out must be f32 or a's dtype
  Tensor a_int = Tensor::zeros({4, 8}, DType::I32);
  EXPECT_THROW(matmul(ctx, out, a_int, b), Error);
  Tensor vector = Tensor::zeros({8}, DType::F32);
  EXPECT_THROW(matmul(ctx, out, vector, b), Error);
  Tensor a_batched = Tensor::zeros({2, 4, 8}, DType::F32);
  Tensor b_other_batch = Tensor::zeros({3, 8, 3}, DType::F32);
  Tensor out_batched = Tensor::zeros({2, 4, 3}, DType::F32);
  EXPECT_THROW(matmul(ctx, out_batched, a_batched, b_other_batch), Error);
  Tensor b_batched = Tensor::zeros({2, 8, 3}, DType::F32);
  EXPECT_THROW(matmul(ctx, out, a, b_batched), Error);  // a 2-D with a batched b
  const Tensor a_strided = Tensor::zeros({8, 4}, DType::F32).transpose(0, 1);
  EXPECT_THROW(matmul(ctx, out, a_strided, b), Error);

  Tensor grad_a_wrong = Tensor::zeros({8, 4}, DType::F32);
  Tensor grad_b = Tensor::zeros({8, 3}, DType::F32);
  EXPECT_THROW(matmul_backward(ctx, grad_a_wrong, grad_b, out, a, b), Error);
  Tensor grad_a = Tensor::zeros({4, 8}, DType::F32);
  EXPECT_THROW(matmul_backward(ctx, grad_a, grad_b, out_wrong, a, b), Error);
}

}  // namespace
}  // namespace anvil::testing
