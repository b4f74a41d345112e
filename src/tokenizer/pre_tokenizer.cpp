#include "anvil/tokenizer/pre_tokenizer.h"

#include <array>
#include <utility>

#include "anvil/core/error.h"
#include "split_patterns.h"

namespace anvil::tokenizer {
namespace {

struct GgufPreName {
  std::string_view name;
  PreTokenizer (*make)();
};

// tokenizer.ggml.pre values (as written by llama.cpp's convert_hf_to_gguf.py) whose
// Hugging Face pre-tokenizer we implement.
constexpr std::array<GgufPreName, 21> kGgufPreNames = {{
    {"default", &PreTokenizer::gpt2},
    {"gpt-2", &PreTokenizer::gpt2},
    {"gpt2", &PreTokenizer::gpt2},
    {"mpt", &PreTokenizer::gpt2},
    {"olmo", &PreTokenizer::gpt2},
    {"llama-bpe", &PreTokenizer::llama3},
    {"llama3", &PreTokenizer::llama3},
    {"llama-v3", &PreTokenizer::llama3},
    {"falcon3", &PreTokenizer::llama3},
    {"dbrx", &PreTokenizer::llama3},
    {"smaug-bpe", &PreTokenizer::llama3},
    {"qwen2", &PreTokenizer::qwen2},
    {"deepseek-r1-qwen", &PreTokenizer::qwen2},
    {"stablelm2", &PreTokenizer::qwen2},
    {"smollm", &PreTokenizer::smollm},
    {"starcoder", &PreTokenizer::smollm},
    {"refact", &PreTokenizer::smollm},
    {"command-r", &PreTokenizer::smollm},
    {"codeshell", &PreTokenizer::smollm},
    {"exaone", &PreTokenizer::smollm},
    {"minerva-7b", &PreTokenizer::smollm},
}};

}  // namespace

const char* split_pattern_name(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::Gpt2:
      return "gpt2";
    case SplitPattern::Llama3:
      return "llama3";
    case SplitPattern::Qwen2:
      return "qwen2";
  }
  return "?";
}

PreTokenizer PreTokenizer::from_gguf_name(std::string_view name) {
  for (const GgufPreName& entry : kGgufPreNames) {
    if (entry.name == name) return entry.make();
  }
  std::string supported;
  for (const GgufPreName& entry : kGgufPreNames) supported += (supported.empty() ? "" : ", ") + std::string(entry.name);
  throw make_error("tokenizer: unsupported pre-tokenizer '", name, "' (tokenizer.ggml.pre); supported: ", supported);
}

PreTokenizer& PreTokenizer::split(SplitPattern pattern) {
  steps_.push_back({Step::Kind::Split, pattern, false});
  return *this;
}

PreTokenizer& PreTokenizer::digits(bool individual) {
  steps_.push_back({Step::Kind::Digits, SplitPattern::Gpt2, individual});
  return *this;
}

void PreTokenizer::split_text(std::string_view text, std::vector<size_t>& piece_ends) const {
  if (text.empty()) return;
  apply_step(0, text.data(), 0, text.size(), piece_ends);
}

// Splits [begin, end) by step `step` and hands each piece to the next step; depth-first,
// so the pieces come out in text order without intermediate buffers.
void PreTokenizer::apply_step(size_t step, const char* text, size_t begin, size_t end,
                              std::vector<size_t>& piece_ends) const {
  if (step == steps_.size()) {
    piece_ends.push_back(end);
    return;
  }
  const Step& rule = steps_[step];
  size_t pos = begin;
  while (pos < end) {
    size_t piece_end = 0;
    if (rule.kind == Step::Kind::Digits) {
      piece_end = match_digits(text, pos, end, rule.individual_digits);
    } else if (rule.pattern == SplitPattern::Gpt2) {
      piece_end = match_gpt2(text, pos, end);
    } else {
      piece_end = match_llama3(text, pos, end, rule.pattern == SplitPattern::Llama3 ? 3 : 1);
    }
    apply_step(step + 1, text, pos, piece_end, piece_ends);
    pos = piece_end;
  }
}

std::vector<std::string_view> PreTokenizer::pieces(std::string_view text) const {
  std::vector<size_t> ends;
  split_text(text, ends);
  std::vector<std::string_view> result;
  result.reserve(ends.size());
  size_t begin = 0;
  for (const size_t end : ends) {
    result.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return result;
}

std::string PreTokenizer::describe() const {
  if (steps_.empty()) return "none";
  std::string text;
  for (const Step& step : steps_) {
    if (!text.empty()) text += " > ";
    if (step.kind == Step::Kind::Digits) {
      text += step.individual_digits ? "Digits(individual)" : "Digits";
    } else {
      text += std::string("Split(") + split_pattern_name(step.pattern) + ")";
    }
  }
  return text;
}

}  // namespace anvil::tokenizer
