// Device graphs (CUDA only; skipped elsewhere): a captured op sequence replays on new
// inputs written into the buffers it recorded, private memory pools keep their blocks away
// from the shared cache, pinned uploads arrive, and a failed capture leaves the stream
// usable; a decode MLP whose norm and SwiGLU write quantized_matmul's activations replays as it
// ran. The CPU backend says it has no graphs.
#include <gtest/gtest.h>

#include "anvil/core/quant.h"
#include "anvil/ops/activations.h"
#include "anvil/ops/elementwise.h"
#include "anvil/ops/quantized_matmul.h"
#include "anvil/ops/rms_norm.h"
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

// A decode step's MLP as the model queues it with quantized weights: add_rms_norm writing
// quantized_matmul's activations, the gate/up GEMV, swiglu writing activations, the down
// GEMV; captured, then replayed on the same inputs: the same bits as the eager run.
TEST(DeviceGraph, ActivationCodesProducersReplayAsTheyRan) {
  Ctx& ctx = test_ctx();
  Backend* backend = cuda_backend(ctx);
  if (backend == nullptr) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed());
  const Device gpu = Device::cuda(0);
  for (const DType weight_dtype : {DType::Q4_0, DType::Q4_K}) {
    SCOPED_TRACE(dtype_name(weight_dtype));
    const DType codes = *activation_dtype_for(weight_dtype);
    const int64_t c = weight_dtype == DType::Q4_K ? 512 : 576;
    const int64_t f = weight_dtype == DType::Q4_K ? 1536 : 1536;
    const auto weight = [&](int64_t rows, int64_t cols) {
      HostArray values = random_array({rows, cols}, rng);
      Tensor host = Tensor::empty({rows, cols}, weight_dtype);
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < cols; ++j) row[static_cast<size_t>(j)] = static_cast<float>(values[i * cols + j]);
        quantize_row(weight_dtype, row.data(),
                     static_cast<uint8_t*>(host.raw_data()) + i * dtype_bytes_for(weight_dtype, cols), cols);
      }
      return ctx.to_device(host, gpu);
    };
    const Tensor w_gate_up = weight(2 * f, c);
    const Tensor w_down = weight(c, f);
    HostArray x_values = random_array({1, c}, rng);
    HostArray delta_values = random_array({1, c}, rng);
    HostArray norm_values = random_array({c}, rng, 0.5, 1.5);
    Tensor x = make_tensor(ctx, x_values, DType::F32, gpu);
    const Tensor delta = make_tensor(ctx, delta_values, DType::F32, gpu);
    const Tensor norm_weight = make_tensor(ctx, norm_values, DType::F32, gpu);
    Tensor out = ctx.empty({1, c}, DType::F32, gpu);
    const auto body = [&] {
      Tensor h = ctx.empty({1, c}, codes, gpu);
      add_rms_norm(ctx, h, x, delta, norm_weight, 1e-5F);
      Tensor gate_up = ctx.empty({1, 2 * f}, DType::F32, gpu);
      quantized_matmul(ctx, gate_up, h, w_gate_up);
      const Tensor gate(gate_up.storage(), {1, f}, DType::F32, gate_up.offset_bytes());
      const Tensor up(gate_up.storage(), {1, f}, DType::F32, gate_up.offset_bytes() + f * 4);
      Tensor hidden = ctx.empty({1, f}, codes, gpu);
      swiglu(ctx, hidden, gate, up);
      quantized_matmul(ctx, out, hidden, w_down);
    };
    const Tensor x_start = ctx.to_device(x, Device::cpu());
    const int64_t pool = backend->create_memory_pool();
    backend->use_memory_pool(pool);
    body();
    const HostArray eager = to_host(ctx, out);
    const HostArray eager_x = to_host(ctx, x);
    const std::unique_ptr<DeviceGraph> graph = backend->capture_graph(body);
    backend->use_memory_pool(0);
    for (int replay = 0; replay < 2; ++replay) {
      backend->copy(x, x_start);
      backend->fill_zero(out);
      graph->replay();
      EXPECT_EQ(to_host(ctx, out).values, eager.values) << "replay " << replay;
      EXPECT_EQ(to_host(ctx, x).values, eager_x.values) << "replay " << replay;
    }
    backend->release_memory_pool(pool);
  }
}

}  // namespace
}  // namespace anvil::testing
