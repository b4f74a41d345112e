// Checkpoints: bit-identical resume, integrity checks, and kill -9 during writes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "anvil/train/checkpoint.h"
#include "anvil/train/trainer.h"
#include "train/train_run_fixture.h"

namespace anvil::testing {
namespace {

namespace fs = std::filesystem;

std::vector<double> run_steps(train::Trainer& trainer, int64_t steps) {
  std::vector<double> losses;
  for (int64_t i = 0; i < steps; ++i) losses.push_back(trainer.train_step().loss);
  return losses;
}

// k + m steps straight, against k steps, a checkpoint, a fresh trainer, and m steps.
void expect_bit_identical_resume(const TinyRun& run, const train::TrainConfig& config, int64_t k, int64_t m) {
  train::Trainer straight(test_ctx(), config);
  const std::vector<double> expected = run_steps(straight, k + m);
  const double expected_val = straight.evaluate();

  const std::string path = run.path("resume_" + std::to_string(k) + ".safetensors");
  {
    train::Trainer first(test_ctx(), config);
    const std::vector<double> head = run_steps(first, k);
    for (int64_t i = 0; i < k; ++i) EXPECT_EQ(head[static_cast<size_t>(i)], expected[static_cast<size_t>(i)]);
    first.save_checkpoint(path);
  }  // the first run is gone: only the file carries its state
  train::TrainConfig resumed_config = config;
  resumed_config.run.seed = config.run.seed + 1;  // a different init, overwritten by the checkpoint
  train::Trainer resumed(test_ctx(), resumed_config);
  resumed.load_checkpoint(path);
  EXPECT_EQ(resumed.step(), k);
  const std::vector<double> tail = run_steps(resumed, m);
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_EQ(tail[static_cast<size_t>(i)], expected[static_cast<size_t>(k + i)]) << "step " << k + i + 1;
  }
  EXPECT_EQ(resumed.evaluate(), expected_val);
  EXPECT_EQ(0, std::memcmp(resumed.model().params().raw_data(), straight.model().params().raw_data(),
                           static_cast<size_t>(straight.model().params().nbytes())));
}

TEST(TrainCheckpoint, ResumeGivesBitIdenticalLossCurve) {
  const TinyRun run;
  // Llama with AdamW, clipping and warmup + cosine; the loss must also fall.
  const train::TrainConfig llama = run.config("llama");
  expect_bit_identical_resume(run, llama, 4, 6);
  // GPT-2 with Muon, WSD and recomputation, resumed after the data's first epoch.
  const train::TrainConfig gpt2 =
      run.config("gpt2", {"optimizer.name=muon", "schedule.kind=wsd", "run.recompute=true", "run.steps=12"});
  expect_bit_identical_resume(run, gpt2, 7, 5);
}

TEST(TrainCheckpoint, LossCurveDoesNotDependOnThreadCount) {
  const TinyRun run;
  // Wide enough that matmuls, norms and attention split their work between threads.
  const train::TrainConfig config =
      run.config("llama", {"run.steps=5", "model.hidden_size=128", "run.seq_len=64", "run.batch_size=8"});
  Ctx one(CtxOptions{1, false}), three(CtxOptions{3, false});
  train::Trainer a(one, config), b(three, config);
  EXPECT_EQ(run_steps(a, 5), run_steps(b, 5));
  EXPECT_EQ(0, std::memcmp(a.model().params().raw_data(), b.model().params().raw_data(),
                           static_cast<size_t>(a.model().params().nbytes())));
}

TEST(TrainCheckpoint, TrainingLowersTheLoss) {
  const TinyRun run;
  train::Trainer trainer(test_ctx(), run.config("llama", {"run.steps=30", "optimizer.lr=0.02"}));
  const double before = trainer.evaluate();
  run_steps(trainer, 30);
  const double after = trainer.evaluate();
  EXPECT_LT(after, before - 1.0) << "val loss " << before << " -> " << after;
  EXPECT_LT(after, trainer.loader().unigram_val_loss());
}

TEST(TrainCheckpoint, MismatchedRunsAreRefused) {
  const TinyRun run;
  train::Trainer trainer(test_ctx(), run.config("llama"));
  trainer.train_step();
  const std::string path = run.path("ckpt.safetensors");
  trainer.save_checkpoint(path);
  train::Trainer wider(test_ctx(), run.config("llama", {"model.hidden_size=64"}));
  EXPECT_THROW(wider.load_checkpoint(path), Error);  // another layout
  train::Trainer other_lr(test_ctx(), run.config("llama", {"optimizer.lr=0.5"}));
  EXPECT_THROW(other_lr.load_checkpoint(path), Error);  // would not continue the same curve
  train::Trainer longer(test_ctx(), run.config("llama", {"run.steps=100", "run.eval_every=3"}));
  EXPECT_NO_THROW(longer.load_checkpoint(path));  // steps and logging may change
}

std::string read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), {}};
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::vector<std::pair<std::string, Tensor>> payload(int64_t numel, float value) {
  return {{"params", Tensor::from_f32({numel}, std::vector<float>(static_cast<size_t>(numel), value))},
          {"optimizer.m", Tensor::from_f32({3}, std::vector<float>{1.0F, 2.0F, 3.0F})}};
}

TEST(TrainCheckpoint, DamagedFilesNeverLoad) {
  TempDir dir;
  const std::string folder = dir.path("ckpt");
  fs::create_directories(folder);
  for (int64_t step : {10, 20, 30}) {
    train::write_checkpoint(folder + "/" + train::checkpoint_file_name(step), {{"step", step}},
                            payload(1000, static_cast<float>(step)));
  }
  const std::string newest = folder + "/" + train::checkpoint_file_name(30);
  const std::string middle = folder + "/" + train::checkpoint_file_name(20);
  EXPECT_EQ(train::Checkpoint::open(newest).state().at("step"), 30);
  std::string bytes = read_bytes(newest);
  bytes[bytes.size() - 100] = static_cast<char>(bytes[bytes.size() - 100] ^ 0x40);  // a flipped bit in the data
  write_bytes(newest, bytes);
  EXPECT_THROW(train::Checkpoint::open(newest), Error);
  const std::string middle_bytes = read_bytes(middle);
  write_bytes(middle, middle_bytes.substr(0, middle_bytes.size() / 2));  // truncated
  EXPECT_THROW(train::Checkpoint::open(middle), Error);
  write_bytes(folder + "/" + train::checkpoint_file_name(40) + ".tmp", "half a checkpoint");  // an interrupted write
  std::vector<std::string> skipped;
  const std::optional<std::string> latest = train::latest_valid_checkpoint(folder, &skipped);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(*latest, folder + "/" + train::checkpoint_file_name(10));
  EXPECT_EQ(skipped.size(), 2U);
  train::prune_checkpoints(folder, 1);
  EXPECT_EQ(train::list_checkpoints(folder).size(), 1U);
  EXPECT_FALSE(fs::exists(folder + "/" + train::checkpoint_file_name(40) + ".tmp"));
}

TEST(TrainCheckpoint, KillDuringWritesLeavesOnlyValidCheckpoints) {
  TempDir dir;
  size_t complete = 0;
  for (int trial = 0; trial < 6; ++trial) {
    const std::string folder = dir.path("kill" + std::to_string(trial));
    fs::create_directories(folder);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Writes checkpoints of 8 MB as fast as it can until killed (file I/O only).
      for (int64_t step = 1;; ++step) {
        train::write_checkpoint(folder + "/" + train::checkpoint_file_name(step), {{"step", step}},
                                payload(2'000'000, static_cast<float>(step)));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(40 + 37 * trial));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status));
    // Every file under a checkpoint name is complete and loads with its own values.
    for (const auto& [step, path] : train::list_checkpoints(folder)) {
      const train::Checkpoint checkpoint = train::Checkpoint::open(path);
      EXPECT_EQ(checkpoint.state().at("step"), step);
      const Tensor params = checkpoint.tensor("params");
      EXPECT_EQ(params.data<const float>()[params.numel() - 1], static_cast<float>(step));
      ++complete;
    }
  }
  EXPECT_GT(complete, 0U) << "no checkpoint was completed before the kills: the test saw nothing";
}

}  // namespace
}  // namespace anvil::testing
