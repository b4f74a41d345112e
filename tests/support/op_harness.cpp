#include "op_harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "anvil/ops/copy.h"

namespace anvil::testing {

uint64_t test_seed() {
  uint64_t seed = 0;
  if (const char* fixed = std::getenv("ANVIL_TEST_SEED")) {
    seed = std::strtoull(fixed, nullptr, 10);
  } else {
    std::random_device device;
    seed = (static_cast<uint64_t>(device()) << 32) ^ device();
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::cout << "[ seed     ] " << (info ? std::string(info->test_suite_name()) + "." + info->name() : "")
            << " ANVIL_TEST_SEED=" << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

HostArray random_array(const Shape& shape, Rng& rng, double low, double high) {
  HostArray array{shape, std::vector<double>(static_cast<size_t>(shape_numel(shape)))};
  std::uniform_real_distribution<double> distribution(low, high);
  for (double& value : array.values) value = distribution(rng);
  return array;
}

HostArray random_ints(const Shape& shape, Rng& rng, int64_t low, int64_t high) {
  HostArray array{shape, std::vector<double>(static_cast<size_t>(shape_numel(shape)))};
  std::uniform_int_distribution<int64_t> distribution(low, high - 1);
  for (double& value : array.values) value = static_cast<double>(distribution(rng));
  return array;
}

std::vector<Device> test_devices(Ctx& ctx) {
  // ANVIL_TEST_DEVICES=cpu or =cuda restricts the run to one backend.
  const char* only = std::getenv("ANVIL_TEST_DEVICES");
  const std::string restrict_to = only != nullptr ? only : "";
  std::vector<Device> devices;
  if (restrict_to.empty() || restrict_to == "cpu") devices.push_back(Device::cpu());
  if ((restrict_to.empty() || restrict_to == "cuda") && ctx.has_cuda()) devices.push_back(Device::cuda(0));
  return devices;
}

Ctx& test_ctx() {
  static Ctx ctx;  // one per test binary: tests are the one place a shared instance is fine
  return ctx;
}

void round_to(HostArray& array, DType dtype) {
  if (dtype == DType::F64) return;
  std::vector<char> storage(static_cast<size_t>(dtype_bytes_for(dtype, array.numel())));
  convert_host(DType::F64, array.values.data(), dtype, storage.data(), array.numel());
  convert_host(dtype, storage.data(), DType::F64, array.values.data(), array.numel());
}

Tensor make_tensor_exact(Ctx& ctx, const HostArray& array, DType dtype, Device device) {
  Tensor host = Tensor::empty(array.shape, dtype);
  convert_host(DType::F64, array.values.data(), dtype, host.raw_data(), array.numel());
  return device.is_cpu() ? host : ctx.to_device(host, device);
}

Tensor make_tensor(Ctx& ctx, HostArray& array, DType dtype, Device device) {
  round_to(array, dtype);
  return make_tensor_exact(ctx, array, dtype, device);
}

HostArray to_host(Ctx& ctx, const Tensor& tensor) {
  const Tensor host = tensor.device().is_cpu() ? tensor : ctx.to_device(tensor, Device::cpu());
  return {host.shape(), host.to_f64_vector()};
}

Tolerance gradient_tolerance(DType dtype) {
  Tolerance tolerance = tolerance_for(dtype);
  if (dtype == DType::F32) tolerance.rtol = 1e-4;
  return tolerance;
}

Tolerance tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return {1e-12, 1e-14};
    case DType::F32:
      return {1e-5, 1e-6};
    case DType::F16:
      return {4e-3, 1e-4};
    case DType::BF16:
      return {2e-2, 1e-3};
    default:
      return {1e-5, 1e-6};
  }
}

void expect_close(const HostArray& got, const HostArray& ref, Tolerance tolerance, const std::string& what) {
  ASSERT_EQ(got.shape, ref.shape) << what << ": shape mismatch";
  double sum_squares = 0.0;
  for (const double value : ref.values) sum_squares += value * value;
  const double rms = ref.values.empty() ? 0.0 : std::sqrt(sum_squares / static_cast<double>(ref.values.size()));
  const double atol = std::max(tolerance.atol_floor, tolerance.rtol * tolerance.atol_scale * rms);
  int64_t worst = -1;
  double worst_excess = 0.0;
  int64_t failures = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double error = std::abs(got[i] - ref[i]);
    const double allowed = atol + tolerance.rtol * std::abs(ref[i]);
    const bool bad = !(error <= allowed);  // NaN counts as bad
    if (bad) {
      ++failures;
      const double excess = std::isnan(error) ? INFINITY : error / allowed;
      if (worst < 0 || excess > worst_excess) {
        worst = i;
        worst_excess = excess;
      }
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << ref.numel() << " elements out of tolerance (rtol "
                         << tolerance.rtol << ", atol " << atol << "); worst at flat index " << worst << ": got "
                         << (worst >= 0 ? got[worst] : 0.0) << ", expected " << (worst >= 0 ? ref[worst] : 0.0);
}

HostArray finite_difference(const std::function<HostArray(const HostArray&)>& forward, const HostArray& x,
                            const HostArray& output_weights, double step) {
  HostArray gradient{x.shape, std::vector<double>(x.values.size())};
  HostArray probe = x;
  auto loss = [&](const HostArray& input) {
    const HostArray output = forward(input);
    double total = 0.0;
    for (int64_t i = 0; i < output.numel(); ++i) total += output[i] * output_weights[i];
    return total;
  };
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double original = probe[i];
    const double h = step * std::max(1.0, std::abs(original));
    probe[i] = original + h;
    const double plus = loss(probe);
    probe[i] = original - h;
    const double minus = loss(probe);
    probe[i] = original;
    gradient[i] = (plus - minus) / (2.0 * h);
  }
  return gradient;
}

std::string case_label(DType dtype, Device device, const Shape& shape) {
  std::ostringstream text;
  text << dtype_name(dtype) << " on " << device_string(device) << ", shape " << shape_string(shape);
  return text.str();
}

}  // namespace anvil::testing
