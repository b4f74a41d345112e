// libFuzzer target: the GGUF reader on arbitrary bytes must either parse or throw
// anvil::Error; every tensor it accepts must be readable within its bounds.
#include <cstddef>
#include <cstdint>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const anvil::io::GgufFile file = anvil::io::GgufFile::parse(data, size, "fuzz.gguf", nullptr);
    for (const anvil::io::GgufTensorInfo& info : file.tensors()) {
      if (info.dtype && info.bytes <= (1U << 20)) (void)file.tensor(info.name).to_f32_vector();
    }
    for (const auto& entry : file.metadata()) (void)entry.second.to_string();
  } catch (const anvil::Error&) {
  }
  return 0;
}
