#include <cstring>
#include <algorithm>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::copy(Tensor& dst, const Tensor& src) {
  ANVIL_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "cpu copy: both tensors must be on the host");
  const Tensor source = src.contiguous();
  convert_host(source.dtype(), source.raw_data(), dst.dtype(), dst.raw_data(), source.numel());
}

void CpuBackend::fill_zero(Tensor& t) {
  ANVIL_CHECK(t.is_contiguous(), "fill_zero: tensor must be contiguous");
  auto* bytes = static_cast<char*>(t.raw_data());
  const int64_t total = t.nbytes();
  constexpr int64_t kChunk = int64_t{1} << 20;
  pool_.parallel_for((total + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * kChunk;
    std::memset(bytes + first, 0, static_cast<size_t>(std::min(total, end * kChunk) - first));
  });
}

}  // namespace anvil::cpu
