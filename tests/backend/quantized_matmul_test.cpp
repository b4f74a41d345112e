// quantized_matmul: every weight type, on every CPU kernel path, against float64 matmuls
// with the dequantised weights.
//
// Tolerances. The op quantises each row of x to 8 bits per block (32 elements for
// Q8_0..Q5_1, 256 for the K-quants): d = amax / 127, code = round(x * 127 / amax), so each
// element moves by at most d / 2 (plus an f32 rounding of x * 127 / amax, < 2^-16 * d).
// Blocks of 32 keep d rounded to f16 (d16) and, for Q4_1 / Q5_1 weights, multiply the
// block min m by s = fp16(d * sum(codes)) rather than by d16 * sum(codes), as ggml's
// Q8_0 / Q8_1 activations do: the element error grows by |d - d16| * 127 and each block of
// a min format adds m * (s - d16 * sum(codes)), which check 2 models exactly.
// 1. Against the exact x the error of an output is at most sum_k |w_k| * d(k) / 2, d(k) the
//    scale of k's activation block; we allow that times 1.001 plus the f32 rounding bound of
//    check 2. This holds for any input, but it is loose (the real error is a random walk).
// 2. Against x quantised here in f32 exactly as documented (xq = d * code), only f32
//    rounding remains: each block adds a few rounded products and sums, each off by at most
//    2^-24 of a partial sum bounded by S = sum_k (|w_k| + max|w| of k's weight block) * |xq_k|
//    (the max term covers Q4_1-style mins, whose term may cancel the code term). We allow
//    (4 * K / 32 + 32) * 2^-24 * S. This check is tight: a dropped scale, a swapped nibble
//    pair or a lost high bit in any block shows up orders of magnitude above it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "anvil/core/float_convert.h"
#include "anvil/core/quant.h"
#include "anvil/ops/quantized_matmul.h"
#include "cpu/cpu_backend.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

const std::vector<DType> kQuantTypes = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                        DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

int64_t block_of(DType dtype) { return dtype_info(dtype).block_elems; }
// The activation block the op uses for a weight type.
int64_t act_block_of(DType dtype) { return block_of(dtype) == kQuantSuperBlock ? kQuantSuperBlock : kQuantBlock; }

// K values: 1 block, odd and even block counts, up to 1024.
std::vector<int64_t> k_values(DType dtype) {
  if (block_of(dtype) == kQuantSuperBlock) return {256, 768, 1024};
  return {32, 96, 416, 576, 1024};
}

// A weight (N, K) quantised to `dtype` from random rows with varied scale and offset (so
// block mins matter), and its dequantised values.
struct QuantWeight {
  Tensor tensor;
  HostArray values;  // (N, K) dequantised
};

QuantWeight random_weight(int64_t n, int64_t k, DType dtype, Rng& rng) {
  std::uniform_real_distribution<float> uniform(-1.0F, 1.0F);
  QuantWeight weight{Tensor::empty({n, k}, dtype), HostArray{{n, k}, std::vector<double>(static_cast<size_t>(n * k))}};
  const int64_t row_bytes = dtype_bytes_for(dtype, k);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    const float scale = std::exp2(2.0F * uniform(rng));
    for (int64_t j = 0; j < k; ++j) {
      const float offset = (j % 64 == 0) ? 0.5F * uniform(rng) : 0.0F;  // steps between blocks
      row[static_cast<size_t>(j)] = scale * (uniform(rng) + offset);
    }
    auto* blocks = static_cast<uint8_t*>(weight.tensor.raw_data()) + i * row_bytes;
    quantize_row(dtype, row.data(), blocks, k);
    dequantize_row(dtype, blocks, row.data(), k);
    for (int64_t j = 0; j < k; ++j) weight.values[i * k + j] = row[static_cast<size_t>(j)];
  }
  return weight;
}

// x (M, K) f32 with block-to-block scale changes, so per-block activation scales matter.
HostArray random_x(int64_t m, int64_t k, Rng& rng) {
  HostArray x = random_array({m, k}, rng, -1.0, 1.0);
  std::uniform_real_distribution<double> exponent(-3.0, 3.0);
  for (int64_t start = 0; start < x.numel(); start += kQuantBlock) {
    const double scale = std::exp2(exponent(rng));
    for (int64_t i = start; i < start + kQuantBlock; ++i) x[i] *= scale;
  }
  round_to(x, DType::F32);
  return x;
}

// The documented activation quantisation, in f32: xq = d * code per block (d16 for blocks
// of 32), and per block of 32 the min-term error s - d16 * sum(codes).
struct QuantizedX {
  HostArray values;     // (M, K) xq
  HostArray half_step;  // (M, K) bound on |x - xq| of the element
  HostArray min_error;  // (M, K / 32) s - d16 * sum(codes); zero for K-quant blocks
};

float round_f16(float value) { return f16_to_f32(f32_to_f16(value)); }

QuantizedX quantize_x(const HostArray& x, int64_t block) {
  QuantizedX out{x, x, HostArray{{x.shape[0], x.shape[1] / kQuantBlock}, {}}};
  out.min_error.values.assign(static_cast<size_t>(x.numel() / kQuantBlock), 0.0);
  for (int64_t start = 0; start < x.numel(); start += block) {
    float amax = 0.0F;
    for (int64_t i = start; i < start + block; ++i) amax = std::fmax(amax, std::fabs(static_cast<float>(x[i])));
    const float d = amax / 127.0F;
    const float stored_d = block == kQuantBlock ? round_f16(d) : d;
    const float inverse = amax > 0.0F ? 127.0F / amax : 0.0F;
    int code_sum = 0;
    for (int64_t i = start; i < start + block; ++i) {
      const float code = std::nearbyint(std::fmin(127.0F, std::fmax(-127.0F, static_cast<float>(x[i]) * inverse)));
      code_sum += static_cast<int>(code);
      out.values[i] = static_cast<double>(stored_d) * code;
      out.half_step[i] = 0.5 * d + std::abs(static_cast<double>(d) - stored_d) * 127.0;
    }
    if (block == kQuantBlock) {
      const float s = round_f16(d * static_cast<float>(code_sum));
      out.min_error[start / block] = static_cast<double>(s) - static_cast<double>(stored_d) * code_sum;
    }
  }
  return out;
}

// The min m of every block of 32 of a Q4_1 / Q5_1 weight (N, K / 32), from its bytes (the
// f16 after d); zero for other types.
HostArray block_mins(const QuantWeight& weight, DType dtype) {
  const int64_t n = weight.values.shape[0];
  const int64_t blocks = weight.values.shape[1] / kQuantBlock;
  HostArray mins{{n, blocks}, std::vector<double>(static_cast<size_t>(n * blocks), 0.0)};
  if (dtype != DType::Q4_1 && dtype != DType::Q5_1) return mins;
  const auto* bytes = static_cast<const uint8_t*>(weight.tensor.raw_data());
  const int64_t block_bytes = dtype_bytes_for(dtype, kQuantBlock);
  for (int64_t i = 0; i < n * blocks; ++i) {
    uint16_t half = 0;
    std::memcpy(&half, bytes + i * block_bytes + 2, sizeof(half));
    mins[i] = f16_to_f32(half);
  }
  return mins;
}

// out[m, n] = sum_b mins[n, b] * min_error[m, b] (or its absolute value when `magnitude`).
HostArray min_term(const HostArray& min_error, const HostArray& mins, bool magnitude) {
  const int64_t m = min_error.shape[0];
  const int64_t n = mins.shape[0];
  const int64_t blocks = mins.shape[1];
  HostArray out{{m, n}, std::vector<double>(static_cast<size_t>(m * n), 0.0)};
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t b = 0; b < blocks; ++b) {
        const double term = mins[j * blocks + b] * min_error[i * blocks + b];
        out[i * n + j] += magnitude ? std::abs(term) : term;
      }
    }
  }
  return out;
}

// out[m, n] = sum_k w[n, k] * x[m, k] in float64, with per-output bounds from `terms`.
HostArray matmul_reference(const HostArray& x, const HostArray& w) {
  const int64_t k = x.shape[1];
  const int64_t m = x.shape[0];
  const int64_t n = w.shape[0];
  HostArray out{{m, n}, std::vector<double>(static_cast<size_t>(m * n))};
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int64_t l = 0; l < k; ++l) sum += x[i * k + l] * w[j * k + l];
      out[i * n + j] = sum;
    }
  }
  return out;
}

// |w| and, per weight block, max |w| added to each element's |w| (the bound of check 2).
HostArray abs_weight(const HostArray& w, int64_t block, bool add_block_max) {
  HostArray out = w;
  for (int64_t start = 0; start < w.numel(); start += block) {
    double block_max = 0.0;
    for (int64_t i = start; i < start + block; ++i) block_max = std::max(block_max, std::abs(w[i]));
    for (int64_t i = start; i < start + block; ++i) out[i] = std::abs(w[i]) + (add_block_max ? block_max : 0.0);
  }
  return out;
}

HostArray abs_array(HostArray a) {
  for (double& value : a.values) value = std::abs(value);
  return a;
}

void expect_within(const HostArray& got, const HostArray& ref, const HostArray& bound, const std::string& what) {
  ASSERT_EQ(got.shape, ref.shape) << what;
  int64_t failures = 0;
  int64_t worst = -1;
  double worst_ratio = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double ratio = std::abs(got[i] - ref[i]) / bound[i];
    if (!(ratio <= 1.0)) {
      ++failures;
      if (worst < 0 || !(ratio <= worst_ratio)) {
        worst = i;
        worst_ratio = ratio;
      }
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << ref.numel() << " outputs out of bounds; worst at "
                         << worst << ": got " << (worst >= 0 ? got[worst] : 0.0) << ", expected "
                         << (worst >= 0 ? ref[worst] : 0.0) << ", bound " << (worst >= 0 ? bound[worst] : 0.0);
}

// Checks `got` = x @ w^T against both references (see the file comment).
void check_output(const HostArray& got, const HostArray& x, const QuantWeight& weight, DType dtype,
                  const std::string& what) {
  const int64_t k = x.shape[1];
  const QuantizedX xq = quantize_x(x, act_block_of(dtype));
  const double rounding = static_cast<double>(4 * k / kQuantBlock + 32) * std::exp2(-24.0);
  const HostArray rounding_bound =
      matmul_reference(abs_array(xq.values), abs_weight(weight.values, block_of(dtype), true));
  HostArray exact_bound = matmul_reference(xq.half_step, abs_weight(weight.values, block_of(dtype), false));
  const HostArray mins = block_mins(weight, dtype);
  const HostArray min_bound = min_term(xq.min_error, mins, true);
  HostArray quantised_ref = matmul_reference(xq.values, weight.values);
  const HostArray min_correction = min_term(xq.min_error, mins, false);
  HostArray tight_bound = rounding_bound;
  for (int64_t i = 0; i < got.numel(); ++i) {
    tight_bound[i] = rounding * rounding_bound[i] + 1e-30;
    exact_bound[i] = 1.001 * (exact_bound[i] + min_bound[i]) + tight_bound[i];
    quantised_ref[i] += min_correction[i];
  }
  expect_within(got, matmul_reference(x, weight.values), exact_bound, what + " vs exact x");
  expect_within(got, quantised_ref, tight_bound, what + " vs quantised x");
}

// The CPU kernel families this machine can run, each as the features that select it.
struct KernelPath {
  std::string name;
  CpuFeatures features;
};

std::vector<KernelPath> kernel_paths() {
  const CpuFeatures detected = CpuFeatures::detect();
  CpuFeatures scalar;
  CpuFeatures avx2 = scalar;
  avx2.avx2 = detected.avx2;
  avx2.fma = detected.fma;
  avx2.f16c = detected.f16c;
  CpuFeatures avx512_plain = detected;
  avx512_plain.avx512_vnni = false;
  std::vector<KernelPath> paths = {{"scalar", scalar}};
  if (best_isa(avx2) == CpuIsa::Avx2) paths.push_back({"avx2", avx2});
  if (best_isa(detected) == CpuIsa::Avx512) paths.push_back({"avx512", avx512_plain});
  if (best_isa(detected) == CpuIsa::Avx512 && detected.avx512_vnni) paths.push_back({"avx512_vnni", detected});
  return paths;
}

HostArray run_on(cpu::CpuBackend& backend, const HostArray& x, const QuantWeight& weight) {
  Tensor x_tensor = make_tensor_exact(test_ctx(), x, DType::F32, Device::cpu());
  Tensor out = Tensor::zeros({x.shape[0], weight.values.shape[0]}, DType::F32);
  backend.quantized_matmul(out, x_tensor, weight.tensor);
  return to_host(test_ctx(), out);
}

TEST(OpQuantizedMatmul, EveryKernelPathMatchesFloat64) {
  Rng rng(test_seed());
  ThreadPool pool(2);
  for (const KernelPath& path : kernel_paths()) {
    cpu::CpuBackend backend(pool, path.features);
    for (const DType dtype : kQuantTypes) {
      for (const int64_t k : k_values(dtype)) {
        for (const int64_t n : {1, 7, 64}) {
          for (const int64_t m : {1, 3, 17}) {
            const std::string label = path.name + " " + case_label(dtype, Device::cpu(), {m, n, k});
            SCOPED_TRACE(label);
            const QuantWeight weight = random_weight(n, k, dtype, rng);
            const HostArray x = random_x(m, k, rng);
            check_output(run_on(backend, x, weight), x, weight, dtype, label);
          }
        }
      }
    }
  }
}

TEST(OpQuantizedMatmul, PublicOpMatchesFloat64OnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : kQuantTypes) {
      if (!ctx.backend(device).supports(OpKind::QuantizedMatmul, dtype)) continue;
      const int64_t k = 2 * kQuantSuperBlock;
      SCOPED_TRACE(case_label(dtype, device, {5, 33, k}));
      const QuantWeight weight = random_weight(33, k, dtype, rng);
      HostArray x = random_x(5 * 1, k, rng);
      x.shape = {1, 5, k};  // leading dims are flattened
      Tensor x_tensor = make_tensor_exact(ctx, x, DType::F32, device);
      Tensor weight_tensor = device.is_cpu() ? weight.tensor : ctx.to_device(weight.tensor, device);
      Tensor out = ctx.empty({1, 5, 33}, DType::F32, device);
      quantized_matmul(ctx, out, x_tensor, weight_tensor);
      HostArray got = to_host(ctx, out);
      got.shape = {5, 33};
      x.shape = {5, k};
      check_output(got, x, weight, dtype, "public op");
    }
  }
}

// Many activation rows (prefill): backends may switch to a tiled kernel (CUDA: tensor
// cores from 16 rows). M and N are not multiples of 64 and K of the legacy types is not a
// multiple of 256, so partial tiles and a partial last K chunk are covered.
TEST(OpQuantizedMatmul, ManyRowsMatchFloat64OnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : kQuantTypes) {
      if (!ctx.backend(device).supports(OpKind::QuantizedMatmul, dtype)) continue;
      const int64_t k = block_of(dtype) == kQuantSuperBlock ? 3 * kQuantSuperBlock : 13 * kQuantBlock;
      const int64_t m = 70;
      const int64_t n = 75;
      SCOPED_TRACE(case_label(dtype, device, {m, n, k}));
      const QuantWeight weight = random_weight(n, k, dtype, rng);
      const HostArray x = random_x(m, k, rng);
      Tensor x_tensor = make_tensor_exact(ctx, x, DType::F32, device);
      Tensor weight_tensor = device.is_cpu() ? weight.tensor : ctx.to_device(weight.tensor, device);
      Tensor out = ctx.empty({m, n}, DType::F32, device);
      quantized_matmul(ctx, out, x_tensor, weight_tensor);
      check_output(to_host(ctx, out), x, weight, dtype, "many rows");
    }
  }
}

// f16/bf16 weights also take x in their own dtype (a norm's output made for the GEMM): the
// same as that x in f32, on every device, for a GEMV and a GEMM-sized M.
TEST(OpQuantizedMatmul, HalfInputsOfHalfWeightsMatchFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : {DType::BF16, DType::F16}) {
      for (const Shape& shape : {Shape{3, 9, 4096}, Shape{40, 75, 1000}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = random_array({shape[0], shape[2]}, rng);
        HostArray w = random_array({shape[1], shape[2]}, rng);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor w_tensor = make_tensor(ctx, w, dtype, device);
        Tensor out = ctx.empty({shape[0], shape[1]}, DType::F32, device);
        quantized_matmul(ctx, out, x_tensor, w_tensor);
        expect_close(to_host(ctx, out), matmul_reference(x, w), tolerance_for(DType::F32), "out");
      }
    }
  }
}

// Decode shapes (few activation rows): outputs short enough that the GPU splits each
// weight row over several warps, long enough that it does not, and rows of several
// chunks of weight blocks with a partial last one (legacy K = 33 blocks, K-quant K = 10
// super-blocks); 9 rows take two activation row tiles; N = 301 ends the GPU's M = 1 GEMV
// (4 weight rows per block) in a partial block; legacy rows of 133 blocks take its
// long-row blocks (compiled for 8 per SM).
TEST(OpQuantizedMatmul, DecodeShapesMatchFloat64OnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : kQuantTypes) {
      if (!ctx.backend(device).supports(OpKind::QuantizedMatmul, dtype)) continue;
      const bool super = block_of(dtype) == kQuantSuperBlock;
      const int64_t short_k = super ? 10 * kQuantSuperBlock : 33 * kQuantBlock;
      const int64_t long_k = super ? 17 * kQuantSuperBlock : 133 * kQuantBlock;  // > 128 legacy blocks per row
      // Whole 256-element units as in real models' rows (K = 4096, 14336 are such): 72, 320
      // and 384 legacy blocks per row.
      constexpr int64_t kUnit = 8 * kQuantBlock;
      for (const auto& [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 300, short_k},
                                                                                      {1, 301, short_k},
                                                                                      {9, 300, short_k},
                                                                                      {1, 5000, short_k},
                                                                                      {2, 8200, short_k},
                                                                                      {1, 301, long_k},
                                                                                      {1, 301, 9 * kUnit},
                                                                                      {1, 77, 40 * kUnit},
                                                                                      {1, 33, 48 * kUnit}}) {
        SCOPED_TRACE(case_label(dtype, device, {m, n, k}));
        const QuantWeight weight = random_weight(n, k, dtype, rng);
        const HostArray x = random_x(m, k, rng);
        Tensor x_tensor = make_tensor_exact(ctx, x, DType::F32, device);
        Tensor weight_tensor = device.is_cpu() ? weight.tensor : ctx.to_device(weight.tensor, device);
        Tensor out = ctx.empty({m, n}, DType::F32, device);
        quantized_matmul(ctx, out, x_tensor, weight_tensor);
        check_output(to_host(ctx, out), x, weight, dtype, "decode");
      }
    }
  }
}

// Calls queued back to back with nothing read in between, alternating weights of two types
// and two row lengths, as a decode step queues its projections: on the GPU each call's
// activation quantiser is a programmatic dependent of the GEMV before it and its scratch may
// be the memory that GEMV still reads, so a quantiser that wrote before that GEMV ended
// would corrupt it. Every output is checked afterwards.
TEST(OpQuantizedMatmul, BackToBackDecodeCallsMatchFloat64OnEveryDevice) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const auto& [first, second] : std::vector<std::pair<DType, DType>>{
             {DType::Q4_0, DType::Q8_0}, {DType::Q4_1, DType::Q4_K}, {DType::Q6_K, DType::Q4_1}}) {
      if (!ctx.backend(device).supports(OpKind::QuantizedMatmul, first) ||
          !ctx.backend(device).supports(OpKind::QuantizedMatmul, second)) {
        continue;
      }
      const auto k_for = [](DType dtype, int64_t units) {
        return units * 8 * kQuantBlock * (dtype == DType::Q8_0 ? 2 : 1);
      };
      const std::vector<QuantWeight> weights = {random_weight(1500, k_for(first, 9), first, rng),
                                                random_weight(700, k_for(second, 16), second, rng)};
      const std::vector<DType> dtypes = {first, second};
      std::vector<Tensor> device_weights;
      device_weights.reserve(weights.size());
      for (const QuantWeight& weight : weights) {
        device_weights.push_back(device.is_cpu() ? weight.tensor : ctx.to_device(weight.tensor, device));
      }
      constexpr int kCalls = 8;
      std::vector<HostArray> xs;
      std::vector<Tensor> outs;
      xs.reserve(kCalls);
      outs.reserve(kCalls);
      for (int call = 0; call < kCalls; ++call) {
        const QuantWeight& weight = weights[static_cast<size_t>(call % 2)];
        xs.push_back(random_x(1, weight.values.shape[1], rng));
        Tensor x_tensor = make_tensor_exact(ctx, xs.back(), DType::F32, device);
        outs.push_back(ctx.empty({1, weight.values.shape[0]}, DType::F32, device));
        quantized_matmul(ctx, outs.back(), x_tensor, device_weights[static_cast<size_t>(call % 2)]);
      }
      for (int call = 0; call < kCalls; ++call) {
        const auto w = static_cast<size_t>(call % 2);
        SCOPED_TRACE(case_label(dtypes[w], device, {1, weights[w].values.shape[0], weights[w].values.shape[1]}) +
                     " call " + std::to_string(call));
        check_output(to_host(ctx, outs[static_cast<size_t>(call)]), xs[static_cast<size_t>(call)], weights[w],
                     dtypes[w], "back to back");
      }
    }
  }
}

TEST(OpQuantizedMatmul, PlainWeightsMatchFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      // (M, N, K): K = 33 takes the GPU's element path, K = 96 / 4096 its 16-byte vector path;
      // from 16 rows the GPU runs f16/bf16 weights as a tensor-core GEMM (cuBLASLt) on x
      // rounded to the weight's dtype (M = 17 and 70, odd N, K not a multiple of 64).
      // M = 1 on the GPU: 2 weight rows per block below N = 8192, 4 from there (9 and 8194
      // end in a partial block).
      for (const Shape& shape : {Shape{1, 7, 33}, Shape{17, 64, 96}, Shape{1, 9, 4096}, Shape{70, 75, 4000},
                                 Shape{3, 300, 2056}, Shape{1, 5000, 264}, Shape{1, 9000, 64}, Shape{1, 8194, 136}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = random_array({shape[0], shape[2]}, rng);
        HostArray w = random_array({shape[1], shape[2]}, rng);
        Tensor x_tensor = make_tensor(ctx, x, DType::F32, device);
        Tensor w_tensor = make_tensor(ctx, w, dtype, device);
        Tensor out = ctx.empty({shape[0], shape[1]}, DType::F32, device);
        quantized_matmul(ctx, out, x_tensor, w_tensor);
        if (!device.is_cpu() && dtype != DType::F32 && shape[0] >= 16) round_to(x, dtype);
        expect_close(to_host(ctx, out), matmul_reference(x, w), tolerance_for(DType::F32), "out");
      }
    }
  }
}

// Every output comes from one kernel call whatever the split over threads, and a row's
// result does not depend on the other rows of the batch: bitwise equal.
TEST(OpQuantizedMatmul, ResultsDoNotDependOnThreadCountOrBatch) {
  Rng rng(test_seed());
  ThreadPool one_thread(1);
  ThreadPool three_threads(3);
  for (const KernelPath& path : kernel_paths()) {
    cpu::CpuBackend serial(one_thread, path.features);
    cpu::CpuBackend parallel(three_threads, path.features);
    for (const DType dtype : {DType::Q4_0, DType::Q4_K, DType::Q4_1, DType::Q8_0}) {
      SCOPED_TRACE(path.name + " " + std::string(dtype_name(dtype)));
      const QuantWeight weight = random_weight(301, 512, dtype, rng);
      const HostArray x = random_x(9, 512, rng);
      const HostArray a = run_on(serial, x, weight);
      const HostArray b = run_on(parallel, x, weight);
      EXPECT_EQ(a.values, b.values);
      const HostArray last_row{{1, 512}, std::vector<double>(x.values.end() - 512, x.values.end())};
      const HostArray alone = run_on(parallel, last_row, weight);
      EXPECT_EQ(alone.values, std::vector<double>(a.values.end() - 301, a.values.end()));
    }
  }
}

// Q8_0 and Q4_1 are summed in ggml-cpu's order (quantized_matmul_kernels.h) by every CPU
// kernel family, single-row, multi-row and weight-pair kernels alike: the same bits on
// every path. (That this order is llama.cpp's is checked against llama.cpp itself by
// tests/e2e/llamacpp_intermediates_test.cpp.)
TEST(OpQuantizedMatmul, CpuGgmlOrderKernelsAgreeBitForBit) {
  Rng rng(test_seed());
  ThreadPool pool(2);
  const std::vector<KernelPath> paths = kernel_paths();
  for (const DType dtype : {DType::Q8_0, DType::Q4_1}) {
    for (const int64_t m : {1, 2, 5}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " M " + std::to_string(m));
      const QuantWeight weight = random_weight(37, 576, dtype, rng);
      const HostArray x = random_x(m, 576, rng);
      cpu::CpuBackend scalar(pool, paths.front().features);
      const HostArray expected = run_on(scalar, x, weight);
      for (const KernelPath& path : paths) {
        cpu::CpuBackend backend(pool, path.features);
        EXPECT_EQ(run_on(backend, x, weight).values, expected.values) << path.name << " vs scalar";
      }
    }
  }
}

TEST(OpQuantizedMatmul, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  const Tensor weight = Tensor::zeros({7, 64}, DType::Q4_0);
  const Tensor x = Tensor::zeros({3, 64}, DType::F32);
  Tensor out = Tensor::zeros({3, 7}, DType::F32);
  EXPECT_NO_THROW(quantized_matmul(ctx, out, x, weight));
  const Tensor x_wrong_k = Tensor::zeros({3, 32}, DType::F32);
  EXPECT_THROW(quantized_matmul(ctx, out, x_wrong_k, weight), Error);
  const Tensor x_bf16 = Tensor::zeros({3, 64}, DType::BF16);
  EXPECT_THROW(quantized_matmul(ctx, out, x_bf16, weight), Error);
  Tensor out_wrong = Tensor::zeros({3, 8}, DType::F32);
  EXPECT_THROW(quantized_matmul(ctx, out_wrong, x, weight), Error);
  Tensor out_bf16 = Tensor::zeros({3, 7}, DType::BF16);
  EXPECT_THROW(quantized_matmul(ctx, out_bf16, x, weight), Error);
  const Tensor weight_i8 = Tensor::zeros({7, 64}, DType::I8);
  EXPECT_THROW(quantized_matmul(ctx, out, x, weight_i8), Error);
  const Tensor weight_3d = Tensor::zeros({1, 7, 64}, DType::Q4_0);
  EXPECT_THROW(quantized_matmul(ctx, out, x, weight_3d), Error);
  // K = 64 is a whole number of Q4_0 blocks but not of Q4_K's 256: such a tensor cannot
  // even be made, and x with K = 64 against a (7, 256) Q4_K weight is a shape error.
  EXPECT_THROW((void)Tensor::zeros({7, 64}, DType::Q4_K), Error);
  const Tensor weight_k = Tensor::zeros({7, 256}, DType::Q4_K);
  EXPECT_THROW(quantized_matmul(ctx, out, x, weight_k), Error);
  const Tensor undefined;
  EXPECT_THROW(quantized_matmul(ctx, out, undefined, weight), Error);
  const Tensor no_rows = Tensor::zeros({0, 64}, DType::F32);
  Tensor no_out = Tensor::zeros({0, 7}, DType::F32);
  EXPECT_NO_THROW(quantized_matmul(ctx, no_out, no_rows, weight));
  const Tensor no_columns = Tensor::zeros({0, 64}, DType::Q4_0);
  Tensor out_no_columns = Tensor::zeros({3, 0}, DType::F32);
  EXPECT_NO_THROW(quantized_matmul(ctx, out_no_columns, x, no_columns));
}

}  // namespace
}  // namespace anvil::testing
