#pragma once
// Where a buffer lives: host memory or one CUDA device.
#include <cstdint>
#include <string>

namespace anvil {

enum class DeviceType : uint8_t { Cpu, Cuda };

struct Device {
  DeviceType type = DeviceType::Cpu;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::Cpu, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::Cuda, index}; }
  [[nodiscard]] bool is_cpu() const { return type == DeviceType::Cpu; }
  [[nodiscard]] bool is_cuda() const { return type == DeviceType::Cuda; }
  friend bool operator==(const Device&, const Device&) = default;
};

// "cpu" or "cuda:0".
std::string device_string(Device device);

}  // namespace anvil
