// anvil: the command-line entry point. One file per subcommand: system and demo (the
// runtime), info (model files), generate, chat and perplexity (inference).
#include <CLI/CLI.hpp>

#include <iostream>

#include "chat.h"
#include "demo.h"
#include "generate.h"
#include "info.h"
#include "perplexity.h"
#include "train_command.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"anvil: one native stack to train, run and serve transformer language models"};
  app.require_subcommand(1);

  int threads = 0;
  auto* system = app.add_subcommand("system", "Show the CPU features, threads and backends anvil sees");
  system->add_option("--threads", threads, "Worker threads (0 = all cores)");
  auto* demo =
      app.add_subcommand("demo", "Train a tiny transformer block on a synthetic task (every op, forward and backward)");
  anvil::cli::DemoOptions demo_options;
  demo->add_option("--threads", demo_options.threads, "Worker threads (0 = all cores)");
  demo->add_option("--steps", demo_options.steps, "Optimizer steps");
  demo->add_option("--seed", demo_options.seed, "Random seed");

  auto* info = app.add_subcommand("info", "Show what a model file holds (GGUF, safetensors, or a Hugging Face folder)");
  std::string info_path;
  bool all_tensors = false;
  info->add_option("path", info_path, "Model file or folder")->required();
  info->add_flag("--all", all_tensors, "List every tensor");
  anvil::cli::add_train_commands(app);  // train, data prepare, plot (run from their callbacks)

  anvil::cli::GenerateOptions generate_options;
  auto* generate = anvil::cli::add_generate_command(app, generate_options);
  anvil::cli::ChatOptions chat_options;
  auto* chat = anvil::cli::add_chat_command(app, chat_options);
  anvil::cli::PerplexityCommandOptions perplexity_options;
  auto* perplexity = anvil::cli::add_perplexity_command(app, perplexity_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // Help and version exit 0; every usage mistake exits 1 (CLI11's own codes vary).
    return app.exit(error) == 0 ? 0 : 1;
  }
  try {
    if (*system) return anvil::cli::run_system(threads);
    if (*demo) return anvil::cli::run_demo(demo_options);
    if (*info) return anvil::cli::run_info(info_path, all_tensors);
    if (*generate) return anvil::cli::run_generate(generate_options);
    if (*chat) return anvil::cli::run_chat(chat_options);
    if (*perplexity) return anvil::cli::run_perplexity(perplexity_options);
  } catch (const std::exception& error) {
    std::cerr << "anvil: error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "anvil: error: " << error.what() << "\n";
  } catch (...) {
    std::cerr << "anvil: unknown error\n";
  }
  return 1;
}
