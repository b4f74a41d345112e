#include "normalize.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "anvil/core/error.h"
#include "utf8.h"

namespace anvil::tokenizer {
namespace {

void append_nfc(std::string_view run, std::string& out) {
  bool ascii = true;
  for (const char byte : run) ascii = ascii && static_cast<unsigned char>(byte) < 0x80;
  if (ascii) {  // ASCII is its own NFC
    out.append(run);
    return;
  }
  utf8proc_uint8_t* normalized = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()), static_cast<utf8proc_ssize_t>(run.size()),
                   &normalized, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(normalized, &std::free);
  if (length < 0) throw make_error("tokenizer: NFC normalization failed: ", utf8proc_errmsg(length));
  out.append(reinterpret_cast<const char*>(normalized), static_cast<size_t>(length));
}

}  // namespace

void normalize_nfc(std::string_view text, std::string& out) {
  out.clear();
  size_t run_begin = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Char c = decode_utf8(text.data() + pos, text.size() - pos);
    if (c.code_point != kInvalidCodePoint) {
      pos += c.length;
      continue;
    }
    append_nfc(text.substr(run_begin, pos - run_begin), out);
    out.append(text.substr(pos, c.length));
    pos += c.length;
    run_begin = pos;
  }
  append_nfc(text.substr(run_begin), out);
}

}  // namespace anvil::tokenizer
