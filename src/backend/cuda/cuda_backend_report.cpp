// CudaBackend::device_report and the memory high-water mark: the device's name and dense
// peak throughput, and the caching allocator's peak bytes in use (for training logs).
#include <cuda_runtime_api.h>

#include <string>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"

namespace anvil::cuda {

namespace {

// Published dense peaks (TFLOP/s, bf16 tensor cores / plain f32) of the sm_90 parts this
// build runs on. The PCIe H100 clocks lower; H200 and GH200 share the SXM H100's SMs and clocks.
struct Peak {
  double bf16_tflops, f32_tflops;
};

Peak published_peak(const std::string& name, int sms, int clock_khz) {
  if (name.find("H100") != std::string::npos && name.find("PCIe") != std::string::npos) return {756.0, 51.0};
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos ||
      name.find("H800") != std::string::npos) {
    return {989.0, 67.0};
  }
  // Another sm_90 part: 4096 dense bf16 and 256 f32 FLOPs per SM per clock.
  const double sm_ghz = static_cast<double>(sms) * static_cast<double>(clock_khz) * 1e-6;
  return {sm_ghz * 4096.0 / 1e3, sm_ghz * 256.0 / 1e3};
}

}  // namespace

DeviceReport CudaBackend::device_report() {
  const DeviceGuard guard(device_index_);
  cudaDeviceProp properties{};
  ANVIL_CUDA_CHECK(cudaGetDeviceProperties(&properties, device_index_));
  int clock_khz = 0;
  ANVIL_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device_index_));
  DeviceReport report;
  report.name = properties.name;
  const Peak peak = published_peak(report.name, properties.multiProcessorCount, clock_khz);
  report.peak_bf16_gflops = peak.bf16_tflops * 1e3;
  report.peak_f32_gflops = peak.f32_tflops * 1e3;
  return report;
}

int64_t CudaBackend::peak_memory_bytes() { return static_cast<int64_t>(allocator_->stats().peak_bytes_in_use); }

void CudaBackend::reset_peak_memory() { allocator_->reset_peaks(); }

}  // namespace anvil::cuda
