// Device graphs (CUDA only; skipped elsewhere): a captured op sequence replays on new
// inputs written into the buffers it recorded, private memory pools keep their blocks away
// from the shared cache, pinned uploads arrive, and a failed capture leaves the stream
// usable. The CPU backend says it has no graphs.
#include <gtest/gtest.h>

#include "anvil/ops/elementwise.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

Backend* cuda_backend(Ctx& ctx) { return ctx.has_cuda() ? &ctx.backend(Device::cuda(0)) : nullptr; }

HostArray sum_times_two(const HostArray& a, const HostArray& b) {
  HostArray out = a;
  for (int64_t i = 0; i < a.numel(); ++i) out[i] = (a[i] + b[i]) * 2.0;
  return out;
}

TEST(DeviceGraph, CpuHasNone) {
  Ctx& ctx = test_ctx();
  EXPECT_FALSE(ctx.backend(Device::cpu()).supports_graphs());
  EXPECT_THROW((void)ctx.backend(Device::cpu()).capture_graph([] {}), Error);
}

// out = (a + b) * 2 captured once (its temporary from a private pool), replayed after new
// values of a and b are uploaded from pinned memory into the same buffers.
TEST(DeviceGraph, ReplayReadsNewInputs) {
  Ctx& ctx = test_ctx();
  Backend* backend = cuda_backend(ctx);
  if (backend == nullptr) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed());
  const Device gpu = Device::cuda(0);
  const Shape shape{3, 1000};
  Tensor a = ctx.empty(shape, DType::F32, gpu);
  Tensor b = ctx.empty(shape, DType::F32, gpu);
  Tensor out = ctx.empty(shape, DType::F32, gpu);
  Tensor a_pinned = Tensor::empty(shape, DType::F32, backend->pinned_host_allocator());
  Tensor b_pinned = Tensor::empty(shape, DType::F32, backend->pinned_host_allocator());
  const auto upload = [&](const HostArray& values, Tensor& pinned, Tensor& device) {
    for (int64_t i = 0; i < values.numel(); ++i) pinned.data<float>()[i] = static_cast<float>(values[i]);
    backend->upload_async(device, pinned);
  };
  const auto body = [&] {
    Tensor sum = ctx.empty(shape, DType::F32, gpu);
    add(ctx, sum, a, b);
    add(ctx, out, sum, sum);
  };
  const int64_t pool = backend->create_memory_pool();
  backend->use_memory_pool(pool);
  HostArray a_values = random_array(shape, rng);
  HostArray b_values = random_array(shape, rng);
  upload(a_values, a_pinned, a);
  upload(b_values, b_pinned, b);
  body();  // uncaptured: fills the pool
  expect_close(to_host(ctx, out), sum_times_two(a_values, b_values), tolerance_for(DType::F32), "eager");
  const std::unique_ptr<DeviceGraph> graph = backend->capture_graph(body);
  backend->use_memory_pool(0);
  for (int replay = 0; replay < 3; ++replay) {
    SCOPED_TRACE("replay " + std::to_string(replay));
    a_values = random_array(shape, rng);
    b_values = random_array(shape, rng);
    upload(a_values, a_pinned, a);
    upload(b_values, b_pinned, b);
    graph->replay();
    expect_close(to_host(ctx, out), sum_times_two(a_values, b_values), tolerance_for(DType::F32), "replay");
  }
  backend->release_memory_pool(pool);
}

// A block freed into a private pool is not handed to the shared cache, and is handed out
// again by its pool; once released, the pool's blocks serve everyone.
TEST(DeviceGraph, PrivatePoolsKeepTheirBlocks) {
  Ctx& ctx = test_ctx();
  Backend* backend = cuda_backend(ctx);
  if (backend == nullptr) GTEST_SKIP() << "no CUDA device";
  const Device gpu = Device::cuda(0);
  const Shape shape{12345};  // a size class of its own in this test binary
  const int64_t pool = backend->create_memory_pool();
  backend->use_memory_pool(pool);
  void* pooled = ctx.empty(shape, DType::F32, gpu).raw_data();  // freed at once, into the pool
  backend->use_memory_pool(0);
  const Tensor shared = ctx.empty(shape, DType::F32, gpu);
  EXPECT_NE(shared.raw_data(), pooled);
  backend->use_memory_pool(pool);
  EXPECT_EQ(ctx.empty(shape, DType::F32, gpu).raw_data(), pooled);
  backend->use_memory_pool(0);
  backend->release_memory_pool(pool);
  EXPECT_EQ(ctx.empty(shape, DType::F32, gpu).raw_data(), pooled);
  EXPECT_THROW(backend->use_memory_pool(pool), Error);
}

// A capture whose work waits for the device (a download) fails with an anvil::Error, and
// the stream runs ops afterwards.
TEST(DeviceGraph, FailedCaptureLeavesTheStreamUsable) {
  Ctx& ctx = test_ctx();
  Backend* backend = cuda_backend(ctx);
  if (backend == nullptr) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed());
  HostArray values = random_array({257}, rng);
  const Tensor x = make_tensor(ctx, values, DType::F32, Device::cuda(0));
  EXPECT_THROW((void)backend->capture_graph([&] { static_cast<void>(ctx.to_device(x, Device::cpu())); }), Error);
  Tensor doubled = ctx.empty({257}, DType::F32, Device::cuda(0));
  add(ctx, doubled, x, x);
  HostArray want = values;
  for (double& v : want.values) v *= 2.0;
  expect_close(to_host(ctx, doubled), want, tolerance_for(DType::F32), "after a failed capture");
}

}  // namespace
}  // namespace anvil::testing
