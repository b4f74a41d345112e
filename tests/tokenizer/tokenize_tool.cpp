// anvil_tokenize_tool: encodes a file of documents with any tokenizer load_tokenizer reads and
// writes the ids, for tools/check_tokenizers.py (comparison with HF `tokenizers` and throughput).
//
//   anvil_tokenize_tool TOKENIZER DOCUMENTS IDS_OUT [REPEAT]
//
// DOCUMENTS: records of (uint32 little-endian byte count, bytes). IDS_OUT: per document,
// (uint32 count, count int32 ids), little-endian. Each document is encoded on its own as HF's
// encode(text, add_special_tokens=False) would: special tokens parsed, no BOS/EOS, ill-formed
// UTF-8 replaced by U+FFFD as Python's errors="replace". The encode loop runs REPEAT times
// (default 1), single-threaded; the last line printed is
//   result: documents=N bytes=B tokens=T best_seconds=S first_seconds=F
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "anvil/core/error.h"
#include "anvil/tokenizer/tokenizer.h"

namespace {

using anvil::tokenizer::Tokenizer;

std::string read_binary(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw anvil::make_error("cannot open ", path);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

uint32_t read_u32(std::string_view bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i)
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return value;
}

void append_u32(std::string& out, uint32_t value) {
  for (size_t i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFU));
}

std::vector<std::string_view> split_documents(std::string_view bytes, const std::string& path) {
  std::vector<std::string_view> documents;
  for (size_t offset = 0; offset < bytes.size();) {
    if (bytes.size() - offset < 4) throw anvil::make_error(path, ": truncated record header at byte ", offset);
    const uint32_t length = read_u32(bytes, offset);
    offset += 4;
    if (bytes.size() - offset < length) throw anvil::make_error(path, ": truncated record at byte ", offset);
    documents.push_back(bytes.substr(offset, length));
    offset += length;
  }
  return documents;
}

// Encodes every document once (appending each one's ids to `all_ids` when given); returns the
// seconds it took.
double encode_all(const Tokenizer& tokenizer, const std::vector<std::string_view>& documents,
                  std::vector<std::vector<int32_t>>* all_ids) {
  const anvil::tokenizer::EncodeOptions options{.invalid_utf8 = anvil::tokenizer::InvalidUtf8::Replace};
  std::vector<int32_t> ids;
  const auto start = std::chrono::steady_clock::now();
  for (const std::string_view document : documents) {
    ids.clear();
    tokenizer.encode_append(document, ids, options);
    if (all_ids != nullptr) all_ids->push_back(ids);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void write_ids(const std::string& path, const std::vector<std::vector<int32_t>>& all_ids) {
  std::string out;
  for (const std::vector<int32_t>& ids : all_ids) {
    append_u32(out, static_cast<uint32_t>(ids.size()));
    for (const int32_t id : ids) append_u32(out, static_cast<uint32_t>(id));
  }
  std::ofstream stream(path, std::ios::binary);
  stream.write(out.data(), static_cast<std::streamsize>(out.size()));
  if (!stream) throw anvil::make_error("cannot write ", path);
}

int run(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s TOKENIZER DOCUMENTS IDS_OUT [REPEAT]\n", argv[0]);
    return 2;
  }
  const int repeat = argc == 5 ? std::max(1, std::atoi(argv[4])) : 1;
  const std::shared_ptr<const Tokenizer> tokenizer = anvil::tokenizer::load_tokenizer(argv[1]);
  std::printf("tokenizer: %s\n", tokenizer->describe().c_str());
  const std::string bytes = read_binary(argv[2]);
  const std::vector<std::string_view> documents = split_documents(bytes, argv[2]);
  std::vector<std::vector<int32_t>> all_ids;
  all_ids.reserve(documents.size());
  const double first_seconds = encode_all(*tokenizer, documents, &all_ids);
  double best_seconds = first_seconds;
  for (int run_index = 1; run_index < repeat; ++run_index) {
    best_seconds = std::min(best_seconds, encode_all(*tokenizer, documents, nullptr));
  }
  write_ids(argv[3], all_ids);
  size_t text_bytes = 0;
  size_t tokens = 0;
  for (size_t index = 0; index < documents.size(); ++index) {
    text_bytes += documents[index].size();
    tokens += all_ids[index].size();
  }
  std::printf("result: documents=%zu bytes=%zu tokens=%zu best_seconds=%.6f first_seconds=%.6f\n", documents.size(),
              text_bytes, tokens, best_seconds, first_seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const anvil::Error& error) {
    std::fprintf(stderr, "anvil_tokenize_tool: %s\n", error.what());
    return 1;
  }
}
