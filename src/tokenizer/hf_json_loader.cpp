// BpeTokenizer::from_hf_json: Hugging Face tokenizer.json files of byte-level BPE models.
// Supported: model BPE (no dropout, no subword prefix/suffix, no byte fallback), normalizer
// null or NFC, pre-tokenizers ByteLevel / Split (the known family regexes, Isolated) /
// Digits / Sequence of those, added tokens with all their flags. Anything else throws
// rather than tokenizing differently from HF.
#include <unordered_map>

#include "anvil/core/error.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "byte_level.h"
#include "hf_json_common.h"
#include "tokenizer_spec.h"

namespace anvil::tokenizer {
namespace {

using nlohmann::json;

constexpr std::string_view kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

using hf_json::Context;

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
  hf_json::check_plain_bpe(context, model);
  if (context.flag(model, "byte_fallback", false))
    context.fail("model.byte_fallback", "not supported (SentencePiece-style BPE)");
}

// Fills the per-id vectors from model.vocab and added_tokens; returns the vocabulary's token ids by text.
std::unordered_map<std::string, int32_t> read_vocab(const Context& context, const json& root, TokenizerSpec& spec) {
  spec.added_tokens = hf_json::read_added_tokens(context, root);
  hf_json::VocabIds vocab = hf_json::read_vocab_ids(context, root, spec.added_tokens);
  const std::unordered_map<std::string, int32_t>& ids = vocab.ids;
  const int64_t size = vocab.size;
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
  return std::move(vocab.ids);
}

void read_merges(const Context& context, const json& model, const std::unordered_map<std::string, int32_t>& ids,
                 TokenizerSpec& spec) {
  for (const hf_json::MergeIds& merge : hf_json::read_merge_ids(context, model, ids)) {
    spec.merges.push_back({merge.left, merge.right, merge.merged});
  }
}

}  // namespace

BpeTokenizer hf_json::bpe_tokenizer_from_json(const json& root, const std::string& name) {
  const Context context{name};
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
    if (root.contains("post_processor")) {
      const hf_json::PostProcessing post = hf_json::read_post_processor(root.at("post_processor"));
      if (post.bos) spec.bos = post.bos;
      if (post.eos) spec.eos = post.eos;
      spec.add_bos = post.bos.has_value();
      spec.add_eos = post.eos.has_value();
    }
  } catch (const json::exception& error) {
    throw make_error("tokenizer ", name, ": malformed field: ", error.what());
  }
  return build_tokenizer(std::move(spec));
}

BpeTokenizer BpeTokenizer::from_hf_json(std::string_view json_text, const std::string& name) {
  return hf_json::bpe_tokenizer_from_json(hf_json::parse(json_text, name), name);
}

BpeTokenizer BpeTokenizer::from_hf_json_file(const std::string& path) {
  return from_hf_json(hf_json::read_text_file(path), path);
}

}  // namespace anvil::tokenizer
