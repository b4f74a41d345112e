#pragma once
// Hand-written matchers for the split regexes (see anvil/tokenizer/pre_tokenizer.h). Each
// returns the byte offset where the match starting at `begin` ends, searching within
// [begin, end) only: the end of the range is the end of the haystack for lookaheads.
// Every position starts a match of at least one character, as in the regexes.
#include <cstddef>

namespace anvil::tokenizer {

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(const char* text, size_t begin, size_t end);
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t match_llama3(const char* text, size_t begin, size_t end, size_t max_digits);
// Digits pre-tokenizer: one number character (individual) or a run of them, else a run of non-numbers.
size_t match_digits(const char* text, size_t begin, size_t end, bool individual);

}  // namespace anvil::tokenizer
