// `anvil train --config FILE [key=value ...]`, `anvil data prepare INPUT... -o DIR`,
// `anvil plot LOG.jsonl [-o FILE.svg]`.
#include "train_command.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "anvil/context.h"
#include "anvil/train/data_prepare.h"
#include "anvil/train/loss_plot.h"
#include "anvil/train/train_run.h"

namespace anvil::cli {

namespace {

// Set by SIGINT/SIGTERM while `anvil train` runs: the run then stops after its current
// step with a checkpoint. A signal handler can only reach static storage, hence this one
// process-wide flag (nothing else in anvil is global).
std::atomic<bool> g_stop_training{false};

extern "C" void request_training_stop(int /*signal*/) { g_stop_training.store(true); }

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  train::TrainRunOptions run;
};

struct PrepareArgs {
  train::PrepareOptions options;
  int threads = 0;
};

struct PlotArgs {
  std::string log_path, svg_path;
};

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* train = app.add_subcommand("train", "Pre-train a GPT-2 or Llama-style model from a JSON config");
  train->add_option("--config", args->config_path, "JSON config file (see configs/)")->check(CLI::ExistingFile);
  train->add_option("overrides", args->overrides, "Config overrides: section.key=value (e.g. run.steps=100)");
  train->add_flag("--resume", args->run.resume, "Continue from the newest valid checkpoint in run.out_dir");
  train->add_flag("--overwrite", args->run.overwrite, "Start afresh even if run.out_dir holds checkpoints");
  train->add_option("--stop-after", args->run.stop_after_steps, "Stop with a checkpoint after this many steps");
  train->add_option("--dump-batches", args->run.dump_batches,
                    "Append every training batch (tokens, targets; i32) to this file, for replaying the run elsewhere");
  train->callback([args] {
    const train::TrainConfig config = train::load_train_config(args->config_path, args->overrides);
    Ctx ctx(CtxOptions{static_cast<int>(config.run.threads), config.run.device == "cuda", config.run.tune_gemms});
    args->run.stop_requested = &g_stop_training;
    std::signal(SIGINT, request_training_stop);
    std::signal(SIGTERM, request_training_stop);
    const train::TrainRunResult result = train::run_training(ctx, config, args->run);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (result.finished && result.unigram_val_loss > 0 && result.last_val_loss >= 0) {
      std::printf("train: final val loss %.4f vs unigram baseline %.4f\n", result.last_val_loss,
                  result.unigram_val_loss);
    }
  });
}

void add_data(CLI::App& app) {
  auto args = std::make_shared<PrepareArgs>();
  CLI::App* data = app.add_subcommand("data", "Prepare training data");
  data->require_subcommand(1);
  CLI::App* prepare = data->add_subcommand(
      "prepare", "Tokenise text files, folders and JSONL into token shards (streaming, in parallel)");
  prepare->add_option("inputs", args->options.inputs, "Text files, folders, *.jsonl")->required();
  prepare->add_option("-o,--output", args->options.output_dir, "Output folder")->required();
  prepare->add_option("--tokenizer", args->options.tokenizer, "\"bytes\", a tokenizer.json or a .gguf file");
  prepare->add_option("--field", args->options.jsonl_field, "Text field of JSONL records");
  prepare->add_option("--shard-tokens", args->options.shard_tokens, "Tokens per shard");
  prepare->add_option("--threads", args->threads, "Worker threads (0 = all cores)");
  prepare->callback([args] {
    Ctx ctx(CtxOptions{args->threads, false});
    const train::PrepareStats stats = train::prepare_dataset(ctx, args->options);
    std::printf(
        "data prepare: %lld files, %lld documents, %lld tokens in %lld shards (%.1f MB in %.1f s, %.1f MB/s) -> %s\n",
        static_cast<long long>(stats.files), static_cast<long long>(stats.documents),
        static_cast<long long>(stats.tokens), static_cast<long long>(stats.shards),
        static_cast<double>(stats.source_bytes) / 1e6, stats.seconds,
        stats.seconds > 0 ? static_cast<double>(stats.source_bytes) / 1e6 / stats.seconds : 0.0,
        args->options.output_dir.c_str());
  });
}

void add_plot(CLI::App& app) {
  auto args = std::make_shared<PlotArgs>();
  CLI::App* plot = app.add_subcommand("plot", "Draw the loss curves of a training log as an SVG");
  plot->add_option("log", args->log_path, "log.jsonl of a run")->required()->check(CLI::ExistingFile);
  plot->add_option("-o,--output", args->svg_path, "SVG file (default: loss.svg beside the log)");
  plot->callback([args] {
    std::string svg = args->svg_path;
    if (svg.empty()) {
      const size_t slash = args->log_path.find_last_of('/');
      svg = (slash == std::string::npos ? std::string() : args->log_path.substr(0, slash + 1)) + "loss.svg";
    }
    train::write_loss_plot(args->log_path, svg);
    std::printf("plot: %s\n", svg.c_str());
  });
}

}  // namespace

void add_train_commands(CLI::App& app) {
  add_train(app);
  add_data(app);
  add_plot(app);
}

}  // namespace anvil::cli
