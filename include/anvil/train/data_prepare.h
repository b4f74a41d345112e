#pragma once
// `anvil data prepare`: tokenises text files, folders of them, and JSONL files (one
// document per line, text in a chosen field) into token shards (token_shard.h) plus a
// meta.json, streaming (a bounded batch of text in memory at a time) and in parallel on
// the context's thread pool. The result does not depend on the number of threads.
#include <cstdint>
#include <string>
#include <vector>

#include "anvil/context.h"

namespace anvil::train {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files or folders (recursively; hidden names skipped)
  std::string output_dir;
  std::string tokenizer = "bytes";     // see text_tokenizer.h
  std::string jsonl_field = "text";    // for *.jsonl inputs
  int64_t shard_tokens = 100'000'000;  // a new shard starts after this many tokens
  int64_t chunk_bytes = 1 << 20;       // text files are cut at a newline after this many bytes
  bool show_progress = true;           // a progress line with MB/s on stderr
};

struct PrepareStats {
  int64_t files = 0, documents = 0, tokens = 0, source_bytes = 0, shards = 0;
  double seconds = 0.0;
};

PrepareStats prepare_dataset(Ctx& ctx, const PrepareOptions& options);

// The dataset's meta.json: what the loader needs to open the shards.
struct DatasetMeta {
  std::string tokenizer;
  int64_t vocab_size = 0;
  int64_t eos_id = -1;
  int64_t tokens = 0;
  int64_t documents = 0;
  std::vector<std::string> shards;  // file names in the dataset folder, in order
};
DatasetMeta read_dataset_meta(const std::string& dataset_dir);

}  // namespace anvil::train
