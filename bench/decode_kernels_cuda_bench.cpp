// Decode-step kernels on the GPU as achieved bandwidth: quantized / bf16 GEMV (M = 1) over
// Llama-3-8B-shaped weights, and paged decode attention over long bf16 KV caches, each as a
// percentage of the device-to-device copy bandwidth measured in the same run (bytes read +
// written, the way METHOD.md counts a copy). Bytes counted: the weight (or the visible K/V)
// read once; activations and outputs are negligible at M = 1.
//   usage: anvil_decode_kernels_cuda_bench [--attention-only]   (needs a CUDA device)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "anvil/context.h"
#include "anvil/core/quant.h"
#include "anvil/ops/paged_attention.h"
#include "anvil/ops/quantized_matmul.h"

namespace {

using anvil::Ctx;
using anvil::Device;
using anvil::DType;
using anvil::Shape;
using anvil::Tensor;

void synchronize() {
  if (cudaDeviceSynchronize() != cudaSuccess) {
    std::fprintf(stderr, "cudaDeviceSynchronize failed\n");
    std::exit(1);
  }
}

// Median seconds per call of `fn` over 7 timed batches of calls (after warm-up).
template <typename Fn>
double seconds_per_call(Fn&& fn, int calls_per_batch) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) fn();
  synchronize();
  std::vector<double> batches;
  for (int b = 0; b < 7; ++b) {
    const auto start = Clock::now();
    for (int i = 0; i < calls_per_batch; ++i) fn();
    synchronize();
    batches.push_back(std::chrono::duration<double>(Clock::now() - start).count() / calls_per_batch);
  }
  std::sort(batches.begin(), batches.end());
  return batches[3];
}

// Random weights of `dtype` (rows, cols) on the device, quantized on the host.
Tensor random_weight(Ctx& ctx, int64_t rows, int64_t cols, DType dtype, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0F, 0.02F);
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (float& value : values) value = normal(rng);
  const Tensor f32 = Tensor::from_f32({rows, cols}, values);
  if (!anvil::dtype_info(dtype).is_quantized) return ctx.to_device(f32.to_dtype(dtype), Device::cuda(0));
  Tensor quantized = Tensor::empty({rows, cols}, dtype);
  const int64_t row_bytes = anvil::dtype_bytes_for(dtype, cols);
  for (int64_t r = 0; r < rows; ++r) {
    anvil::quantize_row(dtype, values.data() + r * cols, static_cast<uint8_t*>(quantized.raw_data()) + r * row_bytes,
                        cols);
  }
  return ctx.to_device(quantized, Device::cuda(0));
}

double copy_bandwidth() {
  const size_t bytes = size_t{2} << 30;
  void* src = nullptr;
  void* dst = nullptr;
  if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMalloc(&dst, bytes) != cudaSuccess) std::exit(1);
  cudaMemset(src, 1, bytes);
  const double seconds = seconds_per_call([&] { cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice); }, 5);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * static_cast<double>(bytes) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const bool attention_only = argc > 1 && std::string(argv[1]) == "--attention-only";
  Ctx ctx;
  if (!ctx.has_cuda()) {
    std::fprintf(stderr, "anvil_decode_kernels_cuda_bench: no CUDA device\n");
    return 1;
  }
  const Device gpu = Device::cuda(0);
  cudaDeviceProp props{};
  cudaGetDeviceProperties(&props, 0);
  const double copy = copy_bandwidth();
  std::printf("%s: device-to-device copy %.0f GB/s (read + write)\n\n", props.name, copy / 1e9);
  std::mt19937_64 rng(1);

  std::printf("GEMV, M = 1: out (1, N) = x (1, K) @ W (N, K)^T\n");
  std::printf("%-6s %-14s %10s %10s %12s\n", "dtype", "(N, K)", "us", "GB/s", "% of copy");
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {1024, 4096}};
  for (const DType dtype : {DType::BF16, DType::Q8_0, DType::Q4_1, DType::Q4_K, DType::Q6_K}) {
    if (attention_only) break;
    for (const auto& [n, k] : shapes) {
      // Enough copies of the weight to cycle through 256 MB per round: the 50 MB L2 cannot
      // serve repeated calls (it would for one 4096 x 4096 matrix).
      const double bytes = static_cast<double>(anvil::dtype_bytes_for(dtype, n * k));
      const int copies = std::clamp(static_cast<int>(256e6 / bytes) + 1, 1, 32);
      std::vector<Tensor> weights;
      for (int c = 0; c < copies; ++c) weights.push_back(random_weight(ctx, n, k, dtype, rng));
      std::vector<float> xs(static_cast<size_t>(k));
      std::normal_distribution<float> normal(0.0F, 1.0F);
      for (float& v : xs) v = normal(rng);
      const Tensor x = ctx.to_device(Tensor::from_f32({1, k}, xs), gpu);
      Tensor out = ctx.empty({1, n}, DType::F32, gpu);
      int next = 0;
      const double seconds = seconds_per_call(
          [&] { anvil::quantized_matmul(ctx, out, x, weights[static_cast<size_t>(next++ % copies)]); }, 64);
      std::printf("%-6s (%5lld, %5lld) %10.1f %10.0f %11.1f%%\n", std::string(anvil::dtype_name(dtype)).c_str(),
                  static_cast<long long>(n), static_cast<long long>(k), seconds * 1e6, bytes / seconds / 1e9,
                  100.0 * bytes / seconds / copy);
    }
  }

  std::printf("\npaged decode attention, bf16 cache, Hq 32, Hkv 8, D 128, block 16 (one token per sequence)\n");
  std::printf("%-10s %-9s %10s %10s %12s\n", "sequences", "context", "us", "GB/s", "% of copy");
  const int64_t hq = 32, hkv = 8, d = 128, block = 16;
  for (const auto& [sequences, context] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 4096}, {8, 4096}, {32, 4096}, {1, 32768}, {4, 16384}}) {
    const int64_t blocks_per_seq = context / block;
    const int64_t num_blocks = sequences * blocks_per_seq;
    Tensor key_cache = ctx.empty({num_blocks, block, hkv, d}, DType::BF16, gpu);
    Tensor value_cache = ctx.empty({num_blocks, block, hkv, d}, DType::BF16, gpu);
    {
      std::vector<float> values(static_cast<size_t>(block * hkv * d));
      std::normal_distribution<float> normal(0.0F, 1.0F);
      for (float& v : values) v = normal(rng);
      const Tensor one_block = Tensor::from_f32({1, block, hkv, d}, values).to_dtype(DType::BF16);
      for (int64_t b = 0; b < num_blocks; ++b) {  // every block distinct in memory, same values
        Tensor kb = key_cache.slice(0, b, b + 1);
        Tensor vb = value_cache.slice(0, b, b + 1);
        ctx.backend(gpu).copy(kb, one_block);
        ctx.backend(gpu).copy(vb, one_block);
      }
    }
    std::vector<int32_t> tables(static_cast<size_t>(num_blocks)), sequence_of, positions;
    for (int64_t i = 0; i < num_blocks; ++i) tables[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    std::shuffle(tables.begin(), tables.end(), rng);  // scattered blocks, as a real cache
    for (int64_t s = 0; s < sequences; ++s) {
      sequence_of.push_back(static_cast<int32_t>(s));
      positions.push_back(static_cast<int32_t>(context - 1));
    }
    const Tensor table = ctx.to_device(Tensor::from_i32({sequences, blocks_per_seq}, tables), gpu);
    const Tensor seq_t = ctx.to_device(Tensor::from_i32({sequences}, sequence_of), gpu);
    const Tensor pos_t = ctx.to_device(Tensor::from_i32({sequences}, positions), gpu);
    std::vector<float> qs(static_cast<size_t>(sequences * hq * d), 0.1F);
    const Tensor q = ctx.to_device(Tensor::from_f32({sequences, hq, d}, qs).to_dtype(DType::BF16), gpu);
    Tensor out = ctx.empty({sequences, hq, d}, DType::BF16, gpu);
    anvil::PagedAttentionParams params;
    params.checked_max_visible = context;  // the indices above are valid: no host wait per call
    const double seconds = seconds_per_call(
        [&] { anvil::paged_attention(ctx, out, q, key_cache, value_cache, seq_t, pos_t, table, params); }, 50);
    const double bytes = 2.0 * static_cast<double>(sequences * context * hkv * d * 2);
    std::printf("%-10lld %-9lld %10.1f %10.0f %11.1f%%\n", static_cast<long long>(sequences),
                static_cast<long long>(context), seconds * 1e6, bytes / seconds / 1e9, 100.0 * bytes / seconds / copy);
  }
  return 0;
}
