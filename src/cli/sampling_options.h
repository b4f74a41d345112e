#pragma once
// Command-line options shared by `generate` and `chat`: sampling and the runtime.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "anvil/infer/generator.h"

namespace anvil::cli {

struct RunOptions {
  std::string model_path;
  int threads = 0;           // 0 = one per core
  int64_t context_size = 0;  // 0 = min(model context, 4096)
  int64_t batch_size = 0;    // prefill chunk; 0 = 512 on the CPU (llama.cpp's), 4096 on a GPU
  int64_t max_tokens = 256;
  bool ignore_eos = false;
  std::string device = "cpu";    // cpu or cuda
  std::string kv_dtype = "f32";  // KV cache storage: f32, f16 or bf16 (f16: half the memory, slower attention)
  bool no_cuda_graphs = false;   // decode eagerly on the GPU (default: replay CUDA graphs)
  std::vector<std::string> stop_strings;
  infer::SamplerParams sampler;
};

// Adds -m, --threads, --ctx-size, --batch-size, --kv-dtype, --no-cuda-graphs, -n, --temperature, --top-k, --top-p,
// --min-p, --repeat-penalty, --repeat-last-n, --seed, --stop and --ignore-eos to `command`.
void add_run_options(CLI::App& command, RunOptions& options);

// Applies the runtime options that concern the loaded model (CUDA graphs).
void configure_model(const RunOptions& options, model::CausalLM& model);

// The generator options for `options` and a model's config.
infer::GeneratorOptions generator_options(const RunOptions& options, const model::ModelConfig& config);

// Prints the generation statistics line to stderr (and the CUDA graph counts when any).
void print_stats(const infer::GenerationResult& result, const model::CausalLM& model);

}  // namespace anvil::cli
