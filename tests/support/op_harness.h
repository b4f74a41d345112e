#pragma once
// The cross-backend op test harness. Every op test:
//  1. draws fresh random inputs (seed printed; ANVIL_TEST_SEED=... replays a run),
//  2. rounds them to the dtype under test, so the float64 reference sees exactly the
//     values the op sees,
//  3. runs the op on every backend that is built and present (CPU; CUDA with a GPU),
//  4. compares each output with a float64 reference written in the test, by dtype tolerance,
//  5. checks each backward op against central finite differences of the float64 reference.
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "anvil/context.h"
#include "anvil/core/error.h"

namespace anvil::testing {

// A host array of float64 values with a shape: inputs and references live here.
struct HostArray {
  Shape shape;
  std::vector<double> values;

  [[nodiscard]] int64_t numel() const { return static_cast<int64_t>(values.size()); }
  double& operator[](int64_t i) { return values[static_cast<size_t>(i)]; }
  double operator[](int64_t i) const { return values[static_cast<size_t>(i)]; }
};

// Per-test seed: ANVIL_TEST_SEED if set, else fresh; printed to stdout with the test name.
uint64_t test_seed();
using Rng = std::mt19937_64;

// Uniform values in [low, high).
HostArray random_array(const Shape& shape, Rng& rng, double low = -1.0, double high = 1.0);
// Integers in [low, high) as doubles (ids, targets, positions).
HostArray random_ints(const Shape& shape, Rng& rng, int64_t low, int64_t high);

// The devices to test on: the host always, CUDA when built and present.
std::vector<Device> test_devices(Ctx& ctx);
// One shared context for a test binary.
Ctx& test_ctx();

// A tensor of `dtype` on `device` holding `array` rounded to dtype. `array` is
// updated in place to the rounded values, so references use exactly what the op sees.
Tensor make_tensor(Ctx& ctx, HostArray& array, DType dtype, Device device);
// Same, without changing `array` (for arrays the caller already rounded).
Tensor make_tensor_exact(Ctx& ctx, const HostArray& array, DType dtype, Device device);
// Copies a tensor on any device to a float64 host array.
HostArray to_host(Ctx& ctx, const Tensor& tensor);
// Rounds values to dtype (round trip through the dtype's storage).
void round_to(HostArray& array, DType dtype);

// Tolerances: |got - ref| <= atol + rtol * |ref| elementwise, with
// atol = max(atol_floor, atol_scale * rtol * rms(ref)): errors are judged against the
// output's own scale, so cancellation near zero is fair; the floor covers outputs that
// are all near zero (inputs in the tests are O(1)).
struct Tolerance {
  double rtol;
  double atol_floor = 0.0;
  double atol_scale = 1.0;
};
// Typical tolerance for an op computing in f32 whose output is stored as `dtype`.
Tolerance tolerance_for(DType dtype);
// The same for a gradient against finite differences: a backward's f32 chain is longer than
// its forward's, so f32 gets rtol 1e-4 (lower precisions are bounded by their rounding).
Tolerance gradient_tolerance(DType dtype);

// Gtest-style comparison; reports the worst element, its index, and the seed context.
void expect_close(const HostArray& got, const HostArray& ref, Tolerance tolerance, const std::string& what);

// Central finite differences in float64 of loss(x) = sum(weights * f(x)) with respect
// to x: returns d loss / d x, element by element. `step` is the perturbation.
HostArray finite_difference(const std::function<HostArray(const HostArray&)>& forward, const HostArray& x,
                            const HostArray& output_weights, double step = 1e-6);

// Labels for SCOPED_TRACE: "f32 on cpu, shape (3, 7)".
std::string case_label(DType dtype, Device device, const Shape& shape);

// The float dtypes every float op is tested with.
inline const std::vector<DType>& float_dtypes() {
  static const std::vector<DType> kDTypes = {DType::F32, DType::BF16, DType::F16};
  return kDTypes;
}

}  // namespace anvil::testing
