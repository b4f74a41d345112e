// anvil: the command-line entry point. Subcommands are added as their layers land
// (generate, chat, serve, train, ...); for now `system` and `demo` show the runtime.
#include <CLI/CLI.hpp>

#include <iostream>

#include "demo.h"
#include "info.h"
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

  CLI11_PARSE(app, argc, argv);
  try {
    if (*system) return anvil::cli::run_system(threads);
    if (*demo) return anvil::cli::run_demo(demo_options);
    if (*info) return anvil::cli::run_info(info_path, all_tensors);
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
