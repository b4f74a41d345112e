#pragma once
// Python str semantics over UTF-8: strings index, slice and strip by code point. Invalid UTF-8
// bytes decode to U+DC80..U+DCFF (Python's "surrogateescape") and encode back to the same
// byte, so any byte string round-trips. Case mapping covers Latin, Greek and Cyrillic.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace anvil::tokenizer::jinja::text {

// Decodes the code point at `pos` and advances `pos` past it (pos < utf8.size()).
char32_t decode_one(std::string_view utf8, size_t& pos);
// The code points of `utf8`.
std::u32string decode(std::string_view utf8);
// UTF-8 for `code_points` (U+DC80..U+DCFF back to raw bytes).
std::string encode(std::u32string_view code_points);
void append_utf8(std::string& out, char32_t code_point);
// Number of code points (Python len()).
size_t length(std::string_view utf8);
bool is_ascii(std::string_view utf8);

// str.isspace() for one code point.
bool is_space(char32_t c);
// A line boundary for str.splitlines().
bool is_line_break(char32_t c);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);
std::string capitalize(std::string_view s);
// str.isalpha/isdigit/isalnum/isspace/islower/isupper over the whole string (false when empty).
bool all_of_class(std::string_view s, std::string_view class_name);

// str.strip/lstrip/rstrip: `chars` absent strips whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split/rsplit: `separator` absent splits on whitespace runs; max_split < 0 is unlimited.
// The separator must not be empty (checked by the caller).
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& separator, int64_t max_split,
                               bool from_right);
std::vector<std::string> splitlines(std::string_view s, bool keep_ends);
// str.replace; count < 0 replaces all. An empty `from` inserts `to` around every code point.
std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count);
// str.find/rfind as a code point index, -1 when absent.
int64_t find(std::string_view s, std::string_view needle, bool from_right);
// str.count for a non-overlapping needle.
int64_t count(std::string_view s, std::string_view needle);

}  // namespace anvil::tokenizer::jinja::text
