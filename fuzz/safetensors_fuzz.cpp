// libFuzzer target: the safetensors reader on arbitrary bytes must either parse or throw
// anvil::Error; every tensor it accepts must be readable within its bounds.
#include <cstddef>
#include <cstdint>

#include "anvil/core/error.h"
#include "anvil/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const anvil::io::SafetensorsFile file = anvil::io::SafetensorsFile::parse(data, size, "fuzz.safetensors", nullptr);
    for (const anvil::io::SafetensorsEntry& entry : file.entries()) {
      if (entry.end - entry.begin <= (1U << 20)) (void)file.tensor(entry.name).to_f64_vector();
    }
  } catch (const anvil::Error&) {
  }
  return 0;
}
