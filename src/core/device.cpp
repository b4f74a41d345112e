#include "anvil/core/device.h"

namespace anvil {

std::string device_string(Device device) {
  return device.is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(device.index);
}

}  // namespace anvil
