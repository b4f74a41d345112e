// `anvil data prepare`: read pieces of documents in order, tokenise a batch of them in
// parallel, write the batch in order into shards, repeat.
#include "anvil/train/data_prepare.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "anvil/core/error.h"
#include "anvil/train/text_tokenizer.h"
#include "anvil/train/token_shard.h"
#include "atomic_file.h"

namespace anvil::train {

namespace {

namespace fs = std::filesystem;

// A piece of one document's text; a document is one or more consecutive pieces.
struct Piece {
  std::string text;
  bool starts_document = false;
  bool ends_document = false;
};

std::vector<fs::path> list_input_files(const std::vector<std::string>& inputs) {
  std::vector<fs::path> files;
  for (const std::string& input : inputs) {
    const fs::path path(input);
    ANVIL_CHECK(fs::exists(path), "data prepare: input '", input, "' does not exist");
    if (!fs::is_directory(path)) {
      files.push_back(path);
      continue;
    }
    std::vector<fs::path> found;
    for (auto it = fs::recursive_directory_iterator(path); it != fs::recursive_directory_iterator(); ++it) {
      const std::string name = it->path().filename().string();
      if (name.starts_with(".")) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) found.push_back(it->path());
    }
    std::sort(found.begin(), found.end());  // a stable order, whatever the file system lists
    files.insert(files.end(), found.begin(), found.end());
  }
  ANVIL_CHECK(!files.empty(), "data prepare: no input files");
  return files;
}

// Yields the pieces of every input file in order: text files in newline-aligned chunks,
// JSONL files one document per line.
class CorpusReader {
 public:
  CorpusReader(std::vector<fs::path> files, std::string field, int64_t chunk_bytes)
      : files_(std::move(files)), field_(std::move(field)), chunk_bytes_(chunk_bytes) {}

  bool next(Piece& piece) {
    while (true) {
      if (!stream_.is_open()) {
        if (next_file_ == files_.size()) return false;
        open(files_[next_file_++]);
      }
      if (jsonl_ ? next_line(piece) : next_chunk(piece)) return true;
      stream_.close();
    }
  }
  [[nodiscard]] int64_t bytes_read() const { return bytes_read_; }

 private:
  void open(const fs::path& path) {
    path_ = path.string();
    stream_.open(path, std::ios::binary);
    ANVIL_CHECK(stream_.good(), "data prepare: cannot read '", path_, "'");
    jsonl_ = path.extension() == ".jsonl";
    first_chunk_ = true;
    line_number_ = 0;
  }

  bool next_chunk(Piece& piece) {
    piece.text.assign(static_cast<size_t>(chunk_bytes_), '\0');
    stream_.read(piece.text.data(), chunk_bytes_);
    piece.text.resize(static_cast<size_t>(stream_.gcount()));
    std::string rest;
    if (stream_ && std::getline(stream_, rest)) {  // finish the line, so a chunk never splits one
      piece.text += rest;
      if (!stream_.eof()) piece.text += '\n';
    }
    if (piece.text.empty()) return false;  // the end (an empty file is no document)
    bytes_read_ += static_cast<int64_t>(piece.text.size());
    piece.starts_document = first_chunk_;
    first_chunk_ = false;
    piece.ends_document = stream_.peek() == std::char_traits<char>::eof();
    return true;
  }

  bool next_line(Piece& piece) {
    std::string line;
    while (std::getline(stream_, line)) {
      ++line_number_;
      bytes_read_ += static_cast<int64_t>(line.size()) + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const nlohmann::json document = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      ANVIL_CHECK(!document.is_discarded() && document.is_object(), "data prepare: '", path_, "' line ", line_number_,
                  " is not a JSON object");
      ANVIL_CHECK(document.contains(field_) && document[field_].is_string(), "data prepare: '", path_, "' line ",
                  line_number_, " has no string field '", field_, "'");
      piece.text = document[field_].get<std::string>();
      piece.starts_document = piece.ends_document = true;
      return true;
    }
    return false;
  }

  std::vector<fs::path> files_;
  std::string field_;
  int64_t chunk_bytes_;
  size_t next_file_ = 0;
  std::ifstream stream_;
  std::string path_;
  bool jsonl_ = false, first_chunk_ = true;
  int64_t line_number_ = 0, bytes_read_ = 0;
};

// Rolls shards over and writes meta.json at the end.
class DatasetWriter {
 public:
  DatasetWriter(const PrepareOptions& options, const TextTokenizer& tokenizer)
      : options_(options), tokenizer_(tokenizer) {}

  void write(const Piece& piece, const std::vector<int32_t>& tokens) {
    if (!shard_ || shard_->num_tokens() >= options_.shard_tokens) roll();
    if (piece.starts_document) {
      shard_->begin_document();
      ++stats_.documents;
    }
    shard_->append(tokens);
    stats_.tokens += static_cast<int64_t>(tokens.size());
    if (piece.ends_document) {
      const int32_t eos = tokenizer_.eos_id();
      shard_->append({&eos, 1});
      ++stats_.tokens;
    }
  }

  PrepareStats finish(int64_t files, int64_t source_bytes) {
    if (shard_) shard_->finish();
    nlohmann::json meta = {{"format", "anvil-tokens-v1"},
                           {"tokenizer", tokenizer_.name()},
                           {"vocab_size", tokenizer_.vocab_size()},
                           {"eos_id", tokenizer_.eos_id()},
                           {"tokens", stats_.tokens},
                           {"documents", stats_.documents},
                           {"source_bytes", source_bytes},
                           {"files", files},
                           {"shards", shard_names_}};
    detail::write_file_atomically((fs::path(options_.output_dir) / "meta.json").string(), meta.dump(2) + "\n");
    stats_.files = files;
    stats_.source_bytes = source_bytes;
    stats_.shards = static_cast<int64_t>(shard_names_.size());
    return stats_;
  }

 private:
  void roll() {
    if (shard_) shard_->finish();
    char name[32];
    std::snprintf(name, sizeof name, "shard_%05zu.bin", shard_names_.size());
    shard_names_.emplace_back(name);
    shard_ = std::make_unique<ShardWriter>((fs::path(options_.output_dir) / name).string(), tokenizer_.vocab_size(),
                                           tokenizer_.eos_id());
  }

  const PrepareOptions& options_;
  const TextTokenizer& tokenizer_;
  std::unique_ptr<ShardWriter> shard_;
  std::vector<std::string> shard_names_;
  PrepareStats stats_;
};

int64_t total_bytes(const std::vector<fs::path>& files) {
  int64_t total = 0;
  for (const fs::path& file : files) total += static_cast<int64_t>(fs::file_size(file));
  return total;
}

void print_progress(int64_t done, int64_t total, int64_t tokens, double seconds, bool final) {
  const double mb = static_cast<double>(done) / 1e6;
  std::fprintf(stderr, "\rprepare: %.1f / %.1f MB (%3.0f%%) | %lld tokens | %.1f MB/s%s", mb,
               static_cast<double>(total) / 1e6, total > 0 ? 100.0 * static_cast<double>(done) / total : 100.0,
               static_cast<long long>(tokens), seconds > 0 ? mb / seconds : 0.0, final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace

PrepareStats prepare_dataset(Ctx& ctx, const PrepareOptions& options) {
  ANVIL_CHECK(options.shard_tokens > 0 && options.chunk_bytes > 0,
              "data prepare: shard_tokens and chunk_bytes must be > 0");
  const auto start = std::chrono::steady_clock::now();
  const std::unique_ptr<TextTokenizer> tokenizer = make_text_tokenizer(options.tokenizer);
  const std::vector<fs::path> files = list_input_files(options.inputs);
  const int64_t source_bytes = total_bytes(files);
  fs::create_directories(options.output_dir);
  CorpusReader reader(files, options.jsonl_field, options.chunk_bytes);
  DatasetWriter writer(options, *tokenizer);
  // A batch: a few chunks per thread, so every thread has work and memory stays bounded.
  const int64_t batch_bytes = std::max<int64_t>(1, 4 * ctx.pool().num_threads()) * options.chunk_bytes;
  std::vector<Piece> pieces;
  std::vector<std::vector<int32_t>> tokens;
  int64_t written_tokens = 0;
  for (bool more = true; more;) {
    pieces.clear();
    int64_t bytes = 0;
    Piece piece;
    while (bytes < batch_bytes && pieces.size() < 65536 && (more = reader.next(piece))) {
      bytes += static_cast<int64_t>(piece.text.size());
      pieces.push_back(std::move(piece));
    }
    tokens.assign(pieces.size(), {});
    ctx.pool().parallel_for(static_cast<int64_t>(pieces.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        tokenizer->encode_append(pieces[static_cast<size_t>(i)].text, tokens[static_cast<size_t>(i)]);
      }
    });
    for (size_t i = 0; i < pieces.size(); ++i) {
      writer.write(pieces[i], tokens[i]);
      written_tokens += static_cast<int64_t>(tokens[i].size());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.show_progress) print_progress(reader.bytes_read(), source_bytes, written_tokens, seconds, !more);
  }
  PrepareStats stats = writer.finish(static_cast<int64_t>(files.size()), source_bytes);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

DatasetMeta read_dataset_meta(const std::string& dataset_dir) {
  const fs::path path = fs::path(dataset_dir) / "meta.json";
  std::ifstream stream(path);
  ANVIL_CHECK(stream.good(), "dataset '", dataset_dir, "' has no meta.json (prepare it with `anvil data prepare`)");
  std::ostringstream text;
  text << stream.rdbuf();
  const nlohmann::json meta = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  ANVIL_CHECK(!meta.is_discarded() && meta.is_object() && meta.value("format", "") == "anvil-tokens-v1", "'",
              path.string(), "' is not the meta.json of `anvil data prepare`");
  DatasetMeta result;
  try {
    result.tokenizer = meta.at("tokenizer").get<std::string>();
    result.vocab_size = meta.at("vocab_size").get<int64_t>();
    result.eos_id = meta.at("eos_id").get<int64_t>();
    result.tokens = meta.at("tokens").get<int64_t>();
    result.documents = meta.at("documents").get<int64_t>();
    result.shards = meta.at("shards").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& error) {
    throw make_error("'", path.string(), "': ", error.what());
  }
  for (const std::string& shard : result.shards) {
    ANVIL_CHECK(fs::path(shard).filename() == fs::path(shard), "'", path.string(), "': shard name '", shard,
                "' must be a plain file name");
  }
  return result;
}

}  // namespace anvil::train
