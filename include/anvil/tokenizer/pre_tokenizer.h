#pragma once
// Pre-tokenisation of byte-level BPE tokenizers: the text is cut into pieces ("pre-tokens")
// that BPE then encodes one by one. The families' split regexes are implemented by hand
// (no regex engine) with Unicode general categories, and behave exactly like the regexes
// run by Hugging Face `tokenizers` (Oniguruma, leftmost-first alternation):
//   Gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   Llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ Qwen2:  the Llama3 pattern with \p{N} (one digit) instead of
//   \p{N}{1,3}
// A pre-tokenizer is a sequence of steps, each applied to every piece the previous step made
// (as HF's Sequence pre-tokenizer): e.g. SmolLM2/StarCoder = [Digits(individual), Split(Gpt2)].
// Ill-formed UTF-8 is tolerated: each maximal ill-formed subpart counts as one character that is
// neither letter, number nor space.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace anvil::tokenizer {

enum class SplitPattern : uint8_t { Gpt2, Llama3, Qwen2 };

class PreTokenizer {
 public:
  struct Step {
    enum class Kind : uint8_t { Split, Digits } kind = Kind::Split;
    SplitPattern pattern = SplitPattern::Gpt2;  // for Split
    bool individual_digits = false;             // for Digits: each digit alone, else runs of digits
    bool operator==(const Step&) const = default;
  };

  // No steps: the whole text is one piece.
  PreTokenizer() = default;
  static PreTokenizer gpt2() { return PreTokenizer().split(SplitPattern::Gpt2); }
  static PreTokenizer llama3() { return PreTokenizer().split(SplitPattern::Llama3); }
  static PreTokenizer qwen2() { return PreTokenizer().split(SplitPattern::Qwen2); }
  static PreTokenizer smollm() { return PreTokenizer().digits(true).split(SplitPattern::Gpt2); }
  // The pre-tokenizer of a GGUF's tokenizer.ggml.pre ("smollm", "llama-bpe", "qwen2", "gpt-2",
  // "default", ...); throws anvil::Error naming the supported values for others.
  static PreTokenizer from_gguf_name(std::string_view name);

  // Appends a step that splits by `pattern`.
  PreTokenizer& split(SplitPattern pattern);
  // Appends a step that isolates numbers (\p{N}): each one alone, or maximal runs.
  PreTokenizer& digits(bool individual);

  // Appends to `piece_ends` the byte offset (in `text`) at which each piece ends; the pieces
  // cover `text` in order without gaps, none empty. Allocates nothing but `piece_ends`.
  void split_text(std::string_view text, std::vector<size_t>& piece_ends) const;
  // The pieces of `text` (views into it).
  [[nodiscard]] std::vector<std::string_view> pieces(std::string_view text) const;

  [[nodiscard]] const std::vector<Step>& steps() const { return steps_; }
  // "Digits(individual) > Split(gpt2)" for messages.
  [[nodiscard]] std::string describe() const;
  bool operator==(const PreTokenizer&) const = default;

 private:
  void apply_step(size_t step, const char* text, size_t begin, size_t end, std::vector<size_t>& piece_ends) const;

  std::vector<Step> steps_;
};

const char* split_pattern_name(SplitPattern pattern);

}  // namespace anvil::tokenizer
