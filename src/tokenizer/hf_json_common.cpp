#include "hf_json_common.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "anvil/core/error.h"

namespace anvil::tokenizer::hf_json {

void Context::fail(const std::string& where, const std::string& message) const {
  throw make_error("tokenizer ", source, ": ", where, ": ", message);
}

const json& Context::field(const json& object, const std::string& where, const char* key) const {
  if (!object.is_object() || !object.contains(key)) fail(where, std::string("missing field '") + key + "'");
  return object.at(key);
}

std::string Context::string_field(const json& object, const std::string& where, const char* key) const {
  const json& value = field(object, where, key);
  if (!value.is_string()) fail(where + "." + key, "expected a string");
  return value.get<std::string>();
}

bool Context::flag(const json& object, const char* key, bool fallback) const {
  if (!object.contains(key) || object.at(key).is_null()) return fallback;
  return object.at(key).get<bool>();
}

json parse(std::string_view json_text, const std::string& name) {
  try {
    return json::parse(json_text);
  } catch (const json::exception& error) {
    throw make_error("tokenizer ", name, ": not valid JSON: ", error.what());
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw make_error("tokenizer: cannot open ", path);
  std::ostringstream contents;
  contents << stream.rdbuf();
  return contents.str();
}

std::vector<AddedToken> read_added_tokens(const Context& context, const json& root) {
  std::vector<AddedToken> tokens;
  const json& added = root.contains("added_tokens") ? root.at("added_tokens") : json::array();
  for (size_t index = 0; index < added.size(); ++index) {
    const json& token = added[index];
    const std::string where = "added_tokens[" + std::to_string(index) + "]";
    const int64_t id = context.field(token, where, "id").get<int64_t>();
    if (id < 0 || id >= (int64_t{1} << 31) - 1) context.fail(where, "bad id");
    const bool special = context.flag(token, "special", false);
    // Missing flags take HF's AddedToken::from defaults (special tokens are not normalized).
    tokens.push_back({static_cast<int32_t>(id), context.string_field(token, where, "content"), special,
                      context.flag(token, "lstrip", false), context.flag(token, "rstrip", false),
                      context.flag(token, "single_word", false), context.flag(token, "normalized", !special)});
  }
  return tokens;
}

VocabIds read_vocab_ids(const Context& context, const json& root, const std::vector<AddedToken>& added) {
  const json& vocab = context.field(context.field(root, "", "model"), "model", "vocab");
  if (!vocab.is_object()) context.fail("model.vocab", "expected an object");
  const int64_t max_size = 2 * static_cast<int64_t>(vocab.size() + added.size()) + 1024;
  VocabIds out;
  out.ids.reserve(vocab.size());
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= max_size) {
      context.fail("model.vocab[" + text + "]", "bad id");
    }
    out.ids.emplace(text, id.get<int32_t>());
    out.size = std::max(out.size, id.get<int64_t>() + 1);
  }
  for (const AddedToken& token : added) {
    if (token.id >= max_size) context.fail("added_tokens", "bad id " + std::to_string(token.id));
    out.size = std::max(out.size, int64_t{token.id} + 1);
  }
  return out;
}

namespace {

// model.merges as (left, right) texts.
std::vector<std::pair<std::string, std::string>> read_merge_texts(const Context& context, const json& model) {
  const json& merges = context.field(model, "model", "merges");
  std::vector<std::pair<std::string, std::string>> texts;
  texts.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& merge = merges[rank];
    if (merge.is_string()) {  // "a b"
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ', 1);
      if (space == std::string::npos) context.fail("model.merges[" + std::to_string(rank) + "]", "expected 'a b'");
      texts.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2) {  // ["a", "b"]
      texts.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      context.fail("model.merges[" + std::to_string(rank) + "]", "expected \"a b\" or [\"a\", \"b\"]");
    }
  }
  return texts;
}

}  // namespace

std::vector<MergeIds> read_merge_ids(const Context& context, const json& model,
                                     const std::unordered_map<std::string, int32_t>& ids) {
  const std::vector<std::pair<std::string, std::string>> texts = read_merge_texts(context, model);
  std::vector<MergeIds> merges;
  merges.reserve(texts.size());
  for (size_t rank = 0; rank < texts.size(); ++rank) {
    const auto& [left, right] = texts[rank];
    const auto left_id = ids.find(left);
    const auto right_id = ids.find(right);
    const auto merged_id = ids.find(left + right);
    if (left_id == ids.end() || right_id == ids.end() || merged_id == ids.end()) {
      context.fail(
          "model.merges[" + std::to_string(rank) + "]",
          std::string("'").append(left).append(" ").append(right).append("' names a token that is not in model.vocab"));
    }
    merges.push_back({left_id->second, right_id->second, merged_id->second});
  }
  return merges;
}

namespace {

// The id of a template item naming a special token with exactly one id, else nullopt.
std::optional<int32_t> special_token_id(const json& processor, const json& item) {
  if (!item.contains("SpecialToken")) return std::nullopt;
  const std::string name = item.at("SpecialToken").at("id").get<std::string>();
  const json& ids = processor.at("special_tokens").at(name).at("ids");
  if (ids.size() != 1) return std::nullopt;
  return ids[0].get<int32_t>();
}

}  // namespace

PostProcessing read_post_processor(const json& node) {
  PostProcessing result;
  if (!node.is_object() || !node.contains("type")) return result;
  if (node.at("type") == "Sequence" && node.contains("processors")) {
    for (const json& processor : node.at("processors")) {
      const PostProcessing inner = read_post_processor(processor);
      if (inner.bos) result.bos = inner.bos;
      if (inner.eos) result.eos = inner.eos;
    }
    return result;
  }
  if (node.at("type") != "TemplateProcessing" || !node.contains("single") || node.at("single").empty()) return result;
  const json& single = node.at("single");
  result.bos = special_token_id(node, single.front());
  if (single.size() > 1) result.eos = special_token_id(node, single.back());
  return result;
}

void check_plain_bpe(const Context& context, const json& model) {
  if (context.string_field(model, "model", "type") != "BPE") context.fail("model.type", "only BPE is supported");
  if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() != 0.0) {
    context.fail("model.dropout", "BPE dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model.at(key).is_null() && !model.at(key).get<std::string>().empty()) {
      context.fail(std::string("model.") + key, "not supported");
    }
  }
}

}  // namespace anvil::tokenizer::hf_json
