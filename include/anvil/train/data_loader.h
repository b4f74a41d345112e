#pragma once
// The training data loader over the shards of `anvil data prepare` (memory-mapped).
//
// Each shard is cut into windows of T + 1 tokens starting every T tokens (inputs are the
// first T, targets the last T); windows never cross shards. The last val_fraction of each
// shard's windows is the validation split. Every epoch visits the training windows in a
// permutation drawn from (seed, epoch), so the order is the same on every machine and run.
// A step of world_size ranks takes the next B * world_size windows of the permutation and
// rank r the r-th B of them; an epoch's tail that cannot fill a step is skipped. The
// position (epoch, windows consumed) is all a checkpoint needs to resume exactly.
#include <cstdint>
#include <string>
#include <vector>

#include "anvil/train/data_prepare.h"
#include "anvil/train/token_shard.h"

namespace anvil::train {

struct LoaderPosition {
  uint64_t epoch = 0;
  uint64_t consumed = 0;  // windows of this epoch taken by all ranks together
  bool operator==(const LoaderPosition&) const = default;
};

// B sequences of T tokens: tokens and their next-token targets, row-major (B, T).
struct TokenBatch {
  int64_t batch = 0, seq = 0;
  std::vector<int32_t> tokens, targets;
};

struct LoaderOptions {
  int64_t seq_len = 128;
  double val_fraction = 0.05;
  uint64_t seed = 1;
  int64_t rank = 0;
  int64_t world_size = 1;
};

class DataLoader {
 public:
  // Opens (and verifies) the shards of a prepared dataset.
  DataLoader(const std::string& dataset_dir, const LoaderOptions& options);

  [[nodiscard]] const DatasetMeta& meta() const { return meta_; }
  [[nodiscard]] int64_t train_windows() const { return static_cast<int64_t>(train_.size()); }
  [[nodiscard]] int64_t val_windows() const { return static_cast<int64_t>(val_.size()); }
  // This rank's next training batch of `batch` sequences; advances the position.
  TokenBatch next_batch(int64_t batch);
  [[nodiscard]] LoaderPosition position() const { return position_; }
  void set_position(const LoaderPosition& position);
  // Validation batch `index` (windows index * batch ... in order, wrapping around); the
  // same for every rank.
  [[nodiscard]] TokenBatch val_batch(int64_t index, int64_t batch) const;
  // Cross-entropy (nats per token) of the validation targets under the unigram
  // distribution of the training tokens (add-one smoothed): the baseline a model must beat.
  [[nodiscard]] double unigram_val_loss() const;

 private:
  struct Window {
    uint32_t shard;
    uint64_t start;
  };
  [[nodiscard]] TokenBatch gather(const std::vector<Window>& windows) const;
  void shuffle_epoch(uint64_t epoch);

  DatasetMeta meta_;
  LoaderOptions options_;
  std::vector<TokenShard> shards_;
  std::vector<Window> train_, val_;
  std::vector<uint32_t> order_;  // permutation of train_ for epoch order_epoch_
  uint64_t order_epoch_ = UINT64_MAX;
  LoaderPosition position_;
};

}  // namespace anvil::train
