// Training configs: defaults, files, key=value overrides, and the errors that name the key.
#include <gtest/gtest.h>

#include <fstream>

#include "anvil/train/train_config.h"
#include "model/tiny_model.h"

namespace anvil::testing {
namespace {

TEST(TrainConfig, DefaultsFileAndOverridesMerge) {
  TempDir dir;
  {
    std::ofstream(dir.path("c.json")) << R"({
      // comments are allowed
      "model": {"family": "gpt2", "hidden_size": 96, "num_heads": 3},
      "run": {"steps": 7, "out_dir": "runs/x"}
    })";
  }
  const train::TrainConfig config = train::load_train_config(
      dir.path("c.json"),
      {"run.steps=12", "optimizer.lr=1e-3", "run.recompute=true", "schedule.kind=wsd", "data.path=/some/where"});
  EXPECT_EQ(config.model.architecture, model::Architecture::Gpt2);
  EXPECT_EQ(config.model.norm, model::NormKind::LayerNorm);
  EXPECT_TRUE(config.model.learned_positions);
  EXPECT_TRUE(config.model.tied_embeddings);  // GPT-2's default
  EXPECT_EQ(config.model.hidden_size, 96);
  EXPECT_EQ(config.model.head_dim, 32);
  EXPECT_EQ(config.model.num_kv_heads, 3);
  EXPECT_EQ(config.model.intermediate_size, 384);  // 4 C
  EXPECT_EQ(config.run.steps, 12);                 // the override wins over the file
  EXPECT_EQ(config.run.out_dir, "runs/x");
  EXPECT_TRUE(config.run.recompute);
  EXPECT_DOUBLE_EQ(config.optimizer.lr, 1e-3);
  EXPECT_EQ(config.schedule.kind, train::ScheduleKind::Wsd);
  EXPECT_EQ(config.data.path, "/some/where");
  EXPECT_EQ(config.json["run"]["steps"], 12);  // what checkpoints store
}

TEST(TrainConfig, LlamaDefaultsAndResolution) {
  train::TrainConfig config = train::load_train_config("", {"model.hidden_size=384", "model.num_heads=6"});
  EXPECT_EQ(config.model.architecture, model::Architecture::Llama);
  EXPECT_FALSE(config.model.tied_embeddings);
  EXPECT_EQ(config.model.intermediate_size, 1024);  // 8/3 C rounded up to 64
  EXPECT_EQ(config.model.vocab_size, 0);
  train::resolve_model_config(config, 257);
  EXPECT_EQ(config.model.vocab_size, 320);  // padded to 64
  EXPECT_EQ(config.model.max_position, config.run.seq_len);
  train::TrainConfig small = train::load_train_config("", {"model.vocab_size=100"});
  EXPECT_THROW(train::resolve_model_config(small, 257), Error);  // smaller than the data's vocabulary
}

TEST(TrainConfig, MistakesNameTheKey) {
  const auto message = [](const std::vector<std::string>& overrides) -> std::string {
    try {
      (void)train::load_train_config("", overrides);
    } catch (const Error& error) {
      return error.what();
    }
    return "";
  };
  EXPECT_NE(message({"run.step=5"}).find("unknown key 'step'"), std::string::npos);
  EXPECT_NE(message({"runs.steps=5"}).find("unknown key 'runs'"), std::string::npos);
  EXPECT_NE(message({"run.steps=many"}).find("run.steps must be an integer"), std::string::npos);
  EXPECT_NE(message({"run.steps=-1"}).find("run.steps must be >= 0"), std::string::npos);
  EXPECT_NE(message({"model.family=bert"}).find("model.family"), std::string::npos);
  EXPECT_NE(message({"model.hidden_size=100", "model.num_heads=3"}).find("multiple of num_heads"), std::string::npos);
  EXPECT_NE(message({"model.family=gpt2", "model.num_kv_heads=2"}).find("GPT-2"), std::string::npos);
  EXPECT_NE(message({"optimizer.name=sgd"}).find("optimizer.name"), std::string::npos);
  EXPECT_NE(message({"run=5"}).find("expected a JSON object"), std::string::npos);
  EXPECT_NE(message({"run.steps={\"a\": 1}"}).find("must be a plain value"), std::string::npos);
  EXPECT_NE(message({"steps"}).find("section.key=value"), std::string::npos);
  EXPECT_NE(message({"run.rank=2", "run.world_size=2"}).find("run.rank"), std::string::npos);
  EXPECT_NE(message({"run.precision=fp16"}).find("run.precision must be \"f32\" or \"bf16\""), std::string::npos);
  EXPECT_EQ(train::load_train_config("", {"run.precision=bf16"}).run.precision, "bf16");
  EXPECT_EQ(train::load_train_config("", {}).run.precision, "f32");
  EXPECT_THROW(train::load_train_config("/no/such/config.json", {}), Error);
  TempDir dir;
  { std::ofstream(dir.path("bad.json")) << "{\"model\": "; }
  EXPECT_THROW(train::load_train_config(dir.path("bad.json"), {}), Error);
}

}  // namespace
}  // namespace anvil::testing
