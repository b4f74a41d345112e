// TinyRun: random text, prepared, and a tiny config over it.
#include "train/train_run_fixture.h"

#include <fstream>

#include "anvil/train/data_prepare.h"
#include "support/op_harness.h"

namespace anvil::testing {

TinyRun::TinyRun() {
  Rng rng(2024);
  const std::vector<std::string> words = {"the ", "cat ", "sat ", "on ", "a ", "mat.\n", "dog ", "ran ", "far "};
  std::string text;
  while (text.size() < 30000) text += words[rng() % words.size()];
  { std::ofstream(dir_.path("corpus.txt"), std::ios::binary) << text; }
  train::PrepareOptions options;
  options.inputs = {dir_.path("corpus.txt")};
  options.output_dir = data_ = dir_.path("data");
  options.show_progress = false;
  train::prepare_dataset(test_ctx(), options);
}

train::TrainConfig TinyRun::config(const std::string& family, const std::vector<std::string>& overrides) const {
  std::vector<std::string> all = {"model.family=" + family,
                                  "model.hidden_size=32",
                                  "model.num_layers=2",
                                  "model.num_heads=4",
                                  family == "llama" ? "model.num_kv_heads=2" : "model.num_kv_heads=0",
                                  "optimizer.lr=0.01",
                                  "optimizer.grad_clip=0.5",
                                  "schedule.warmup_steps=2",
                                  "run.batch_size=4",
                                  "run.seq_len=16",
                                  "run.grad_accum=2",
                                  "run.steps=10",
                                  "run.eval_batches=2",
                                  "data.path=" + data_,
                                  "run.out_dir=" + dir_.path("run")};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return train::load_train_config("", all);
}

}  // namespace anvil::testing
