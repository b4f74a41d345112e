// run_training (what `anvil train` runs): files of a run, stop + resume through the
// checkpoint folder with the same logged loss curve, and the SVG plot.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "anvil/model/causal_lm.h"
#include "anvil/train/checkpoint.h"
#include "anvil/train/loss_plot.h"
#include "anvil/train/train_run.h"
#include "anvil/train/trainer.h"
#include "train/train_run_fixture.h"

namespace anvil::testing {
namespace {

namespace fs = std::filesystem;

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::vector<nlohmann::json> records;
  std::ifstream stream(path);
  std::string line;
  while (std::getline(stream, line)) records.push_back(nlohmann::json::parse(line, nullptr, false));
  return records;
}

std::vector<double> logged(const std::vector<nlohmann::json>& records, const char* key) {
  std::vector<double> values;
  for (const nlohmann::json& record : records) {
    if (record.is_object() && record.contains(key)) values.push_back(record[key].get<double>());
  }
  return values;
}

train::TrainRunOptions quiet() {
  train::TrainRunOptions options;
  options.print = false;
  return options;
}

TEST(TrainRun, WritesLogPlotCheckpointsAndExport) {
  const TinyRun run;
  const train::TrainConfig config = run.config("llama", {"run.steps=8", "run.eval_every=4", "run.checkpoint_every=2",
                                                         "run.keep_checkpoints=2", "run.sample_every=4"});
  const train::TrainRunResult result = train::run_training(test_ctx(), config, quiet());
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(result.steps, 8);
  EXPECT_GT(result.unigram_val_loss, 0.0);
  const std::string out = config.run.out_dir;
  const std::vector<nlohmann::json> records = read_log(out + "/log.jsonl");
  EXPECT_EQ(logged(records, "loss").size(), 8U);
  EXPECT_EQ(logged(records, "val_loss").size(), 2U);
  for (const char* key : {"lr", "grad_norm", "tokens_per_s", "mfu", "rss_mb", "activation_mb"}) {
    EXPECT_EQ(logged(records, key).size(), 8U) << key;
  }
  EXPECT_EQ(train::list_checkpoints(out + "/checkpoints").size(), 2U);
  int samples = 0;
  for (const nlohmann::json& record : records) {
    if (!record.contains("sample")) continue;
    ++samples;
    EXPECT_GT(record["sample"].get<std::string>().size(), 100U);  // 32 prompt bytes + up to 200 sampled
  }
  EXPECT_EQ(samples, 2);
  const train::LossCurves curves = train::read_loss_curves(out + "/log.jsonl");
  EXPECT_EQ(curves.train.size(), 8U);
  EXPECT_EQ(curves.val.size(), 2U);
  EXPECT_DOUBLE_EQ(curves.baseline, result.unigram_val_loss);
  std::ifstream svg_stream(out + "/loss.svg");
  const std::string svg{std::istreambuf_iterator<char>(svg_stream), {}};
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("unigram baseline"), std::string::npos);
  const std::unique_ptr<model::CausalLM> model = model::load_causal_lm(test_ctx(), out + "/model");
  EXPECT_EQ(model->config().vocab_size, 320);  // 257 byte tokens, padded to a multiple of 64
  EXPECT_TRUE(fs::exists(out + "/model/tokenizer.json"));
  EXPECT_EQ(model::load_causal_lm(test_ctx(), out + "/model.gguf")->config().vocab_size, 320);
  // A second run into the same folder must say what to do.
  EXPECT_THROW(train::run_training(test_ctx(), config, quiet()), Error);
}

// --dump-batches records exactly the loader's training batches, in order: a fresh loader
// with the run's options yields the same micro-batches.
TEST(TrainRun, DumpBatchesRecordsTheTrainingData) {
  const TinyRun run;
  const train::TrainConfig config = run.config("llama", {"run.steps=3", "run.grad_accum=2", "run.eval_every=0"});
  train::TrainRunOptions options = quiet();
  options.dump_batches = config.run.out_dir + "/batches.bin";
  train::run_training(test_ctx(), config, options);
  const int64_t per_batch = config.run.batch_size * config.run.seq_len;
  std::ifstream stream(options.dump_batches, std::ios::binary);
  std::vector<int32_t> words(static_cast<size_t>(fs::file_size(options.dump_batches) / 4));
  stream.read(reinterpret_cast<char*>(words.data()), static_cast<std::streamsize>(words.size() * 4));
  ASSERT_EQ(static_cast<int64_t>(words.size()), 3 * 2 * 2 * per_batch);
  train::DataLoader loader(config.data.path, train::loader_options(config));
  for (int64_t micro = 0; micro < 6; ++micro) {
    const train::TokenBatch batch = loader.next_batch(config.run.batch_size);
    const auto first = words.begin() + micro * 2 * per_batch;
    EXPECT_TRUE(std::equal(batch.tokens.begin(), batch.tokens.end(), first)) << "tokens of micro-batch " << micro;
    EXPECT_TRUE(std::equal(batch.targets.begin(), batch.targets.end(), first + per_batch))
        << "targets of micro-batch " << micro;
  }
  options.dump_batches = config.run.out_dir + "/no/such/folder/batches.bin";
  options.overwrite = true;  // so the run folder itself is fine: only the dump file is not
  train::TrainConfig again = config;
  again.run.steps = 4;
  EXPECT_THROW(train::run_training(test_ctx(), again, options), Error);  // names the file it cannot write
}

TEST(TrainRun, StopAndResumeLogsTheSameLossCurve) {
  const TinyRun run;
  train::TrainConfig straight = run.config("gpt2", {"run.steps=9", "run.eval_every=3"});
  straight.run.out_dir = run.path("straight");
  train::run_training(test_ctx(), straight, quiet());
  train::TrainConfig stopped = straight;
  stopped.run.out_dir = run.path("stopped");
  train::TrainRunOptions options = quiet();
  options.stop_after_steps = 4;
  const train::TrainRunResult first = train::run_training(test_ctx(), stopped, options);
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.steps, 4);
  options = quiet();
  options.resume = true;
  const train::TrainRunResult second = train::run_training(test_ctx(), stopped, options);
  EXPECT_TRUE(second.finished);
  const std::vector<nlohmann::json> a = read_log(straight.run.out_dir + "/log.jsonl");
  const std::vector<nlohmann::json> b = read_log(stopped.run.out_dir + "/log.jsonl");
  EXPECT_EQ(logged(a, "loss"), logged(b, "loss"));
  EXPECT_EQ(logged(a, "val_loss"), logged(b, "val_loss"));
  EXPECT_EQ(logged(a, "grad_norm"), logged(b, "grad_norm"));
  EXPECT_EQ(logged(a, "loss").size(), 9U);
}

TEST(TrainRun, KilledRunResumesWithTheSameLossCurve) {
  const TinyRun run;
  train::TrainConfig straight = run.config("llama", {"run.steps=150", "run.eval_every=50", "run.checkpoint_every=5"});
  straight.run.out_dir = run.path("straight");
  train::run_training(test_ctx(), straight, quiet());
  train::TrainConfig killed = straight;
  killed.run.out_dir = run.path("killed");
  const std::string tenth = killed.run.out_dir + "/checkpoints/" + train::checkpoint_file_name(10);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the run to kill, with its own threads
    Ctx ctx(CtxOptions{2, false});
    train::run_training(ctx, killed, quiet());
    _exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(tenth) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it was killed";
  train::TrainRunOptions options = quiet();
  options.resume = true;
  const train::TrainRunResult resumed = train::run_training(test_ctx(), killed, options);
  EXPECT_TRUE(resumed.finished);
  const std::vector<nlohmann::json> a = read_log(straight.run.out_dir + "/log.jsonl");
  const std::vector<nlohmann::json> b = read_log(killed.run.out_dir + "/log.jsonl");
  EXPECT_EQ(logged(a, "loss").size(), 150U);
  EXPECT_EQ(logged(a, "loss"), logged(b, "loss"));
  EXPECT_EQ(logged(a, "val_loss"), logged(b, "val_loss"));
}

}  // namespace
}  // namespace anvil::testing
