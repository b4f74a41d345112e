// libFuzzer target: loading a tokenizer.json from arbitrary bytes must either succeed or
// throw anvil::Error; a tokenizer that loads must encode and decode without crashing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anvil/core/error.h"
#include "anvil/tokenizer/bpe_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const anvil::tokenizer::BpeTokenizer tokenizer = anvil::tokenizer::BpeTokenizer::from_hf_json(text, "fuzz.json");
    const std::vector<int32_t> ids = tokenizer.encode(text.substr(0, 256));
    (void)tokenizer.decode(ids);
  } catch (const anvil::Error&) {
  }
  return 0;
}
