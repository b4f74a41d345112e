// SpmTokenizer::from_hf_json: Hugging Face tokenizer.json files of SentencePiece-style BPE
// models (LlamaTokenizerFast and its relatives). Supported: model BPE (byte_fallback, fuse_unk,
// unk_token, ignore_merges; no dropout, no subword prefix/suffix), normalizer null or a Sequence
// of Prepend("▁") / Replace(" ", "▁"), pre-tokenizer null or Metaspace("▁", any prepend_scheme,
// split or not), decoder Replace / ByteFallback / Fuse / Strip / Metaspace, added tokens with all
// their flags. Anything else throws rather than tokenizing differently from HF.
#include <algorithm>
#include <unordered_map>

#include "anvil/core/error.h"
#include "anvil/tokenizer/spm_tokenizer.h"
#include "hf_json_common.h"
#include "spm_spec.h"

namespace anvil::tokenizer {
namespace {

using hf_json::Context;
using nlohmann::json;

constexpr const char* kSpaceMark = "\xE2\x96\x81";  // "▁"

void parse_normalizer(const Context& context, const json& node, const std::string& where, SpmSpec& spec) {
  if (node.is_null()) return;
  const std::string type = context.string_field(node, where, "type");
  if (type == "Sequence") {
    const json& steps = context.field(node, where, "normalizers");
    for (size_t index = 0; index < steps.size(); ++index) {
      parse_normalizer(context, steps[index], where + ".normalizers[" + std::to_string(index) + "]", spec);
    }
  } else if (type == "Prepend" && context.string_field(node, where, "prepend") == kSpaceMark) {
    spec.prepend_space = true;
  } else if (type == "Replace" && context.field(node, where, "pattern").value("String", "") == " " &&
             context.string_field(node, where, "content") == kSpaceMark) {
    spec.escape_spaces = true;
  } else {
    context.fail(where, "unsupported normalizer (supported: Prepend(\"▁\"), Replace(\" \", \"▁\"))");
  }
}

MetaspacePrepend parse_prepend_scheme(const Context& context, const json& node, const std::string& where) {
  if (!node.contains("prepend_scheme")) {  // files before tokenizers 0.14
    return context.flag(node, "add_prefix_space", true) ? MetaspacePrepend::Always : MetaspacePrepend::Never;
  }
  const std::string scheme = context.string_field(node, where, "prepend_scheme");
  if (scheme == "first") return MetaspacePrepend::First;
  if (scheme == "always") return MetaspacePrepend::Always;
  if (scheme == "never") return MetaspacePrepend::Never;
  context.fail(where + ".prepend_scheme", "unknown value '" + scheme + "'");
}

void parse_pre_tokenizer(const Context& context, const json& node, const std::string& where, SpmSpec& spec) {
  if (node.is_null()) return;
  const std::string type = context.string_field(node, where, "type");
  if (type == "Sequence" && node.contains("pretokenizers") && node.at("pretokenizers").size() <= 1) {
    for (const json& step : node.at("pretokenizers"))
      parse_pre_tokenizer(context, step, where + ".pretokenizers[0]", spec);
  } else if (type == "Metaspace") {
    if (context.string_field(node, where, "replacement") != kSpaceMark) context.fail(where, "replacement must be '▁'");
    spec.metaspace = true;
    spec.metaspace_prepend = parse_prepend_scheme(context, node, where);
    spec.metaspace_split = context.flag(node, "split", true);
  } else {
    context.fail(where, "unsupported pre-tokenizer '" + type + "' for SentencePiece-style BPE (supported: Metaspace)");
  }
}

// Whether the decoder takes the first space off (Strip(" ", start >= 1), or a Metaspace decoder
// that prepends); its other steps (Replace "▁", ByteFallback, Fuse) are what token_bytes does anyway.
bool decoder_strips_space(const Context& context, const json& node) {
  if (!node.is_object() || !node.contains("type")) return false;
  const std::string type = node.at("type").get<std::string>();
  if (type == "Sequence" && node.contains("decoders")) {
    return std::any_of(node.at("decoders").begin(), node.at("decoders").end(),
                       [&](const json& step) { return decoder_strips_space(context, step); });
  }
  if (type == "Strip") return node.value("content", "") == " " && node.value("start", 0) >= 1;
  if (type == "Metaspace") return parse_prepend_scheme(context, node, "decoder") != MetaspacePrepend::Never;
  return false;
}

// Fills the per-id vectors from model.vocab and added_tokens; returns the vocabulary's token ids by text.
std::unordered_map<std::string, int32_t> read_vocab(const Context& context, const json& root, SpmSpec& spec) {
  spec.added_tokens = hf_json::read_added_tokens(context, root);
  hf_json::VocabIds vocab = hf_json::read_vocab_ids(context, root, spec.added_tokens);
  const std::unordered_map<std::string, int32_t>& ids = vocab.ids;
  const int64_t size = vocab.size;
  spec.token_texts.assign(static_cast<size_t>(size), std::string());
  spec.token_kinds.assign(static_cast<size_t>(size), TokenKind::Unused);
  spec.in_bpe_vocab.assign(static_cast<size_t>(size), 0);
  for (const auto& [text, id] : ids) {
    spec.token_texts[static_cast<size_t>(id)] = text;
    spec.token_kinds[static_cast<size_t>(id)] = parse_byte_token(text) >= 0 ? TokenKind::Byte : TokenKind::Normal;
    spec.in_bpe_vocab[static_cast<size_t>(id)] = 1;
  }
  for (const AddedToken& token : spec.added_tokens) {
    const auto index = static_cast<size_t>(token.id);
    spec.token_texts[index] = token.content;
    spec.token_kinds[index] = token.special ? TokenKind::Special : TokenKind::UserDefined;
    const auto in_vocab = ids.find(token.content);
    spec.in_bpe_vocab[index] = in_vocab != ids.end() && in_vocab->second == token.id ? 1 : 0;
  }
  return std::move(vocab.ids);
}

void read_merges(const Context& context, const json& model, const std::unordered_map<std::string, int32_t>& ids,
                 SpmSpec& spec) {
  const std::vector<hf_json::MergeIds> merges = hf_json::read_merge_ids(context, model, ids);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    spec.merges.push_back({merges[rank].left, merges[rank].right, merges[rank].merged, static_cast<int32_t>(rank)});
  }
}

void read_model(const Context& context, const json& model, SpmSpec& spec,
                const std::unordered_map<std::string, int32_t>& ids) {
  hf_json::check_plain_bpe(context, model);
  read_merges(context, model, ids, spec);
  spec.merge_order = "rank";
  spec.byte_fallback = context.flag(model, "byte_fallback", false);
  spec.fuse_unknown = context.flag(model, "fuse_unk", false);
  spec.ignore_merges = context.flag(model, "ignore_merges", false);
  if (model.contains("unk_token") && model.at("unk_token").is_string()) {
    const auto unknown = ids.find(model.at("unk_token").get<std::string>());
    if (unknown == ids.end()) context.fail("model.unk_token", "not in model.vocab");
    spec.unknown = unknown->second;
  }
}

}  // namespace

SpmTokenizer hf_json::spm_tokenizer_from_json(const json& root, const std::string& name) {
  const Context context{name};
  SpmSpec spec;
  spec.source = name;
  try {
    const std::unordered_map<std::string, int32_t> ids = read_vocab(context, root, spec);
    read_model(context, context.field(root, "", "model"), spec, ids);
    parse_normalizer(context, root.value("normalizer", json()), "normalizer", spec);
    parse_pre_tokenizer(context, root.value("pre_tokenizer", json()), "pre_tokenizer", spec);
    spec.strip_leading_space = decoder_strips_space(context, root.value("decoder", json()));
    const PostProcessing post = read_post_processor(root.value("post_processor", json()));
    spec.bos = post.bos;
    spec.eos = post.eos;
    spec.add_bos = post.bos.has_value();
    spec.add_eos = post.eos.has_value();
    // Without a post-processor naming them, BOS / EOS are the usual SentencePiece special tokens.
    for (const AddedToken& token : spec.added_tokens) {
      if (!spec.bos && token.special && token.content == "<s>") spec.bos = token.id;
      if (!spec.eos && token.special && token.content == "</s>") spec.eos = token.id;
    }
  } catch (const json::exception& error) {
    throw make_error("tokenizer ", name, ": malformed field: ", error.what());
  }
  return build_spm_tokenizer(std::move(spec));
}

bool hf_json::is_sentencepiece_style(const json& root) {
  if (!root.is_object()) return false;
  const json model = root.value("model", json::object());
  if (model.is_object() && model.value("byte_fallback", false)) return true;
  const json pre = root.value("pre_tokenizer", json());
  if (pre.is_object() && pre.value("type", "") == "Metaspace") return true;
  const std::string normalizer = root.value("normalizer", json()).dump();
  return normalizer.find("\"Prepend\"") != std::string::npos || normalizer.find(kSpaceMark) != std::string::npos;
}

SpmTokenizer SpmTokenizer::from_hf_json(std::string_view json_text, const std::string& name) {
  return hf_json::spm_tokenizer_from_json(hf_json::parse(json_text, name), name);
}

SpmTokenizer SpmTokenizer::from_hf_json_file(const std::string& path) {
  return from_hf_json(hf_json::read_text_file(path), path);
}

}  // namespace anvil::tokenizer
