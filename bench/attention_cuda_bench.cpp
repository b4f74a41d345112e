// Attention forward and forward+backward throughput on the GPU in bf16, through the anvil
// ops (what a training step sees: argument checks, the delta pre-pass, scratch from the
// caching allocator). FLOPs as FlashAttention counts them: forward 4 B H S^2 D (Q K^T and
// P V), backward 2.5x that (the dQ pass's recomputation is not counted); causal halves
// both. tools/bench_attention_torch.py prints the same table for PyTorch SDPA.
// A second table times each tensor-core forward kernel alone through its launch API
// (src/backend/cuda), with its largest difference from the mma.sync kernel's output.
//   usage: anvil_attention_cuda_bench [--once]   (needs a CUDA device)
// --once runs one forward and one backward per case, untimed: for profilers (ncu).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "anvil/context.h"
#include "anvil/ops/attention.h"
#include "cuda/attention_kernels.h"
#include "cuda_timing.h"

namespace {

using anvil::AttentionParams;
using anvil::Ctx;
using anvil::Device;
using anvil::DType;
using anvil::Shape;
using anvil::Tensor;
using anvil::bench::synchronize;

struct Config {
  int64_t batch, heads, seq, head_dim;
};

Tensor random_device(Ctx& ctx, const Shape& shape, Device device, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-1.0F, 1.0F);
  std::vector<float> values(static_cast<size_t>(anvil::shape_numel(shape)));
  for (float& value : values) value = uniform(rng);
  return ctx.to_device(Tensor::from_f32(shape, values).to_dtype(DType::BF16), device);
}

// Mean seconds per call of `fn`: one warm-up call, then enough calls for ~0.3 s.
template <typename Fn>
double seconds_per_call(Fn&& fn) {
  using Clock = std::chrono::steady_clock;
  fn();
  synchronize();
  auto start = Clock::now();
  fn();
  synchronize();
  const double once = std::chrono::duration<double>(Clock::now() - start).count();
  const int calls = std::clamp(static_cast<int>(0.3 / std::max(once, 1e-6)), 3, 200);
  start = Clock::now();
  for (int i = 0; i < calls; ++i) fn();
  synchronize();
  return std::chrono::duration<double>(Clock::now() - start).count() / calls;
}

// FlashAttention's FLOP count of one forward (4 B H S^2 D; causal halves it).
double forward_flops(const Config& c, bool causal) {
  return 4.0 * static_cast<double>(c.batch * c.heads * c.head_dim) * static_cast<double>(c.seq * c.seq) *
         (causal ? 0.5 : 1.0);
}

// "(B,H,S,D)" of a case, the first column of every table.
std::string case_label(const Config& c) {
  char label[64];
  std::snprintf(label, sizeof(label), "(%lld,%lld,%lld,%lld)", static_cast<long long>(c.batch),
                static_cast<long long>(c.heads), static_cast<long long>(c.seq), static_cast<long long>(c.head_dim));
  return label;
}

// The launch API's description of a bench case.
anvil::cuda::AttentionShape launch_shape_of(const Config& c, bool causal) {
  anvil::cuda::AttentionShape shape;
  shape.batch = c.batch;
  shape.seq = c.seq;
  shape.q_heads = c.heads;
  shape.kv_heads = c.heads;
  shape.head_dim = c.head_dim;
  shape.scale = 1.0F / std::sqrt(static_cast<float>(c.head_dim));
  shape.causal = causal;
  return shape;
}

// Largest |a - b| of two bf16 device tensors of one shape; inf where either holds a NaN.
float max_difference(Ctx& ctx, const Tensor& a, const Tensor& b) {
  const std::vector<float> x = ctx.to_device(a, Device::cpu()).to_f32_vector();
  const std::vector<float> y = ctx.to_device(b, Device::cpu()).to_f32_vector();
  float worst = 0.0F;
  for (size_t i = 0; i < x.size(); ++i) {
    const float diff = std::abs(x[i] - y[i]);
    worst = std::isnan(diff) ? INFINITY : std::max(worst, diff);  // an unwritten (NaN) output shows as inf
    if (std::isinf(worst)) break;
  }
  return worst;
}

// Each tensor-core forward kernel alone, through the launch API, against the mma.sync one.
void forward_kernel_table(Ctx& ctx, const std::vector<Config>& configs, Device device, std::mt19937_64& rng) {
  using anvil::cuda::AttentionForwardKernel;
  std::printf("\nforward kernels alone (launch API), TFLOP/s; max |out - mma.sync out|\n");
  std::printf("%-22s %-7s %-22s %10s %10s %12s\n", "(B,H,S,D)", "causal", "kernel", "fwd ms", "fwd TF/s", "max diff");
  struct Row {
    AttentionForwardKernel kernel;
    int variant;
  };
  for (const Config& c : configs) {
    std::vector<Row> rows = {{AttentionForwardKernel::MmaSync, 0}, {AttentionForwardKernel::Wgmma, 0}};
    for (int variant = 0; variant < anvil::cuda::tma_forward_variants(c.head_dim); ++variant) {
      rows.push_back({AttentionForwardKernel::WgmmaTma, variant});
    }
    const Shape shape = {c.batch, c.seq, c.heads, c.head_dim};
    const Tensor q = random_device(ctx, shape, device, rng);
    const Tensor k = random_device(ctx, shape, device, rng);
    const Tensor v = random_device(ctx, shape, device, rng);
    Tensor reference = ctx.empty(shape, DType::BF16, device);
    Tensor out = ctx.empty(shape, DType::BF16, device);
    Tensor lse = ctx.empty({c.batch, c.heads, c.seq}, DType::F32, device);
    for (const bool causal : {false, true}) {
      anvil::cuda::AttentionShape launch_shape = launch_shape_of(c, causal);
      for (const Row& row : rows) {
        launch_shape.forward_kernel = row.kernel;
        launch_shape.forward_variant = row.variant;
        const bool is_reference = row.kernel == AttentionForwardKernel::MmaSync;
        Tensor& target = is_reference ? reference : out;
        cudaMemset(target.raw_data(), 0xFF, static_cast<size_t>(target.numel()) * 2);  // NaN: unwritten shows
        const auto run = [&] {
          anvil::cuda::launch_attention_forward(launch_shape, DType::BF16, q.raw_data(), k.raw_data(), v.raw_data(),
                                                target.raw_data(), static_cast<float*>(lse.raw_data()), nullptr);
        };
        run();
        synchronize();
        const float diff = is_reference ? 0.0F : max_difference(ctx, out, reference);
        const double seconds = seconds_per_call(run);
        const double flops = forward_flops(c, causal);
        const std::string label = case_label(c);
        const std::string name =
            row.kernel == AttentionForwardKernel::MmaSync ? "mma.sync"
            : row.kernel == AttentionForwardKernel::Wgmma
                ? "wgmma"
                : std::string("tma ") + anvil::cuda::tma_forward_variant_name(c.head_dim, row.variant);
        std::printf("%-22s %-7s %-22s %10.3f %10.1f %12.3g\n", label.c_str(), causal ? "yes" : "no", name.c_str(),
                    seconds * 1e3, flops / seconds * 1e-12, static_cast<double>(diff));
      }
    }
  }
}

// Each tensor-core backward kernel alone (with the delta pre-pass and dQ rounding), through
// the launch API, against the mma.sync one: TFLOP/s (2.5x the forward's FLOPs) and the largest
// difference of dq, dk, dv.
void backward_kernel_table(Ctx& ctx, const std::vector<Config>& configs, Device device, std::mt19937_64& rng) {
  using anvil::cuda::AttentionBackwardKernel;
  std::printf("\nbackward kernels alone (launch API), TFLOP/s; max |d - mma.sync d| for dq / dk / dv\n");
  std::printf("%-22s %-7s %-10s %10s %10s %10s %10s %10s\n", "(B,H,S,D)", "causal", "kernel", "bwd ms", "bwd TF/s",
              "dq diff", "dk diff", "dv diff");
  const struct {
    AttentionBackwardKernel kernel;
    const char* name;
  } kernels[] = {{AttentionBackwardKernel::MmaSync, "mma.sync"}, {AttentionBackwardKernel::Wgmma, "wgmma"}};
  for (const Config& c : configs) {
    const Shape shape = {c.batch, c.seq, c.heads, c.head_dim};
    const Tensor q = random_device(ctx, shape, device, rng);
    const Tensor k = random_device(ctx, shape, device, rng);
    const Tensor v = random_device(ctx, shape, device, rng);
    const Tensor dout = random_device(ctx, shape, device, rng);
    Tensor out = ctx.empty(shape, DType::BF16, device);
    Tensor lse = ctx.empty({c.batch, c.heads, c.seq}, DType::F32, device);
    Tensor delta = ctx.empty({c.batch, c.heads, c.seq}, DType::F32, device);
    Tensor dq_accum =
        ctx.empty({anvil::cuda::attention_backward_dq_accum_elements(launch_shape_of(c, false), DType::BF16)},
                  DType::F32, device);
    Tensor grads[std::size(kernels)][3];
    for (auto& set : grads) {
      for (Tensor& g : set) g = ctx.empty(shape, DType::BF16, device);
    }
    for (const bool causal : {false, true}) {
      anvil::cuda::AttentionShape launch_shape = launch_shape_of(c, causal);
      anvil::cuda::launch_attention_forward(launch_shape, DType::BF16, q.raw_data(), k.raw_data(), v.raw_data(),
                                            out.raw_data(), static_cast<float*>(lse.raw_data()), nullptr);
      for (size_t which = 0; which < std::size(kernels); ++which) {
        launch_shape.backward_kernel = kernels[which].kernel;
        Tensor* g = grads[which];
        for (int i = 0; i < 3; ++i) cudaMemset(g[i].raw_data(), 0xFF, static_cast<size_t>(g[i].numel()) * 2);
        const auto run = [&] {
          anvil::cuda::launch_attention_backward(
              launch_shape, DType::BF16, /*exact_delta=*/false, dout.raw_data(), q.raw_data(), k.raw_data(),
              v.raw_data(), out.raw_data(), static_cast<const float*>(lse.raw_data()), g[0].raw_data(), g[1].raw_data(),
              g[2].raw_data(), static_cast<float*>(delta.raw_data()), static_cast<float*>(dq_accum.raw_data()),
              nullptr);
        };
        run();
        synchronize();
        float diffs[3] = {0.0F, 0.0F, 0.0F};
        if (which > 0) {
          for (int i = 0; i < 3; ++i) diffs[i] = max_difference(ctx, g[i], grads[0][i]);
        }
        const double seconds = seconds_per_call(run);
        const double flops = 2.5 * forward_flops(c, causal);
        const std::string label = case_label(c);
        std::printf("%-22s %-7s %-10s %10.3f %10.1f %10.3g %10.3g %10.3g\n", label.c_str(), causal ? "yes" : "no",
                    kernels[which].name, seconds * 1e3, flops / seconds * 1e-12, static_cast<double>(diffs[0]),
                    static_cast<double>(diffs[1]), static_cast<double>(diffs[2]));
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool once = argc > 1 && std::string(argv[1]) == "--once";
  Ctx ctx;
  if (!ctx.has_cuda()) {
    std::fprintf(stderr, "anvil_attention_cuda_bench: no CUDA device\n");
    return 1;
  }
  const Device device = Device::cuda(0);
  cudaDeviceProp props{};
  cudaGetDeviceProperties(&props, 0);
  std::printf("anvil attention, bf16, %s\n", props.name);
  std::printf("%-22s %-7s %10s %10s %12s %12s\n", "(B,H,S,D)", "causal", "fwd ms", "fwd TF/s", "fwd+bwd ms",
              "fwd+bwd TF/s");
  const std::vector<Config> configs = {{16, 16, 1024, 64}, {8, 16, 4096, 128}, {2, 32, 8192, 128}};
  std::mt19937_64 rng(7);
  for (const Config& c : configs) {
    const Shape shape = {c.batch, c.seq, c.heads, c.head_dim};  // anvil layout (B, T, H, D)
    const Tensor q = random_device(ctx, shape, device, rng);
    const Tensor k = random_device(ctx, shape, device, rng);
    const Tensor v = random_device(ctx, shape, device, rng);
    const Tensor dout = random_device(ctx, shape, device, rng);
    Tensor out = ctx.empty(shape, DType::BF16, device);
    Tensor lse = ctx.empty({c.batch, c.heads, c.seq}, DType::F32, device);
    Tensor dq = ctx.empty(shape, DType::BF16, device);
    Tensor dk = ctx.empty(shape, DType::BF16, device);
    Tensor dv = ctx.empty(shape, DType::BF16, device);
    for (const bool causal : {false, true}) {
      const AttentionParams params{causal, 0.0F, anvil::AttentionImpl::Blocked};
      if (once) {
        anvil::attention(ctx, out, lse, q, k, v, params);
        anvil::attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, params);
        synchronize();
        continue;
      }
      const double fwd = seconds_per_call([&] { anvil::attention(ctx, out, lse, q, k, v, params); });
      const double fwd_bwd = seconds_per_call([&] {
        anvil::attention(ctx, out, lse, q, k, v, params);
        anvil::attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, params);
      });
      const double flops = forward_flops(c, causal);
      const std::string label = case_label(c);
      std::printf("%-22s %-7s %10.3f %10.1f %12.3f %12.1f\n", label.c_str(), causal ? "yes" : "no", fwd * 1e3,
                  flops / fwd * 1e-12, fwd_bwd * 1e3, 3.5 * flops / fwd_bwd * 1e-12);
    }
  }
  if (!once) {
    forward_kernel_table(ctx, configs, device, rng);
    backward_kernel_table(ctx, configs, device, rng);
  }
  return 0;
}
