// quantized_matmul's 8-bit activations (Q8Act / Q8KAct): quantize_activations against the
// quantiser as documented (anvil/ops/quantized_matmul.h), re-done here in f32 and compared
// bit for bit (codes, scales, code sums, scaled sums); quantized_matmul of them against the
// same call on the f32 x (the same bits); and the ops that write them (rms_norm,
// add_rms_norm, swiglu with such an out) against the op into f32 followed by
// quantize_activations on the same device (the same bits: a GPU kernel that writes the codes
// itself must compute the same values), and against float64 within the quantiser's half step.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "anvil/core/float_convert.h"
#include "anvil/core/quant.h"
#include "anvil/ops/activations.h"
#include "anvil/ops/quantized_matmul.h"
#include "anvil/ops/rms_norm.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

const std::vector<DType> kActivationTypes = {DType::Q8Act, DType::Q8KAct};

int block_of(DType activation_dtype) { return activation_dtype == DType::Q8Act ? kQuantBlock : kQuantSuperBlock; }

// x (M, K) f32 whose blocks of 32 have scales 2^-3 .. 2^3 apart, with exact zeros and ties.
HostArray random_x(int64_t m, int64_t k, Rng& rng) {
  HostArray x = random_array({m, k}, rng, -1.0, 1.0);
  std::uniform_real_distribution<double> exponent(-3.0, 3.0);
  for (int64_t start = 0; start < x.numel(); start += kQuantBlock) {
    const double scale = std::exp2(exponent(rng));
    for (int64_t i = start; i < start + kQuantBlock; ++i) x[i] *= scale;
  }
  x[0] = 0.0;  // a zero, and a block of zeros (amax 0)
  for (int64_t i = kQuantBlock; i < 2 * kQuantBlock && i < x.numel(); ++i) x[i] = 0.0;
  round_to(x, DType::F32);
  return x;
}

std::vector<uint8_t> bytes_of(Ctx& ctx, const Tensor& tensor) {
  const Tensor host = tensor.device().is_cpu() ? tensor : ctx.to_device(tensor, Device::cpu());
  const auto* data = static_cast<const uint8_t*>(host.raw_data());
  return {data, data + host.nbytes()};
}

float round_f16(float value) { return f16_to_f32(f32_to_f16(value)); }

// The documented quantisation of x (its f32 values), laid out as activation_layout says.
std::vector<uint8_t> expected_bytes(const HostArray& x, DType activation_dtype) {
  const int64_t count = x.numel();
  const ActivationLayout layout = activation_layout(activation_dtype, count);
  std::vector<uint8_t> bytes(static_cast<size_t>(layout.total_bytes), 0);
  const int block = block_of(activation_dtype);
  const auto put = [&](int64_t offset, auto value) { std::memcpy(bytes.data() + offset, &value, sizeof(value)); };
  for (int64_t start = 0; start < count; start += block) {
    float amax = 0.0F;
    for (int64_t i = start; i < start + block; ++i) amax = std::fmax(amax, std::fabs(static_cast<float>(x[i])));
    const float d = amax / 127.0F;
    const float inverse = amax > 0.0F ? 127.0F / amax : 0.0F;
    int32_t group_sum = 0;
    for (int64_t i = start; i < start + block; ++i) {
      const float scaled = std::fmin(127.0F, std::fmax(-127.0F, static_cast<float>(x[i]) * inverse));
      const auto code = static_cast<int8_t>(std::nearbyint(scaled));  // ties to even
      bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(code);
      group_sum += code;
      if ((i + 1) % kQuantBlock == 0) {  // a group of 32 ends
        const int64_t group = i / kQuantBlock;
        put(layout.sums_offset + group * 4, group_sum);
        if (activation_dtype == DType::Q8Act) {
          put(layout.block_sums_offset + group * 4, round_f16(d * static_cast<float>(group_sum)));
        }
        group_sum = 0;
      }
    }
    put(layout.scales_offset + (start / block) * 4, activation_dtype == DType::Q8Act ? round_f16(d) : d);
  }
  return bytes;
}

// Where two byte images differ first, as text (empty when equal).
std::string first_difference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
  if (got.size() != want.size()) return "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  int64_t differing = 0;
  int64_t first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++differing;
    }
  }
  if (differing == 0) return {};
  return std::to_string(differing) + " bytes differ, the first at " + std::to_string(first) + " (" +
         std::to_string(got[static_cast<size_t>(first)]) + " vs " + std::to_string(want[static_cast<size_t>(first)]) +
         ")";
}

TEST(OpQuantizeActivations, MatchesTheDocumentedQuantiserBitForBitOnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    if (!ctx.backend(device).supports(OpKind::QuantizeActivations, DType::F32)) continue;
    for (const DType dtype : kActivationTypes) {
      for (const Shape& shape : {Shape{1, 4096}, Shape{3, 768}, Shape{2, 2, 256}, Shape{1, 14336}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = random_x(shape.front() * (shape.size() == 3 ? shape[1] : 1), shape.back(), rng);
        x.shape = shape;
        Tensor out = ctx.empty(shape, dtype, device);
        quantize_activations(ctx, out, make_tensor_exact(ctx, x, DType::F32, device));
        EXPECT_EQ(first_difference(bytes_of(ctx, out), expected_bytes(x, dtype)), "");
        // Read back as floats, a tensor of them is scale * code: within half a step of x
        // (d = amax / 127; blocks of 32 keep d16, 127 |d - d16| <= 127 * 2^-11 d more).
        const HostArray values = to_host(ctx, out);
        const int block = block_of(dtype);
        for (int64_t start = 0; start < x.numel(); start += block) {
          double amax = 0.0;
          for (int64_t i = start; i < start + block; ++i) amax = std::max(amax, std::abs(x[i]));
          const double bound = (0.5 + 127.0 * std::exp2(-11.0)) * amax / 127.0 * (1.0 + 1e-6);
          for (int64_t i = start; i < start + block; ++i) ASSERT_LE(std::abs(values[i] - x[i]), bound) << i;
        }
      }
    }
  }
}

TEST(OpQuantizeActivations, RejectsWrongArguments) {
  Ctx& ctx = test_ctx();
  Tensor x = Tensor::zeros({2, 64}, DType::F32);
  Tensor legacy = Tensor::empty({2, 64}, DType::Q8Act);
  Tensor wrong_shape = Tensor::empty({2, 96}, DType::Q8Act);
  Tensor not_codes = Tensor::empty({2, 64}, DType::F32);
  EXPECT_THROW(quantize_activations(ctx, wrong_shape, x), Error);
  EXPECT_THROW(quantize_activations(ctx, not_codes, x), Error);
  EXPECT_THROW((void)Tensor::empty({2, 64}, DType::Q8KAct), Error);  // rows of 64 are no super-blocks
  // A Q8Act x does not serve a K-quant weight, nor f32 weights.
  quantize_activations(ctx, legacy, x);
  Tensor out = Tensor::empty({2, 3}, DType::F32);
  EXPECT_THROW(quantized_matmul(ctx, out, legacy, Tensor::zeros({3, 64}, DType::F32)), Error);
  Tensor k_weight = Tensor::zeros({3, 256}, DType::Q4_K);
  Tensor k_out = Tensor::empty({2, 3}, DType::F32);
  Tensor wide = Tensor::empty({2, 256}, DType::Q8Act);
  quantize_activations(ctx, wide, Tensor::zeros({2, 256}, DType::F32));
  EXPECT_THROW(quantized_matmul(ctx, k_out, wide, k_weight), Error);
  // They are used whole: no row slices.
  EXPECT_THROW((void)legacy.slice(0, 1, 2), Error);
}

// A weight (N, K) of `dtype` from random values.
Tensor random_weight(int64_t n, int64_t k, DType dtype, Rng& rng) {
  HostArray values = random_array({n, k}, rng);
  Tensor weight = Tensor::empty({n, k}, dtype);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < k; ++j) row[static_cast<size_t>(j)] = static_cast<float>(values[i * k + j]);
    quantize_row(dtype, row.data(), static_cast<uint8_t*>(weight.raw_data()) + i * dtype_bytes_for(dtype, k), k);
  }
  return weight;
}

TEST(OpQuantizedMatmul, PrequantisedActivationsGiveTheSameBitsAsF32OnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype :
         {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      if (!ctx.backend(device).supports(OpKind::QuantizedMatmul, dtype)) continue;
      const DType codes = *activation_dtype_for(dtype);
      // One row (the GPU's decode GEMV), a few (its small-M kernel), 20 (its tensor-core tiles).
      for (const auto& [m, n, k] : std::vector<std::array<int64_t, 3>>{{1, 301, 1536}, {3, 70, 768}, {20, 75, 512}}) {
        SCOPED_TRACE(case_label(dtype, device, {m, n, k}));
        const HostArray x = random_x(m, k, rng);
        Tensor x_tensor = make_tensor_exact(ctx, x, DType::F32, device);
        Tensor weight = random_weight(n, k, dtype, rng);
        if (!device.is_cpu()) weight = ctx.to_device(weight, device);
        Tensor from_f32 = ctx.empty({m, n}, DType::F32, device);
        quantized_matmul(ctx, from_f32, x_tensor, weight);
        Tensor x_codes = ctx.empty({m, k}, codes, device);
        quantize_activations(ctx, x_codes, x_tensor);
        Tensor from_codes = ctx.empty({m, n}, DType::F32, device);
        quantized_matmul(ctx, from_codes, x_codes, weight);
        EXPECT_EQ(first_difference(bytes_of(ctx, from_codes), bytes_of(ctx, from_f32)), "");
      }
    }
  }
}

// The op's activations against the op into f32, then quantize_activations, on one device;
// and the values against float64 `reference` within the quantiser's step and f32 rounding.
void check_codes(Ctx& ctx, const Tensor& codes, const Tensor& values, const HostArray& reference,
                 const std::string& what) {
  Tensor expected = ctx.empty(codes.shape(), codes.dtype(), codes.device());
  quantize_activations(ctx, expected, values);
  EXPECT_EQ(first_difference(bytes_of(ctx, codes), bytes_of(ctx, expected)), "") << what;
  const HostArray got = to_host(ctx, codes);
  const int block = block_of(codes.dtype());
  int64_t failures = 0;
  for (int64_t start = 0; start < reference.numel(); start += block) {
    double amax = 0.0;
    for (int64_t i = start; i < start + block; ++i) amax = std::max(amax, std::abs(reference[i]));
    // Half a step of d = amax / 127 (plus the f16 rounding of d for blocks of 32: 127 |d - d16|
    // <= 127 * 2^-11 d), and 1e-5 relative for the f32 op.
    const double bound = (0.5 + 127.0 * std::exp2(-11.0)) * amax / 127.0 + 1e-5 * amax + 1e-30;
    for (int64_t i = start; i < start + block; ++i) failures += std::abs(got[i] - reference[i]) > bound ? 1 : 0;
  }
  EXPECT_EQ(failures, 0) << what << ": values outside half a quantiser step of float64";
}

TEST(OpQuantizeActivations, NormsAndSwigluWriteThemOnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  constexpr float kEps = 1e-5F;
  for (const Device device : test_devices(ctx)) {
    if (!ctx.backend(device).supports(OpKind::QuantizeActivations, DType::F32)) continue;
    for (const DType dtype : kActivationTypes) {
      // One decode row of SmolLM2 (576) and Llama-3-8B (4096) widths, and a few rows.
      for (const Shape& shape : {Shape{1, 4096}, Shape{1, 768}, Shape{3, 1536}, Shape{2, 14336}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        const int64_t rows = shape[0];
        const int64_t channels = shape[1];
        const HostArray x = random_x(rows, channels, rng);
        const HostArray delta = random_array(shape, rng);
        const HostArray weight = random_array({channels}, rng, 0.5, 1.5);
        const Tensor weight_tensor = make_tensor_exact(ctx, weight, DType::F32, device);
        // float64: the stream after the add, its norm, and swiglu(x, delta).
        HostArray added = x;
        HostArray normed = x;
        HostArray swiglu_ref = x;
        for (int64_t r = 0; r < rows; ++r) {
          double squares = 0.0;
          for (int64_t c = 0; c < channels; ++c) {
            const int64_t i = r * channels + c;
            added[i] = static_cast<double>(static_cast<float>(x[i] + delta[i]));
            squares += added[i] * added[i];
            swiglu_ref[i] = x[i] / (1.0 + std::exp(-x[i])) * delta[i];
          }
          const double rstd = 1.0 / std::sqrt(squares / static_cast<double>(channels) + kEps);
          for (int64_t c = 0; c < channels; ++c) normed[r * channels + c] = added[r * channels + c] * rstd * weight[c];
        }
        {  // add_rms_norm: the codes and the updated stream
          Tensor stream = make_tensor_exact(ctx, x, DType::F32, device);
          Tensor stream_f32 = make_tensor_exact(ctx, x, DType::F32, device);
          const Tensor delta_tensor = make_tensor_exact(ctx, delta, DType::F32, device);
          Tensor codes = ctx.empty(shape, dtype, device);
          Tensor values = ctx.empty(shape, DType::F32, device);
          add_rms_norm(ctx, codes, stream, delta_tensor, weight_tensor, kEps);
          add_rms_norm(ctx, values, stream_f32, delta_tensor, weight_tensor, kEps);
          EXPECT_EQ(first_difference(bytes_of(ctx, stream), bytes_of(ctx, stream_f32)), "") << "the stream";
          check_codes(ctx, codes, values, normed, "add_rms_norm");
        }
        {  // rms_norm of the added stream
          const Tensor stream = make_tensor_exact(ctx, added, DType::F32, device);
          Tensor codes = ctx.empty(shape, dtype, device);
          Tensor values = ctx.empty(shape, DType::F32, device);
          Tensor no_rstd;
          rms_norm(ctx, codes, no_rstd, stream, weight_tensor, kEps);
          rms_norm(ctx, values, no_rstd, stream, weight_tensor, kEps);
          check_codes(ctx, codes, values, normed, "rms_norm");
        }
        {  // swiglu(gate = x, up = delta)
          const Tensor gate = make_tensor_exact(ctx, x, DType::F32, device);
          const Tensor up = make_tensor_exact(ctx, delta, DType::F32, device);
          Tensor codes = ctx.empty(shape, dtype, device);
          Tensor values = ctx.empty(shape, DType::F32, device);
          swiglu(ctx, codes, gate, up);
          swiglu(ctx, values, gate, up);
          check_codes(ctx, codes, values, swiglu_ref, "swiglu");
        }
      }
    }
  }
}

}  // namespace
}  // namespace anvil::testing
