#pragma once
// `anvil perplexity -m MODEL -f FILE`: perplexity of a model on a text file.
#include <CLI/CLI.hpp>
#include <string>

namespace anvil::cli {

struct PerplexityCommandOptions {
  std::string model_path;
  std::string text_path;
  int threads = 0;
  std::string device = "cpu";  // cpu or cuda
  int64_t context_size = 512;
  int64_t batch_size = 512;
  int64_t max_chunks = 0;
  bool second_half = false;  // llama.cpp's llama-perplexity tool: second halves of whole chunks only
};

// Adds the `perplexity` subcommand to `app`.
CLI::App* add_perplexity_command(CLI::App& app, PerplexityCommandOptions& options);
// Prints per-chunk progress and the final PPL +/- its standard error.
int run_perplexity(const PerplexityCommandOptions& options);

}  // namespace anvil::cli
