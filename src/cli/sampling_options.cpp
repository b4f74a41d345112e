// Shared generation options and the statistics line.
#include "sampling_options.h"

#include <cstdio>

#include "loaded_model.h"

namespace anvil::cli {

namespace {
constexpr int64_t kMaxTokens = int64_t{1} << 30;  // bounds for token-count options
}  // namespace

void add_run_options(CLI::App& command, RunOptions& options) {
  command.add_option("-m,--model", options.model_path, "Model: GGUF file, safetensors file or Hugging Face folder")
      ->required();
  command.add_option("--threads", options.threads, "Worker threads (0 = all cores)")->check(CLI::Range(0, 4096));
  command.add_option("-c,--ctx-size", options.context_size, "Context size in tokens (0 = min(model's, 4096))")
      ->check(CLI::Range(int64_t{0}, kMaxTokens));
  command
      .add_option("-b,--batch-size", options.batch_size,
                  "Prompt tokens per forward pass (0 = 512 on the CPU, 4096 on a GPU)")
      ->check(CLI::Range(int64_t{0}, kMaxTokens));
  command.add_option("--device", options.device, "Where the model runs: cpu or cuda (the first GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  command.add_option("--kv-dtype", options.kv_dtype, "KV cache storage type (f16 or bf16 halve its memory)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  command.add_flag("--no-cuda-graphs", options.no_cuda_graphs,
                   "Run GPU decode steps eagerly instead of replaying CUDA graphs (also ANVIL_CUDA_GRAPHS=0)");
  command.add_option("-n,--max-tokens", options.max_tokens, "Tokens to generate at most")
      ->check(CLI::Range(int64_t{0}, kMaxTokens));
  infer::SamplerParams& sampler = options.sampler;
  command.add_option("--temperature,--temp", sampler.temperature, "Sampling temperature (0 = greedy)")
      ->check(CLI::Range(0.0F, 100.0F));
  command.add_option("--top-k", sampler.top_k, "Keep the k most likely tokens (0 = all)");
  command.add_option("--top-p", sampler.top_p, "Keep the most likely tokens up to this probability (1 = all)")
      ->check(CLI::Range(0.0F, 1.0F));
  command.add_option("--min-p", sampler.min_p, "Drop tokens less likely than min-p times the best (0 = off)")
      ->check(CLI::Range(0.0F, 1.0F));
  command.add_option("--repeat-penalty", sampler.repeat_penalty, "Repetition penalty, llama.cpp style (1 = off)")
      ->check(CLI::Range(1e-3F, 100.0F));
  command.add_option("--repeat-last-n", sampler.repeat_last_n, "Tokens of history penalised (0 = none, -1 = all)")
      ->check(CLI::Range(int64_t{-1}, kMaxTokens));
  command.add_option("--seed", sampler.seed, "Random seed for sampling");
  command.add_option("--stop", options.stop_strings, "Stop when this text is generated (repeatable)");
  command.add_flag("--ignore-eos", options.ignore_eos, "Keep generating past end-of-sequence tokens");
}

void configure_model(const RunOptions& options, model::CausalLM& model) {
  if (options.no_cuda_graphs) model.set_device_graphs(false);
}

infer::GeneratorOptions generator_options(const RunOptions& options, const model::ModelConfig& config) {
  infer::GeneratorOptions generator;
  generator.context_tokens = context_size(config, options.context_size);
  // A GPU takes a long prompt in one pass (one FlashAttention call from an empty cache);
  // the CPU keeps llama.cpp's 512-token batches, whose arithmetic it reproduces.
  constexpr int64_t kCpuBatch = 512;
  constexpr int64_t kGpuBatch = 4096;
  generator.max_batch_tokens = options.batch_size > 0    ? options.batch_size
                               : options.device == "cpu" ? kCpuBatch
                                                         : kGpuBatch;
  generator.kv_dtype = options.kv_dtype == "f32" ? DType::F32 : options.kv_dtype == "bf16" ? DType::BF16 : DType::F16;
  return generator;
}

void print_stats(const infer::GenerationResult& result, const model::CausalLM& model) {
  const infer::GenerationStats& stats = result.stats;
  std::fprintf(stderr,
               "anvil: prefill %lld tokens in %.3f s (%.1f tokens/s), decode %lld tokens in %.3f s (%.1f tokens/s), "
               "stop: %s\n",
               static_cast<long long>(stats.prefill_tokens), stats.prefill_seconds, stats.prefill_tokens_per_second(),
               static_cast<long long>(stats.generated_tokens), stats.decode_seconds, stats.decode_tokens_per_second(),
               infer::stop_reason_name(result.stop_reason));
  const model::DeviceGraphStats graphs = model.device_graph_stats();
  if (graphs.captured > 0 || graphs.failures > 0) {
    std::fprintf(stderr, "anvil: cuda graphs: %lld shapes captured, %lld steps replayed%s\n",
                 static_cast<long long>(graphs.captured), static_cast<long long>(graphs.replays),
                 graphs.failures > 0 ? " (a capture failed: eager since)" : "");
  }
}

}  // namespace anvil::cli
