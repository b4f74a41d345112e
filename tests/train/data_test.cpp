// `anvil data prepare` and the data loader: contents, determinism, sharding, resume.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "anvil/train/data_loader.h"
#include "anvil/train/data_prepare.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "model/tiny_model.h"

namespace anvil::testing {
namespace {

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), {}};
}

// Random lines of letters: distinct documents with newlines in them.
std::string random_text(Rng& rng, int lines) {
  std::string text;
  for (int l = 0; l < lines; ++l) {
    const int length = static_cast<int>(rng() % 60);
    for (int i = 0; i < length; ++i) text.push_back(static_cast<char>('a' + rng() % 26));
    text.push_back('\n');
  }
  return text;
}

struct Corpus {
  std::vector<std::string> documents;  // in the order prepare reads them
  std::string input;
};

Corpus make_corpus(const TempDir& dir, Rng& rng) {
  Corpus corpus;
  corpus.input = dir.path("corpus");
  const std::string b = random_text(rng, 300), a = random_text(rng, 50), nested = random_text(rng, 20);
  write_text(corpus.input + "/b.txt", b);
  write_text(corpus.input + "/a.txt", a);
  write_text(corpus.input + "/sub/c.txt", nested);
  write_text(corpus.input + "/.hidden", "never read");
  write_text(corpus.input + "/empty.txt", "");
  write_text(corpus.input + "/d.jsonl", "{\"text\": \"first doc\", \"id\": 1}\n\n{\"text\": \"second\\ndoc\"}\n");
  corpus.documents = {a, b, "first doc", "second\ndoc", nested};  // sorted paths: a, b, d.jsonl, empty, sub/c
  return corpus;
}

train::PrepareOptions prepare_options(const Corpus& corpus, const std::string& out) {
  train::PrepareOptions options;
  options.inputs = {corpus.input};
  options.output_dir = out;
  options.chunk_bytes = 100;  // many chunks per file
  options.shard_tokens = 2000;
  options.show_progress = false;
  return options;
}

std::vector<int32_t> all_tokens(const std::string& dataset) {
  const train::DatasetMeta meta = train::read_dataset_meta(dataset);
  std::vector<int32_t> tokens;
  for (const std::string& name : meta.shards) {
    const train::TokenShard shard = train::TokenShard::open(dataset + "/" + name);
    std::vector<int32_t> part(static_cast<size_t>(shard.num_tokens()));
    shard.read(0, part);
    tokens.insert(tokens.end(), part.begin(), part.end());
  }
  return tokens;
}

TEST(TrainData, PrepareWritesEveryDocumentThenEos) {
  Rng rng(test_seed());
  TempDir dir;
  const Corpus corpus = make_corpus(dir, rng);
  const train::PrepareStats stats = train::prepare_dataset(test_ctx(), prepare_options(corpus, dir.path("data")));
  std::vector<int32_t> expected;
  std::vector<int64_t> starts;
  for (const std::string& document : corpus.documents) {
    starts.push_back(static_cast<int64_t>(expected.size()));
    for (const char c : document) expected.push_back(static_cast<uint8_t>(c));
    expected.push_back(256);
  }
  EXPECT_EQ(all_tokens(dir.path("data")), expected);
  EXPECT_EQ(stats.documents, 5);
  EXPECT_EQ(stats.tokens, static_cast<int64_t>(expected.size()));
  EXPECT_GT(stats.shards, 1);
  const train::DatasetMeta meta = train::read_dataset_meta(dir.path("data"));
  EXPECT_EQ(meta.vocab_size, 257);
  EXPECT_EQ(meta.eos_id, 256);
  EXPECT_EQ(meta.tokens, stats.tokens);
  // The document index: starts, as global offsets, across shards.
  std::vector<int64_t> indexed;
  int64_t base = 0;
  for (const std::string& name : meta.shards) {
    const train::TokenShard shard = train::TokenShard::open(dir.path("data") + "/" + name);
    EXPECT_EQ(shard.token_bytes(), 2);
    for (const uint64_t start : shard.document_starts()) indexed.push_back(base + static_cast<int64_t>(start));
    base += shard.num_tokens();
  }
  EXPECT_EQ(indexed, starts);
}

TEST(TrainData, PrepareWithABpeTokenizerJson) {
  TempDir dir;
  const std::string tokenizer = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/tokenizer/small_gpt2.json";
  const std::string text = "The quick brown fox jumps over the lazy dog.\nIt was the best of times.\n";
  write_text(dir.path("in/doc.txt"), text);
  train::PrepareOptions options;
  options.inputs = {dir.path("in")};
  options.output_dir = dir.path("data");
  options.tokenizer = tokenizer;
  options.show_progress = false;
  train::prepare_dataset(test_ctx(), options);
  const tokenizer::BpeTokenizer bpe = tokenizer::BpeTokenizer::from_hf_json_file(tokenizer);
  std::vector<int32_t> expected = bpe.encode(text);
  const std::optional<int32_t> eos = bpe.find_token("<|endoftext|>");
  ASSERT_TRUE(eos.has_value());
  expected.push_back(*eos);
  EXPECT_EQ(all_tokens(dir.path("data")), expected);
  EXPECT_LT(expected.size(), text.size());  // merges happened
  const train::DatasetMeta meta = train::read_dataset_meta(dir.path("data"));
  EXPECT_EQ(meta.vocab_size, bpe.vocab_size());
  EXPECT_EQ(meta.eos_id, *eos);
}

TEST(TrainData, PrepareDoesNotDependOnThreads) {
  Rng rng(test_seed());
  TempDir dir;
  const Corpus corpus = make_corpus(dir, rng);
  Ctx one(CtxOptions{1, false}), three(CtxOptions{3, false});
  train::prepare_dataset(one, prepare_options(corpus, dir.path("one")));
  train::prepare_dataset(three, prepare_options(corpus, dir.path("three")));
  const train::DatasetMeta meta = train::read_dataset_meta(dir.path("one"));
  EXPECT_EQ(read_bytes(dir.path("one/meta.json")), read_bytes(dir.path("three/meta.json")));
  for (const std::string& shard : meta.shards) {
    EXPECT_EQ(read_bytes(dir.path("one/" + shard)), read_bytes(dir.path("three/" + shard))) << shard;
  }
}

TEST(TrainData, BadInputsAndDamagedShardsAreErrors) {
  Rng rng(test_seed());
  TempDir dir;
  const Corpus corpus = make_corpus(dir, rng);
  train::PrepareOptions options = prepare_options(corpus, dir.path("data"));
  options.jsonl_field = "body";
  EXPECT_THROW(train::prepare_dataset(test_ctx(), options), Error);  // d.jsonl has no "body"
  write_text(dir.path("bad.jsonl"), "{\"text\": \"ok\"}\nnot json\n");
  options = prepare_options(corpus, dir.path("data2"));
  options.inputs = {dir.path("bad.jsonl")};
  EXPECT_THROW(train::prepare_dataset(test_ctx(), options), Error);
  options.inputs = {dir.path("missing")};
  EXPECT_THROW(train::prepare_dataset(test_ctx(), options), Error);
  EXPECT_THROW(train::DataLoader(dir.path("nothing"), {}), Error);

  train::prepare_dataset(test_ctx(), prepare_options(corpus, dir.path("good")));
  const std::string shard = dir.path("good/shard_00000.bin");
  std::string bytes = read_bytes(shard);
  bytes[100] = static_cast<char>(bytes[100] ^ 1);
  write_text(shard, bytes);
  EXPECT_THROW(train::TokenShard::open(shard), Error);
  write_text(shard, bytes.substr(0, bytes.size() - 3));
  EXPECT_THROW(train::TokenShard::open(shard), Error);
}

struct LoaderFixture {
  TempDir dir;
  std::string data;
  LoaderFixture() {
    Rng rng(17);
    const Corpus corpus = make_corpus(dir, rng);
    data = dir.path("data");
    train::prepare_dataset(test_ctx(), prepare_options(corpus, data));
  }
};

train::LoaderOptions loader_options(uint64_t seed, int64_t rank = 0, int64_t world = 1) {
  train::LoaderOptions options;
  options.seq_len = 16;
  options.val_fraction = 0.1;
  options.seed = seed;
  options.rank = rank;
  options.world_size = world;
  return options;
}

// Key of a sequence: its first tokens (windows of random text are distinct).
std::vector<int32_t> row(const train::TokenBatch& batch, int64_t b) {
  return {batch.tokens.begin() + b * batch.seq, batch.tokens.begin() + (b + 1) * batch.seq};
}

TEST(TrainDataLoader, EpochsVisitEveryTrainingWindowOnceInASeededOrder) {
  LoaderFixture f;
  train::DataLoader loader(f.data, loader_options(5));
  const int64_t windows = loader.train_windows();
  ASSERT_GT(windows, 20);
  EXPECT_GT(loader.val_windows(), 0);
  const int64_t batch = 3;
  std::set<std::vector<int32_t>> seen;
  std::vector<std::vector<int32_t>> order;
  for (int64_t step = 0; step < windows / batch; ++step) {
    const train::TokenBatch b = loader.next_batch(batch);
    for (int64_t i = 0; i < batch; ++i) {
      // Targets are the tokens shifted by one.
      EXPECT_TRUE(
          std::equal(b.targets.begin() + i * 16, b.targets.begin() + i * 16 + 15, b.tokens.begin() + i * 16 + 1));
      seen.insert(row(b, i));
      order.push_back(row(b, i));
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), windows / batch * batch);  // no repeats within an epoch
  // Validation windows are not training windows.
  for (int64_t i = 0; i < loader.val_windows(); ++i) EXPECT_FALSE(seen.count(row(loader.val_batch(i, 1), 0)));
  // The next batch starts epoch 1 in a different order; the same seed repeats epoch 0.
  EXPECT_EQ(loader.next_batch(batch).batch, batch);
  EXPECT_EQ(loader.position().epoch, 1U);
  train::DataLoader again(f.data, loader_options(5));
  EXPECT_EQ(row(again.next_batch(1), 0), order[0]);
  train::DataLoader other(f.data, loader_options(6));
  std::vector<std::vector<int32_t>> other_order;
  for (int i = 0; i < 5; ++i) other_order.push_back(row(other.next_batch(1), 0));
  EXPECT_NE(other_order, std::vector<std::vector<int32_t>>(order.begin(), order.begin() + 5));
}

TEST(TrainDataLoader, ResumePositionContinuesExactly) {
  LoaderFixture f;
  train::DataLoader straight(f.data, loader_options(9));
  std::vector<train::TokenBatch> batches;
  const int64_t steps = straight.train_windows() / 4 + 5;  // crosses into the next epoch
  for (int64_t i = 0; i < steps; ++i) batches.push_back(straight.next_batch(4));
  for (const int64_t stop : {int64_t{0}, int64_t{3}, steps - 4}) {
    train::DataLoader first(f.data, loader_options(9));
    for (int64_t i = 0; i < stop; ++i) first.next_batch(4);
    train::DataLoader resumed(f.data, loader_options(9));
    resumed.set_position(first.position());
    for (int64_t i = stop; i < steps; ++i) {
      const train::TokenBatch b = resumed.next_batch(4);
      EXPECT_EQ(b.tokens, batches[static_cast<size_t>(i)].tokens) << "stop " << stop << " step " << i;
      EXPECT_EQ(b.targets, batches[static_cast<size_t>(i)].targets);
    }
  }
  train::DataLoader bad(f.data, loader_options(9));
  EXPECT_THROW(bad.set_position({0, 1U << 30}), Error);
}

TEST(TrainDataLoader, RanksTakeDisjointSlicesOfTheSameOrder) {
  LoaderFixture f;
  train::DataLoader single(f.data, loader_options(3));
  train::DataLoader rank0(f.data, loader_options(3, 0, 2)), rank1(f.data, loader_options(3, 1, 2));
  for (int step = 0; step < 4; ++step) {
    const train::TokenBatch both = single.next_batch(4);
    const train::TokenBatch a = rank0.next_batch(2), b = rank1.next_batch(2);
    EXPECT_EQ(row(a, 0), row(both, 0));
    EXPECT_EQ(row(a, 1), row(both, 1));
    EXPECT_EQ(row(b, 0), row(both, 2));
    EXPECT_EQ(row(b, 1), row(both, 3));
  }
  EXPECT_EQ(rank0.position(), rank1.position());
  EXPECT_THROW(train::DataLoader(f.data, loader_options(3, 2, 2)), Error);
}

TEST(TrainDataLoader, UnigramBaselineIsTheValidationEntropyUnderTrainingCounts) {
  LoaderFixture f;
  train::DataLoader loader(f.data, loader_options(1));
  const double baseline = loader.unigram_val_loss();
  // Random lowercase letters and newlines: close to log(27), far below log(257).
  EXPECT_GT(baseline, std::log(20.0));
  EXPECT_LT(baseline, std::log(40.0));
}

}  // namespace
}  // namespace anvil::testing
