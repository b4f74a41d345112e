// BpeTokenizer::from_hf_json: Hugging Face tokenizer.json files of byte-level BPE models.
// Supported: model BPE (no dropout, no subword prefix/suffix, no byte fallback), normalizer
// null or NFC, pre-tokenizers ByteLevel / Split (the known family regexes, Isolated) /
// Digits / Sequence of those, added tokens with all their flags. Anything else throws
// rather than tokenizing differently from HF.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "anvil/core/error.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "byte_level.h"
#include "tokenizer_spec.h"

namespace anvil::tokenizer {
namespace {

using nlohmann::json;

constexpr std::string_view kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Errors name the file and the JSON path of the offending field.
struct Context {
  const std::string& source;
  [[noreturn]] void fail(const std::string& where, const std::string& message) const {
    throw make_error("tokenizer ", source, ": ", where, ": ", message);
  }
  const json& field(const json& object, const std::string& where, const char* key) const {
    if (!object.is_object() || !object.contains(key)) fail(where, std::string("missing field '") + key + "'");
    return object.at(key);
  }
  std::string string_field(const json& object, const std::string& where, const char* key) const {
    const json& value = field(object, where, key);
    if (!value.is_string()) fail(where + "." + key, "expected a string");
    return value.get<std::string>();
  }
  bool flag(const json& object, const char* key, bool fallback) const {
    if (!object.contains(key) || object.at(key).is_null()) return fallback;
    return object.at(key).get<bool>();
  }
};

void parse_pre_tokenizer(const Context& context, const json& node, const std::string& where, PreTokenizer& pre,
                         bool& byte_level) {
  const std::string type = context.string_field(node, where, "type");
  if (type == "Sequence") {
    const json& steps = context.field(node, where, "pretokenizers");
    for (size_t index = 0; index < steps.size(); ++index) {
      parse_pre_tokenizer(context, steps[index], where + ".pretokenizers[" + std::to_string(index) + "]", pre,
                          byte_level);
    }
  } else if (type == "ByteLevel") {
    if (context.flag(node, "add_prefix_space", false)) context.fail(where, "add_prefix_space is not supported");
    if (byte_level) context.fail(where, "a second ByteLevel pre-tokenizer");
    byte_level = true;
    if (context.flag(node, "use_regex", true)) pre.split(SplitPattern::Gpt2);
  } else if (type == "Digits") {
    pre.digits(context.flag(node, "individual_digits", false));
  } else if (type == "Split") {
    const json& pattern = context.field(node, where, "pattern");
    if (!pattern.contains("Regex")) context.fail(where, "only Regex split patterns are supported");
    const std::string regex = pattern.at("Regex").get<std::string>();
    if (context.string_field(node, where, "behavior") != "Isolated" || context.flag(node, "invert", false)) {
      context.fail(where, "only behavior Isolated without invert is supported");
    }
    if (byte_level) context.fail(where, "a Split after ByteLevel would see byte-level text");
    if (regex == kGpt2Regex) {
      pre.split(SplitPattern::Gpt2);
    } else if (regex == kLlama3Regex) {
      pre.split(SplitPattern::Llama3);
    } else if (regex == kQwen2Regex) {
      pre.split(SplitPattern::Qwen2);
    } else {
      context.fail(where, "unsupported split regex (known: GPT-2, Llama 3, Qwen2): " + regex);
    }
  } else {
    context.fail(where, "unsupported pre-tokenizer type '" + type + "'");
  }
}

Normalizer parse_normalizer(const Context& context, const json& node) {
  if (node.is_null()) return Normalizer::None;
  const std::string type = context.string_field(node, "normalizer", "type");
  if (type == "NFC") return Normalizer::Nfc;
  if (type == "Sequence" && node.contains("normalizers") && node.at("normalizers").empty()) return Normalizer::None;
  if (type == "Sequence" && node.contains("normalizers") && node.at("normalizers").size() == 1) {
    return parse_normalizer(context, node.at("normalizers")[0]);
  }
  context.fail("normalizer", "unsupported normalizer '" + type + "' (supported: none, NFC)");
}

void check_model(const Context& context, const json& model) {
  if (context.string_field(model, "model", "type") != "BPE") context.fail("model.type", "only BPE is supported");
  if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() != 0.0) {
    context.fail("model.dropout", "BPE dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model.at(key).is_null() && !model.at(key).get<std::string>().empty()) {
      context.fail(std::string("model.") + key, "not supported");
    }
  }
  if (context.flag(model, "byte_fallback", false))
    context.fail("model.byte_fallback", "not supported (SentencePiece-style BPE)");
}

// Fills the per-id vectors from model.vocab and added_tokens; returns the vocabulary's token ids by text.
std::unordered_map<std::string, int32_t> read_vocab(const Context& context, const json& root, TokenizerSpec& spec) {
  const json& vocab = context.field(context.field(root, "", "model"), "model", "vocab");
  if (!vocab.is_object()) context.fail("model.vocab", "expected an object");
  std::unordered_map<std::string, int32_t> ids;
  ids.reserve(vocab.size());
  int64_t size = 0;
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) context.fail("model.vocab[" + text + "]", "bad id");
    ids.emplace(text, id.get<int32_t>());
    size = std::max(size, id.get<int64_t>() + 1);
  }
  const json& added = root.contains("added_tokens") ? root.at("added_tokens") : json::array();
  for (size_t index = 0; index < added.size(); ++index) {
    const json& token = added[index];
    const std::string where = "added_tokens[" + std::to_string(index) + "]";
    const int64_t id = context.field(token, where, "id").get<int64_t>();
    if (id < 0) context.fail(where, "bad id");
    size = std::max(size, id + 1);
    const bool special = context.flag(token, "special", false);
    // Missing flags take HF's AddedToken::from defaults (special tokens are not normalized).
    spec.added_tokens.push_back({static_cast<int32_t>(id), context.string_field(token, where, "content"), special,
                                 context.flag(token, "lstrip", false), context.flag(token, "rstrip", false),
                                 context.flag(token, "single_word", false),
                                 context.flag(token, "normalized", !special)});
  }
  spec.token_bytes.assign(static_cast<size_t>(size), std::string());
  spec.token_kinds.assign(static_cast<size_t>(size), TokenKind::Unused);
  spec.in_bpe_vocab.assign(static_cast<size_t>(size), 0);
  // HF decodes a token through the ByteLevel decoder when all its characters are in the
  // byte-level alphabet, else as its UTF-8 text; added tokens go the same way.
  const auto set_token = [&](int32_t id, const std::string& text, TokenKind kind) {
    std::optional<std::string> bytes = byte_level_decode(text);
    spec.in_bpe_vocab[static_cast<size_t>(id)] = kind == TokenKind::Normal && bytes ? 1 : 0;
    if (bytes) {
      spec.token_bytes[static_cast<size_t>(id)] = std::move(*bytes);
    } else {
      spec.token_bytes[static_cast<size_t>(id)] = text;
    }
    spec.token_kinds[static_cast<size_t>(id)] = kind;
  };
  for (const auto& [text, id] : ids) set_token(id, text, TokenKind::Normal);
  for (const AddedToken& token : spec.added_tokens) {
    const bool in_vocab = ids.contains(token.content) && ids.at(token.content) == token.id;
    set_token(token.id, token.content, token.special ? TokenKind::Special : TokenKind::UserDefined);
    if (in_vocab) spec.in_bpe_vocab[static_cast<size_t>(token.id)] = byte_level_decode(token.content) ? 1 : 0;
  }
  return ids;
}

void read_merges(const Context& context, const json& model, const std::unordered_map<std::string, int32_t>& ids,
                 TokenizerSpec& spec) {
  const json& merges = context.field(model, "model", "merges");
  spec.merges.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& merge = merges[rank];
    std::string left;
    std::string right;
    if (merge.is_string()) {  // "a b"
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ', 1);
      if (space == std::string::npos) context.fail("model.merges[" + std::to_string(rank) + "]", "expected 'a b'");
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2) {  // ["a", "b"]
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      context.fail("model.merges[" + std::to_string(rank) + "]", "expected \"a b\" or [\"a\", \"b\"]");
    }
    const auto left_id = ids.find(left);
    const auto right_id = ids.find(right);
    const auto merged_id = ids.find(left + right);
    if (left_id == ids.end() || right_id == ids.end() || merged_id == ids.end()) {
      context.fail(
          "model.merges[" + std::to_string(rank) + "]",
          std::string("'").append(left).append(" ").append(right).append("' names a token that is not in model.vocab"));
    }
    spec.merges.push_back({left_id->second, right_id->second, merged_id->second});
  }
}

// BOS from a TemplateProcessing post-processor whose single-sequence template starts with a special token.
void read_post_processor(const json& node, TokenizerSpec& spec) {
  if (!node.is_object() || !node.contains("type")) return;
  if (node.at("type") == "Sequence" && node.contains("processors")) {
    for (const json& processor : node.at("processors")) read_post_processor(processor, spec);
    return;
  }
  if (node.at("type") != "TemplateProcessing" || !node.contains("single") || node.at("single").empty()) return;
  const json& first = node.at("single")[0];
  if (!first.contains("SpecialToken")) return;
  const std::string name = first.at("SpecialToken").at("id").get<std::string>();
  const json& ids = node.at("special_tokens").at(name).at("ids");
  if (ids.size() == 1) {
    spec.bos = ids[0].get<int32_t>();
    spec.add_bos = true;
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::from_hf_json(std::string_view json_text, const std::string& name) {
  const Context context{name};
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& error) {
    throw make_error("tokenizer ", name, ": not valid JSON: ", error.what());
  }
  TokenizerSpec spec;
  spec.source = name;
  try {
    const json& model = context.field(root, "", "model");
    check_model(context, model);
    const std::unordered_map<std::string, int32_t> ids = read_vocab(context, root, spec);
    read_merges(context, model, ids, spec);
    spec.ignore_merges = context.flag(model, "ignore_merges", false);
    if (model.contains("unk_token") && model.at("unk_token").is_string()) {
      const auto unknown = ids.find(model.at("unk_token").get<std::string>());
      if (unknown != ids.end()) spec.unknown = unknown->second;
    }
    spec.normalizer = parse_normalizer(context, root.contains("normalizer") ? root.at("normalizer") : json());
    bool byte_level = false;
    const json& pre = root.contains("pre_tokenizer") ? root.at("pre_tokenizer") : json();
    if (!pre.is_null()) parse_pre_tokenizer(context, pre, "pre_tokenizer", spec.pre_tokenizer, byte_level);
    if (!byte_level)
      context.fail("pre_tokenizer", "needs a ByteLevel pre-tokenizer (only byte-level BPE is supported)");
    if (root.contains("post_processor")) read_post_processor(root.at("post_processor"), spec);
  } catch (const json::exception& error) {
    throw make_error("tokenizer ", name, ": malformed field: ", error.what());
  }
  return build_tokenizer(std::move(spec));
}

BpeTokenizer BpeTokenizer::from_hf_json_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw make_error("tokenizer: cannot open ", path);
  std::ostringstream contents;
  contents << stream.rdbuf();
  return from_hf_json(contents.str(), path);
}

}  // namespace anvil::tokenizer
