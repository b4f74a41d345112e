// DataLoader: windows over memory-mapped shards, seeded epoch permutations, rank slices.
#include "anvil/train/data_loader.h"

#include <cmath>
#include <filesystem>

#include "anvil/core/error.h"

namespace anvil::train {

namespace {

// splitmix64: a small, well-mixed generator whose stream is fixed by its seed.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

}  // namespace

DataLoader::DataLoader(const std::string& dataset_dir, const LoaderOptions& options)
    : meta_(read_dataset_meta(dataset_dir)), options_(options) {
  ANVIL_CHECK(options.seq_len > 0, "data loader: seq_len must be > 0");
  ANVIL_CHECK(options.world_size > 0 && options.rank >= 0 && options.rank < options.world_size, "data loader: rank ",
              options.rank, " of world_size ", options.world_size);
  const int64_t t = options.seq_len;
  for (const std::string& name : meta_.shards) {
    shards_.push_back(TokenShard::open((std::filesystem::path(dataset_dir) / name).string()));
    const TokenShard& shard = shards_.back();
    ANVIL_CHECK(shard.vocab_size() == meta_.vocab_size, "shard '", shard.path(), "' has vocabulary ",
                shard.vocab_size(), " but meta.json says ", meta_.vocab_size);
    const int64_t windows = shard.num_tokens() > 0 ? (shard.num_tokens() - 1) / t : 0;
    int64_t val = options.val_fraction > 0.0 && windows >= 2
                      ? std::max<int64_t>(1, static_cast<int64_t>(std::ceil(options.val_fraction * windows)))
                      : 0;
    val = std::min(val, windows - 1);
    const auto shard_index = static_cast<uint32_t>(shards_.size() - 1);
    for (int64_t w = 0; w < windows; ++w) {
      (w < windows - val ? train_ : val_).push_back({shard_index, static_cast<uint64_t>(w * t)});
    }
  }
  ANVIL_CHECK(train_.size() < UINT32_MAX, "data loader: too many windows");
  ANVIL_CHECK(train_windows() >= options.world_size, "data loader: dataset '", dataset_dir, "' has ", train_windows(),
              " training windows of ", t + 1, " tokens: too few for ", options.world_size,
              " ranks (prepare more text or use a shorter seq_len)");
}

void DataLoader::shuffle_epoch(uint64_t epoch) {
  if (order_epoch_ == epoch) return;
  order_.resize(train_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<uint32_t>(i);
  SplitMix64 rng{options_.seed * 0x100000001b3ULL + epoch};
  for (size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates
    const size_t j = static_cast<size_t>(rng.next() % i);
    std::swap(order_[i - 1], order_[j]);
  }
  order_epoch_ = epoch;
}

TokenBatch DataLoader::next_batch(int64_t batch) {
  ANVIL_CHECK(batch > 0, "data loader: batch must be > 0");
  const auto step_windows = static_cast<uint64_t>(batch * options_.world_size);
  ANVIL_CHECK(step_windows <= train_.size(), "data loader: a step needs ", step_windows,
              " windows but the training split has ", train_.size());
  if (position_.consumed + step_windows > train_.size()) position_ = {position_.epoch + 1, 0};
  shuffle_epoch(position_.epoch);
  std::vector<Window> windows;
  const uint64_t first = position_.consumed + static_cast<uint64_t>(options_.rank * batch);
  for (int64_t i = 0; i < batch; ++i) windows.push_back(train_[order_[first + static_cast<uint64_t>(i)]]);
  position_.consumed += step_windows;
  return gather(windows);
}

void DataLoader::set_position(const LoaderPosition& position) {
  ANVIL_CHECK(position.consumed <= train_.size(), "data loader: resume position ", position.consumed, " is past the ",
              train_.size(), " training windows (is this the same dataset?)");
  position_ = position;
}

TokenBatch DataLoader::val_batch(int64_t index, int64_t batch) const {
  ANVIL_CHECK(!val_.empty(), "data loader: the dataset has no validation windows (data.val_fraction is 0?)");
  std::vector<Window> windows;
  for (int64_t i = 0; i < batch; ++i) {
    windows.push_back(val_[static_cast<size_t>((index * batch + i) % static_cast<int64_t>(val_.size()))]);
  }
  return gather(windows);
}

TokenBatch DataLoader::gather(const std::vector<Window>& windows) const {
  const int64_t t = options_.seq_len;
  TokenBatch out;
  out.batch = static_cast<int64_t>(windows.size());
  out.seq = t;
  out.tokens.resize(static_cast<size_t>(out.batch * t));
  out.targets.resize(out.tokens.size());
  std::vector<int32_t> window(static_cast<size_t>(t + 1));
  for (size_t b = 0; b < windows.size(); ++b) {
    shards_[windows[b].shard].read(static_cast<int64_t>(windows[b].start), window);
    std::copy(window.begin(), window.end() - 1, out.tokens.begin() + static_cast<int64_t>(b) * t);
    std::copy(window.begin() + 1, window.end(), out.targets.begin() + static_cast<int64_t>(b) * t);
  }
  return out;
}

double DataLoader::unigram_val_loss() const {
  std::vector<double> counts(static_cast<size_t>(meta_.vocab_size), 1.0);  // add-one smoothing
  double total = static_cast<double>(meta_.vocab_size);
  std::vector<int32_t> window(static_cast<size_t>(options_.seq_len + 1));
  for (const Window& w : train_) {
    shards_[w.shard].read(static_cast<int64_t>(w.start), window);
    for (size_t i = 1; i < window.size(); ++i) counts[static_cast<size_t>(window[i])] += 1.0;
    total += static_cast<double>(window.size() - 1);
  }
  double loss = 0.0;
  int64_t n = 0;
  for (const Window& w : val_) {
    shards_[w.shard].read(static_cast<int64_t>(w.start), window);
    for (size_t i = 1; i < window.size(); ++i, ++n) loss -= std::log(counts[static_cast<size_t>(window[i])] / total);
  }
  return n > 0 ? loss / static_cast<double>(n) : 0.0;
}

}  // namespace anvil::train
