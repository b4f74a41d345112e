// run_training: the loop of `anvil train` around a Trainer: resume, log, evaluate,
// checkpoint, plot, export.
#include "anvil/train/train_run.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "anvil/core/error.h"
#include "anvil/train/checkpoint.h"
#include "anvil/train/gguf_export.h"
#include "anvil/train/hf_export.h"
#include "anvil/train/loss_plot.h"
#include "anvil/train/text_sampler.h"
#include "anvil/train/text_tokenizer.h"
#include "anvil/train/trainer.h"
#include "atomic_file.h"

namespace anvil::train {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

double resident_megabytes() {
  std::ifstream statm("/proc/self/statm");
  long long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1e6;
}

// The run's files.
struct RunPaths {
  fs::path root, checkpoints, log, plot, model, config;
  explicit RunPaths(const std::string& out_dir)
      : root(out_dir),
        checkpoints(root / "checkpoints"),
        log(root / "log.jsonl"),
        plot(root / "loss.svg"),
        model(root / "model"),
        config(root / "config.json") {}
};

// Keeps the log lines of steps <= `step` (a resumed run rewrites what came after).
void truncate_log(const fs::path& log, int64_t step) {
  std::ifstream in(log);
  std::string kept, line;
  while (std::getline(in, line)) {
    const Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_discarded() && record.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  detail::write_file_atomically(log.string(), kept);
}

// Opens the run: a fresh start or the newest valid checkpoint.
std::optional<std::string> prepare_run_folder(const RunPaths& paths, const TrainRunOptions& options, bool print) {
  fs::create_directories(paths.checkpoints);
  const bool has_checkpoints = !list_checkpoints(paths.checkpoints.string()).empty();
  if (options.resume) {
    std::vector<std::string> skipped;
    std::optional<std::string> latest = latest_valid_checkpoint(paths.checkpoints.string(), &skipped);
    for (const std::string& reason : skipped)
      std::fprintf(stderr, "train: skipping damaged checkpoint: %s\n", reason.c_str());
    if (!latest) {
      if (print) std::printf("train: no valid checkpoint in %s: starting afresh\n", paths.checkpoints.c_str());
      fs::remove(paths.log);
    }
    return latest;
  }
  ANVIL_CHECK(!has_checkpoints || options.overwrite, "train: '", paths.root.string(),
              "' holds checkpoints of an earlier run: pass --resume to continue it or --overwrite to start afresh");
  for (const auto& [step, path] : list_checkpoints(paths.checkpoints.string())) fs::remove(path);
  fs::remove(paths.log);
  return std::nullopt;
}

class RunLog {
 public:
  explicit RunLog(const fs::path& path) : stream_(path, std::ios::app) {
    ANVIL_CHECK(stream_.good(), "train: cannot write the log '", path.string(), "'");
  }
  void write(const Json& record) {
    // Samples may hold bytes that are not UTF-8 (a byte-level model splits characters).
    stream_ << record.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    stream_.flush();
  }

 private:
  std::ofstream stream_;
};

Json start_record(Trainer& trainer, const TrainConfig& config, double baseline, double peak_gflops) {
  const ActivationMemory memory = trainer.model().activation_memory();
  const model::ModelConfig& m = trainer.config().model;
  return {
      {"event", "start"},
      {"step", trainer.step()},
      {"name", config.run.out_dir},
      {"architecture", model::architecture_name(m.architecture)},
      {"params", trainer.model().num_params()},
      {"vocab_size", m.vocab_size},
      {"tokens_per_step", config.run.batch_size * config.run.seq_len * config.run.grad_accum * config.run.world_size},
      {"train_windows", trainer.loader().train_windows()},
      {"val_windows", trainer.loader().val_windows()},
      {"unigram_val_loss", baseline},
      {"activation_bytes", memory.total()},
      {"device", config.run.device},
      {"precision", config.run.precision},
      {"peak_gflops", peak_gflops}};
}

// The loop's state besides the Trainer.
struct LoopState {
  double peak_gflops = 0.0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  TrainRunResult result;
};

// The device's allocator high-water mark over the last step in MB (0 on the CPU); starts the next.
double step_peak_memory_mb(Ctx& ctx, Trainer& trainer) {
  const Device device = trainer.model().options().device;
  if (device.is_cpu()) return 0.0;
  Backend& backend = ctx.backend(device);
  const double megabytes = static_cast<double>(backend.peak_memory_bytes()) / 1e6;
  backend.reset_peak_memory();
  return megabytes;
}

void log_step(Ctx& ctx, RunLog& log, Trainer& trainer, const StepStats& stats, const LoopState& loop, bool print) {
  const double mfu = trainer.flops_per_step() / std::max(stats.seconds, 1e-9) / (loop.peak_gflops * 1e9);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop.start).count();
  const Json record = {{"step", stats.step},
                       {"loss", stats.loss},
                       {"lr", stats.lr},
                       {"grad_norm", stats.grad_norm},
                       {"clip_scale", stats.clip_scale},
                       {"tokens_per_s", stats.tokens_per_second},
                       {"mfu", mfu},
                       {"rss_mb", resident_megabytes()},
                       {"activation_mb", static_cast<double>(trainer.model().activation_memory().total()) / 1e6},
                       {"peak_device_mb", step_peak_memory_mb(ctx, trainer)},
                       {"step_ms", stats.seconds * 1e3},
                       {"tokens_seen", trainer.tokens_seen()},
                       {"elapsed_s", elapsed}};
  log.write(record);
  if (print && (stats.step % trainer.config().run.log_every == 0 || stats.step == 1)) {
    std::printf("step %6lld/%lld | loss %.4f | lr %.2e | grad %.3f | %6.0f tok/s | mfu %4.1f%% | %.0f ms | %.0f s\n",
                static_cast<long long>(stats.step), static_cast<long long>(trainer.config().run.steps), stats.loss,
                stats.lr, stats.grad_norm, stats.tokens_per_second, 100.0 * mfu, stats.seconds * 1e3, elapsed);
    std::fflush(stdout);
  }
}

void evaluate_and_plot(RunLog& log, Trainer& trainer, const RunPaths& paths, LoopState& loop, bool print) {
  const double val = trainer.evaluate();
  loop.result.last_val_loss = val;
  log.write({{"step", trainer.step()}, {"val_loss", val}});
  write_loss_plot(paths.log.string(), paths.plot.string());
  if (print) {
    std::printf("step %6lld | val loss %.4f (unigram baseline %.4f) | plot %s\n",
                static_cast<long long>(trainer.step()), val, loop.result.unigram_val_loss, paths.plot.c_str());
    std::fflush(stdout);
  }
}

void save(Trainer& trainer, const RunPaths& paths, LoopState& loop) {
  const fs::path path = paths.checkpoints / checkpoint_file_name(trainer.step());
  trainer.save_checkpoint(path.string());
  prune_checkpoints(paths.checkpoints.string(), trainer.config().run.keep_checkpoints);
  loop.result.last_checkpoint = path.string();
}

// Exports the model and continues the start of the first validation window with it (what
// `anvil generate` will do with the exported folder); logs and prints the text.
void sample(Ctx& ctx, Trainer& trainer, const RunPaths& paths, RunLog& log, bool print) {
  if (trainer.loader().val_windows() == 0) return;
  const std::string& tokenizer_name = trainer.loader().meta().tokenizer;
  export_hf(trainer.model(), paths.model.string(), tokenizer_name);
  const TokenBatch window = trainer.loader().val_batch(0, 1);
  const std::vector<int32_t> prompt(
      window.tokens.begin(), window.tokens.begin() + std::min<int64_t>(32, static_cast<int64_t>(window.tokens.size())));
  const std::vector<int32_t> ids =
      sample_continuation(ctx, paths.model.string(), prompt, 200, 0.8F, trainer.config().run.seed + trainer.step());
  std::string text;
  try {
    const std::unique_ptr<TextTokenizer> tokenizer = make_text_tokenizer(tokenizer_name);
    text = tokenizer->decode(prompt) + " >>> " + tokenizer->decode(ids);
  } catch (const Error&) {
    text = "(tokenizer '" + tokenizer_name + "' is not available to decode the sample)";
  }
  log.write({{"step", trainer.step()}, {"sample", text}});
  if (print) {
    std::printf("step %6lld | sample: %s\n", static_cast<long long>(trainer.step()), text.c_str());
    std::fflush(stdout);
  }
}

void print_start(const Json& start, const std::optional<std::string>& resume_from) {
  const std::string resumed = resume_from ? ", resumed from " + *resume_from : "";
  std::printf("train: %s, %.2fM params, %lld tokens/step, %.1f MB activations, unigram baseline %.4f%s\n",
              start["architecture"].get<std::string>().c_str(), start["params"].get<double>() / 1e6,
              start["tokens_per_step"].get<long long>(), start["activation_bytes"].get<double>() / 1e6,
              start["unigram_val_loss"].get<double>(), resumed.c_str());
  std::fflush(stdout);
}

// The model as a Hugging Face folder and as GGUF, and the final plot.
void export_run(Trainer& trainer, const RunPaths& paths, bool print) {
  const std::string& tokenizer = trainer.loader().meta().tokenizer;
  export_hf(trainer.model(), paths.model.string(), tokenizer);
  export_gguf(trainer.model(), (paths.root / "model.gguf").string(), tokenizer);
  write_loss_plot(paths.log.string(), paths.plot.string());
  if (print) std::printf("train: model exported to %s and %s/model.gguf\n", paths.model.c_str(), paths.root.c_str());
}

}  // namespace

double estimate_peak_gflops(Ctx& ctx, const TrainConfig& config) {
  if (config.run.device == "cuda" && ctx.has_cuda()) {
    const DeviceReport report = ctx.backend(Device::cuda(0)).device_report();
    const double peak = config.run.precision == "bf16" ? report.peak_bf16_gflops : report.peak_f32_gflops;
    if (peak > 0) return peak;
  }
  double ghz = 2.5;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("cpu MHz", 0) == 0 && line.find(':') != std::string::npos) {
      ghz = std::stod(line.substr(line.find(':') + 1)) / 1000.0;
      break;
    }
  }
  // Two FMA units of 16 (AVX-512) or 8 (AVX2) f32 lanes, 2 FLOPs per FMA.
  const double flops_per_cycle = ctx.cpu_features().avx512f ? 64.0 : 32.0;
  return ctx.pool().num_threads() * ghz * flops_per_cycle;
}

TrainRunResult run_training(Ctx& ctx, const TrainConfig& config, const TrainRunOptions& options) {
  const RunPaths paths(config.run.out_dir);
  const std::optional<std::string> resume_from = prepare_run_folder(paths, options, options.print);
  Trainer trainer(ctx, config);
  if (resume_from) {
    trainer.load_checkpoint(*resume_from);
    truncate_log(paths.log, trainer.step());
  }
  detail::write_file_atomically(paths.config.string(), config.json.dump(2) + "\n");
  LoopState loop;
  loop.peak_gflops = config.run.peak_gflops > 0 ? config.run.peak_gflops : estimate_peak_gflops(ctx, config);
  loop.result.unigram_val_loss = trainer.loader().val_windows() > 0 ? trainer.loader().unigram_val_loss() : -1.0;
  RunLog log(paths.log);
  const Json start = start_record(trainer, config, loop.result.unigram_val_loss, loop.peak_gflops);
  log.write(start);
  if (options.print) print_start(start, resume_from);
  std::ofstream dump;
  if (!options.dump_batches.empty()) {
    dump.open(options.dump_batches, std::ios::binary | std::ios::trunc);
    ANVIL_CHECK(dump.good(), "train: cannot write --dump-batches file '", options.dump_batches, "'");
    trainer.set_batch_observer([&dump](const TokenBatch& batch) {
      dump.write(reinterpret_cast<const char*>(batch.tokens.data()),
                 static_cast<std::streamsize>(batch.tokens.size() * sizeof(int32_t)));
      dump.write(reinterpret_cast<const char*>(batch.targets.data()),
                 static_cast<std::streamsize>(batch.targets.size() * sizeof(int32_t)));
      ANVIL_CHECK(dump.good(), "train: writing the --dump-batches file failed");
    });
  }
  const RunConfig& run = config.run;
  bool stopped = false, out_of_time = false;
  while (trainer.step() < run.steps && !stopped) {
    const StepStats stats = trainer.train_step();
    log_step(ctx, log, trainer, stats, loop, options.print);
    const bool last = trainer.step() == run.steps;
    const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop.start).count() / 60;
    out_of_time = run.max_minutes > 0 && minutes >= run.max_minutes;
    const bool interrupted = options.stop_requested != nullptr && options.stop_requested->load();
    stopped =
        out_of_time || interrupted || (options.stop_after_steps > 0 && trainer.step() >= options.stop_after_steps);
    const bool eval_due = run.eval_every > 0 && trainer.step() % run.eval_every == 0;
    if (trainer.loader().val_windows() > 0 && (last || out_of_time || eval_due)) {
      evaluate_and_plot(log, trainer, paths, loop, options.print);
    }
    if (run.sample_every > 0 && (last || trainer.step() % run.sample_every == 0)) {
      sample(ctx, trainer, paths, log, options.print);
    }
    if (last || stopped || (run.checkpoint_every > 0 && trainer.step() % run.checkpoint_every == 0)) {
      save(trainer, paths, loop);
    }
  }
  loop.result.steps = trainer.step();
  loop.result.finished = trainer.step() >= run.steps;
  if (loop.result.finished || out_of_time) export_run(trainer, paths, options.print);
  if (stopped && !loop.result.finished && options.print) {
    std::printf("train: stopped at step %lld; continue with --resume (%s)\n", static_cast<long long>(trainer.step()),
                loop.result.last_checkpoint.c_str());
  }
  return loop.result;
}

}  // namespace anvil::train
