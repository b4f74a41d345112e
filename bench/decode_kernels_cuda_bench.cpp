// Decode-step kernels on the GPU as achieved bandwidth: quantized / bf16 GEMV (M = 1) over
// Llama-3-8B-shaped weights, and paged decode attention over long bf16 KV caches, each as a
// percentage of the device-to-device copy bandwidth measured in the same run (bytes read +
// written, the way METHOD.md counts a copy). Bytes counted: the weight (or the visible K/V)
// read once; activations and outputs are negligible at M = 1.
//   usage: anvil_decode_kernels_cuda_bench [--attention-only | --gemv-only | --gemv-profile]   (needs a CUDA device)
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "anvil/context.h"
#include "cuda_timing.h"
#include "anvil/core/quant.h"
#include "anvil/ops/paged_attention.h"
#include "anvil/ops/quantized_matmul.h"
#include "anvil/ops/rms_norm.h"
#include "cuda/cuda_backend.h"
#include "cuda/paged_attention_kernels.h"
#include "cuda/paged_attention_tiled.h"

namespace {

using anvil::Ctx;
using anvil::Device;
using anvil::DType;
using anvil::Shape;
using anvil::Tensor;
using anvil::bench::seconds_per_call;
using anvil::bench::synchronize;

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

// Seconds per call of `queue_calls`, which queues `calls` calls on `stream`, captured once
// and replayed as a CUDA graph (as a decode step runs): launch overhead out of the way.
// Negative when the calls cannot be captured.
template <typename Fn>
double graph_seconds_per_call(cudaStream_t stream, Fn&& queue_calls, int calls) {
  cudaGraph_t graph = nullptr;
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed) != cudaSuccess) return -1.0;
  bool queued = true;
  try {
    queue_calls();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "graph capture: %s\n", error.what());
    queued = false;
  }
  const bool captured = cudaStreamEndCapture(stream, &graph) == cudaSuccess && queued;
  cudaGraphExec_t exec = nullptr;
  if (!captured || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    if (graph != nullptr) cudaGraphDestroy(graph);
    return -1.0;
  }
  const double seconds = seconds_per_call([&] { cudaGraphLaunch(exec, stream); }, 5) / calls;
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return seconds;
}

void print_rate(double bytes, double seconds, double copy) {
  if (seconds <= 0.0) {
    std::printf(" %9s %6s", "-", "-");
    return;
  }
  std::printf(" %9.1f %5.0f%%", seconds * 1e6, 100.0 * bytes / seconds / copy);
}

void gemv_table(Ctx& ctx, cudaStream_t stream, double copy, std::mt19937_64& rng) {
  const Device gpu = Device::cuda(0);
  std::printf(
      "GEMV, M = 1: out (1, N) = x (1, K) @ W (N, K)^T; us and %% of copy per call, queued one by one "
      "(op) and replayed as a CUDA graph; from x quantised already (\"codes\": quantize_activations once, as\n"
      "the norm or SwiGLU before it writes them in a decode step); and, as graphs, the pair a decode step runs\n"
      "(add_rms_norm of K channels, then the GEMV): into f32 with the quantiser in the GEMV call, or into codes\n");
  std::printf("%-6s %-14s %9s %6s %9s %6s %9s %6s %9s %6s %9s %6s %9s %6s\n", "dtype", "(N, K)", "op us", "%",
              "graph us", "%", "codes op", "%", "codes gr", "%", "norm+f32", "%", "norm+cod", "%");
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {1024, 4096}};
  for (const DType dtype : {DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K}) {
    for (const auto& [n, k] : shapes) {
      // Enough copies of the weight to cycle through 256 MB per round: the 50 MB L2 cannot
      // serve repeated calls (it would for one 4096 x 4096 matrix).
      const double bytes = static_cast<double>(anvil::dtype_bytes_for(dtype, n * k));
      const int copies = std::clamp(static_cast<int>(256e6 / bytes) + 1, 1, 32);
      std::vector<Tensor> weights{random_weight(ctx, n, k, dtype, rng)};
      for (int c = 1; c < copies; ++c) {  // distinct memory, same values (host quantization is slow)
        weights.push_back(ctx.empty({n, k}, dtype, gpu));
        ctx.backend(gpu).copy(weights.back(), weights.front());
      }
      std::vector<float> xs(static_cast<size_t>(k));
      std::normal_distribution<float> normal(0.0F, 1.0F);
      for (float& v : xs) v = normal(rng);
      const Tensor x = ctx.to_device(Tensor::from_f32({1, k}, xs), gpu);
      Tensor out = ctx.empty({1, n}, DType::F32, gpu);
      int next = 0;
      const double seconds = seconds_per_call(
          [&] { anvil::quantized_matmul(ctx, out, x, weights[static_cast<size_t>(next++ % copies)]); }, 64);
      const int calls = std::max(copies, 32);
      const double graph_seconds = graph_seconds_per_call(
          stream,
          [&] {
            for (int c = 0; c < calls; ++c)
              anvil::quantized_matmul(ctx, out, x, weights[static_cast<size_t>(c % copies)]);
          },
          calls);
      std::printf("%-6s (%5lld, %5lld)", std::string(anvil::dtype_name(dtype)).c_str(), static_cast<long long>(n),
                  static_cast<long long>(k));
      print_rate(bytes, seconds, copy);
      print_rate(bytes, graph_seconds, copy);
      const std::optional<DType> codes_dtype = anvil::activation_dtype_for(dtype);
      if (codes_dtype) {
        Tensor codes = ctx.empty({1, k}, *codes_dtype, gpu);
        anvil::quantize_activations(ctx, codes, x);
        next = 0;
        print_rate(
            bytes,
            seconds_per_call(
                [&] { anvil::quantized_matmul(ctx, out, codes, weights[static_cast<size_t>(next++ % copies)]); }, 64),
            copy);
        print_rate(bytes,
                   graph_seconds_per_call(
                       stream,
                       [&] {
                         for (int c = 0; c < calls; ++c)
                           anvil::quantized_matmul(ctx, out, codes, weights[static_cast<size_t>(c % copies)]);
                       },
                       calls),
                   copy);
        // The decode step's pair: the residual add + RMSNorm that makes x, then the GEMV.
        Tensor stream_x = ctx.to_device(Tensor::from_f32({1, k}, xs), gpu);
        const Tensor delta =
            ctx.to_device(Tensor::from_f32({1, k}, std::vector<float>(static_cast<size_t>(k), 0.0F)), gpu);
        const Tensor norm_weight =
            ctx.to_device(Tensor::from_f32({k}, std::vector<float>(static_cast<size_t>(k), 1.0F)), gpu);
        Tensor normed = ctx.empty({1, k}, DType::F32, gpu);
        for (Tensor* target : {&normed, &codes}) {
          print_rate(bytes,
                     graph_seconds_per_call(
                         stream,
                         [&] {
                           for (int c = 0; c < calls; ++c) {
                             anvil::add_rms_norm(ctx, *target, stream_x, delta, norm_weight, 1e-5F);
                             anvil::quantized_matmul(ctx, out, *target, weights[static_cast<size_t>(c % copies)]);
                           }
                         },
                         calls),
                     copy);
        }
      }
      std::printf("\n");
    }
  }
}

// One call of each GEMV case between cudaProfilerStart / Stop (after two warm-up calls), for
// `ncu --profile-from-start off`.
void gemv_profile(Ctx& ctx, std::mt19937_64& rng) {
  const Device gpu = Device::cuda(0);
  for (const DType dtype : {DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K}) {
    for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{14336, 4096}, {4096, 14336}, {1024, 4096}}) {
      const Tensor weight = random_weight(ctx, n, k, dtype, rng);
      const Tensor x = ctx.to_device(Tensor::from_f32({1, k}, std::vector<float>(static_cast<size_t>(k), 0.5F)), gpu);
      Tensor out = ctx.empty({1, n}, DType::F32, gpu);
      for (int i = 0; i < 2; ++i) anvil::quantized_matmul(ctx, out, x, weight);
      synchronize();
      cudaProfilerStart();
      anvil::quantized_matmul(ctx, out, x, weight);
      synchronize();
      cudaProfilerStop();
    }
  }
}

struct AttentionCase {
  int64_t q_heads, kv_heads, head_dim, sequences, context;
};

// Paged decode attention (one query row per sequence, every sequence `context` tokens) over
// scattered 16-token blocks of a bf16 cache; enough cache copies to cycle through 256 MB.
// Columns: the op queued call by call, the op replayed as a graph, and (graph) the kernels
// alone: the tiled kernel with its own plan (the combine fused in), its main kernel alone
// (partials written, not merged), the tiled kernel followed by the separate combine kernel
// ("unfused"), the warp kernel (the kernel before the tiled one), and the tiled kernel with
// other shapes and partition lengths (the planner's alternatives).
void attention_row(Ctx& ctx, cudaStream_t stream, double copy, const AttentionCase& c, int num_sms,
                   std::mt19937_64& rng) {
  const Device gpu = Device::cuda(0);
  const int64_t block = 16;
  const int64_t blocks_per_seq = c.context / block;
  const double bytes = 2.0 * static_cast<double>(c.sequences * c.context * c.kv_heads * c.head_dim * 2);
  const int copies = std::clamp(static_cast<int>(256e6 / bytes) + 1, 1, 16);
  const int64_t num_blocks = copies * c.sequences * blocks_per_seq;
  Tensor key_cache = ctx.empty({num_blocks, block, c.kv_heads, c.head_dim}, DType::BF16, gpu);
  Tensor value_cache = ctx.empty({num_blocks, block, c.kv_heads, c.head_dim}, DType::BF16, gpu);
  // Bytes 0x3C: every element the bf16 0x3C3C (0.0115); bandwidth does not depend on values.
  cudaMemset(key_cache.raw_data(), 0x3C, static_cast<size_t>(key_cache.numel()) * 2);
  cudaMemset(value_cache.raw_data(), 0x3C, static_cast<size_t>(value_cache.numel()) * 2);
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  for (int64_t i = 0; i < num_blocks; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  std::shuffle(ids.begin(), ids.end(), rng);  // scattered blocks, as a real cache
  std::vector<Tensor> tables;
  for (int k = 0; k < copies; ++k) {
    const auto begin = ids.begin() + k * c.sequences * blocks_per_seq;
    tables.push_back(ctx.to_device(Tensor::from_i32({c.sequences, blocks_per_seq},
                                                    std::vector<int32_t>(begin, begin + c.sequences * blocks_per_seq)),
                                   gpu));
  }
  std::vector<int32_t> sequence_of, positions;
  for (int64_t s = 0; s < c.sequences; ++s) {
    sequence_of.push_back(static_cast<int32_t>(s));
    positions.push_back(static_cast<int32_t>(c.context - 1));
  }
  const Tensor seq_t = ctx.to_device(Tensor::from_i32({c.sequences}, sequence_of), gpu);
  const Tensor pos_t = ctx.to_device(Tensor::from_i32({c.sequences}, positions), gpu);
  std::vector<float> qs(static_cast<size_t>(c.sequences * c.q_heads * c.head_dim), 0.1F);
  const Tensor q = ctx.to_device(Tensor::from_f32({c.sequences, c.q_heads, c.head_dim}, qs).to_dtype(DType::BF16), gpu);
  Tensor out = ctx.empty({c.sequences, c.q_heads, c.head_dim}, DType::BF16, gpu);
  anvil::PagedAttentionParams params;
  params.checked_max_visible = c.context;  // the indices above are valid: no host wait per call
  int next = 0;
  const auto op = [&] {
    anvil::paged_attention(ctx, out, q, key_cache, value_cache, seq_t, pos_t,
                           tables[static_cast<size_t>(next++ % copies)], params);
  };
  const double op_seconds = seconds_per_call(op, 50);
  const int calls = std::max(copies, 16);
  const double graph_seconds = graph_seconds_per_call(
      stream,
      [&] {
        for (int k = 0; k < calls; ++k) op();
      },
      calls);

  // The kernels alone, through the launch API, with a scratch for the finest partitions.
  anvil::cuda::PagedAttentionArgs args;
  args.q_dtype = args.cache_dtype = DType::BF16;
  args.q = q.raw_data();
  args.out = out.raw_data();
  args.key_cache = key_cache.raw_data();
  args.value_cache = value_cache.raw_data();
  args.token_sequences = seq_t.data<const int32_t>();
  args.positions = pos_t.data<const int32_t>();
  args.tokens = args.sequences = c.sequences;
  args.q_heads = c.q_heads;
  args.kv_heads = c.kv_heads;
  args.head_dim = c.head_dim;
  args.num_blocks = num_blocks;
  args.block_size = block;
  args.max_blocks = blocks_per_seq;
  args.scale = 1.0F / std::sqrt(static_cast<float>(c.head_dim));
  void* scratch = nullptr;
  void* counter_memory = nullptr;  // the fused combine's counters, zeroed (and left zeroed by the kernel)
  if (cudaMalloc(&counter_memory, 65536 * sizeof(int32_t)) != cudaSuccess ||
      cudaMemset(counter_memory, 0, 65536 * sizeof(int32_t)) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
    std::exit(1);
  }
  auto* counters = static_cast<int32_t*>(counter_memory);
  const int64_t most_partitions = (c.context + 63) / 64;
  if (cudaMalloc(&scratch, static_cast<size_t>(c.sequences * c.q_heads * most_partitions * (c.head_dim + 2)) * 4) !=
      cudaSuccess) {
    std::exit(1);
  }
  const auto kernels = [&](const anvil::cuda::PagedPartitioning& plan, bool fused = true) {
    return graph_seconds_per_call(
        stream,
        [&] {
          for (int k = 0; k < calls; ++k) {
            args.block_tables = tables[static_cast<size_t>(k % copies)].data<const int32_t>();
            anvil::cuda::launch_paged_attention(args, plan, scratch, fused && plan.tiled ? counters : nullptr, stream);
          }
        },
        calls);
  };
  const anvil::cuda::PagedPartitioning tiled = anvil::cuda::plan_paged_attention(args, c.context, num_sms);
  const anvil::cuda::PagedPartitioning warps = anvil::cuda::plan_paged_attention(args, c.context, num_sms, false);
  std::printf("%3lld/%lld/%-3lld %4lld x %-6lld", static_cast<long long>(c.q_heads), static_cast<long long>(c.kv_heads),
              static_cast<long long>(c.head_dim), static_cast<long long>(c.sequences),
              static_cast<long long>(c.context));
  print_rate(bytes, op_seconds, copy);
  print_rate(bytes, graph_seconds, copy);
  print_rate(bytes, kernels(tiled), copy);
  std::printf(" (P %4lld)", static_cast<long long>(tiled.partitions));
  if (tiled.partitions > 1) {  // the main kernel without the combine
    const int64_t partials = c.sequences * c.q_heads * tiled.partitions;
    anvil::cuda::PagedPartials parts{
        tiled.partition_len, tiled.partitions, static_cast<float*>(scratch), nullptr, nullptr, nullptr};
    parts.max = parts.acc + partials * c.head_dim;
    parts.sum = parts.max + partials;
    print_rate(bytes,
               graph_seconds_per_call(
                   stream,
                   [&] {
                     for (int k = 0; k < calls; ++k) {
                       args.block_tables = tables[static_cast<size_t>(k % copies)].data<const int32_t>();
                       anvil::cuda::launch_tiled_paged_attention(args, tiled, parts, stream);
                     }
                   },
                   calls),
               copy);
    print_rate(bytes, kernels(tiled, false), copy);  // the combine as a separate kernel
  } else {
    print_rate(bytes, -1.0, copy);
    print_rate(bytes, -1.0, copy);
  }
  print_rate(bytes, kernels(warps), copy);
  std::printf(" |");
  for (const auto& [threads, stages] : std::vector<std::pair<int, int>>{{128, 2}, {128, 3}, {256, 2}, {256, 3}}) {
    anvil::cuda::PagedPartitioning other = tiled;
    other.tiled_threads = threads;
    other.tiled_stages = stages;
    const double seconds = kernels(other);
    std::printf(" %d/%d:%.0f%%", threads, stages, seconds > 0 ? 100.0 * bytes / seconds / copy : 0.0);
  }
  std::printf(" |");
  for (const int64_t len : {64, 128, 256, 512, 1024, 2048}) {
    anvil::cuda::PagedPartitioning other = tiled;
    other.partition_len = len;
    other.partitions = (c.context + len - 1) / len;
    const double seconds = kernels(other);
    std::printf(" %lld:%.0f%%", static_cast<long long>(len), seconds > 0 ? 100.0 * bytes / seconds / copy : 0.0);
  }
  std::printf("\n");
  cudaFree(scratch);
  cudaFree(counter_memory);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool attention_only = mode == "--attention-only";
  Ctx ctx;
  if (!ctx.has_cuda()) {
    std::fprintf(stderr, "anvil_decode_kernels_cuda_bench: no CUDA device\n");
    return 1;
  }
  const Device gpu = Device::cuda(0);
  cudaStream_t stream = dynamic_cast<anvil::cuda::CudaBackend&>(ctx.backend(gpu)).stream();
  cudaDeviceProp props{};
  cudaGetDeviceProperties(&props, 0);
  const double copy = copy_bandwidth();
  std::printf("%s: device-to-device copy %.0f GB/s (read + write)\n\n", props.name, copy / 1e9);
  std::mt19937_64 rng(1);
  if (mode == "--gemv-profile") {
    gemv_profile(ctx, rng);
    return 0;
  }
  if (!attention_only) gemv_table(ctx, stream, copy, rng);
  if (mode == "--gemv-only") return 0;

  {
    // The floor of a graph node: two dependent 4-byte memsets per "call".
    void* word = nullptr;
    if (cudaMalloc(&word, 16) != cudaSuccess) return 1;
    const double seconds = graph_seconds_per_call(
        stream,
        [&] {
          for (int i = 0; i < 32; ++i) {
            cudaMemsetAsync(word, 0, 4, stream);
            cudaMemsetAsync(static_cast<char*>(word) + 4, 0, 4, stream);
          }
        },
        32);
    std::printf("\ngraph floor: two dependent 4-byte memset nodes take %.1f us\n", seconds * 1e6);
    cudaFree(word);
  }
  std::printf("\npaged decode attention, bf16 cache and q, block 16, one token per sequence: us and %% of copy\n");
  std::printf("%-12s %-13s %9s %6s %9s %6s %9s %6s %8s %9s %6s %9s %6s %9s %6s | %s\n", "Hq/Hkv/D", "seqs x ctx",
              "op us", "%", "graph us", "%", "tiled us", "%", "", "main us", "%", "unfused", "%", "warp us", "%",
              "tiled: threads/stages:% | partition keys:%");
  for (const AttentionCase& c : std::vector<AttentionCase>{{32, 8, 128, 1, 4096},
                                                           {32, 8, 128, 8, 4096},
                                                           {32, 8, 128, 32, 4096},
                                                           {32, 8, 128, 1, 16384},
                                                           {32, 8, 128, 1, 32768},
                                                           {32, 8, 128, 4, 16384},
                                                           {32, 8, 128, 8, 32768},
                                                           {9, 3, 64, 1, 4096},
                                                           {9, 3, 64, 8, 4096},
                                                           {9, 3, 64, 1, 8192}}) {
    attention_row(ctx, stream, copy, c, props.multiProcessorCount, rng);
  }
  return 0;
}
