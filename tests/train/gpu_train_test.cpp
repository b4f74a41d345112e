// Training on the GPU (skipped without one): the same model, initialisation and batches on
// cuda:0 and on the CPU give the same losses, the same gradients and, through AdamW with
// clipping, the same first steps, up to f32 summation order.
#include <gtest/gtest.h>

#include <cmath>

#include "anvil/train/optimizer.h"
#include "anvil/train/train_model.h"
#include "support/op_harness.h"
#include "train/train_reference.h"

namespace anvil::testing {
namespace {

using model::Architecture;

// The two devices sum in different orders (f32): a few f32 ulps of each tensor's scale,
// through two layers and a short chain of steps.
const Tolerance kSameF32{1e-4, 1e-6, 1.0};

struct Batch {
  Tensor tokens, targets;
};

Batch random_batch(int64_t batch, int64_t seq, int64_t vocab, Rng& rng) {
  std::vector<int32_t> tokens, targets;
  for (int64_t i = 0; i < batch * seq; ++i) {
    tokens.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
    targets.push_back(i % 7 == 3 ? -1 : static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
  }
  return {Tensor::from_i32({batch, seq}, tokens), Tensor::from_i32({batch, seq}, targets)};
}

HostArray flat(Ctx& ctx, const Tensor& tensor) { return to_host(ctx, tensor); }

TEST(GpuTraining, LossesGradientsAndStepsMatchTheCpu) {
  Ctx& ctx = test_ctx();
  if (!ctx.has_cuda()) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed());
  for (const Architecture architecture : {Architecture::Llama, Architecture::Gpt2}) {
    for (const bool tied : {true, false}) {
      SCOPED_TRACE(std::string(model::architecture_name(architecture)) + (tied ? " tied" : " untied"));
      model::ModelConfig config = tiny_train_config(architecture, tied);
      config.vocab_size = 67;
      config.max_position = 33;
      train::TrainModelOptions on_gpu;
      on_gpu.device = Device::cuda(0);
      train::TrainModel cpu(ctx, config);
      train::TrainModel gpu(ctx, config, on_gpu);
      cpu.init_weights(11);
      gpu.init_weights(11);
      ASSERT_EQ(gpu.params().device(), Device::cuda(0));
      expect_close(flat(ctx, gpu.params()), flat(ctx, cpu.params()), {0.0, 0.0, 0.0}, "initial params");
      train::OptimizerConfig adam;
      adam.lr = 3e-3;
      adam.weight_decay = 0.1;
      adam.grad_clip = 0.5;  // the first steps clip: the norm on the GPU must agree too
      train::Optimizer cpu_opt(ctx, cpu.table(), adam);
      train::Optimizer gpu_opt(ctx, gpu.table(), adam, Device::cuda(0));
      for (int step = 0; step < 4; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const Batch batch = random_batch(3, 33, config.vocab_size, rng);
        cpu.zero_grad();
        gpu.zero_grad();
        const double cpu_loss = cpu.forward_train(batch.tokens, batch.targets);
        const double gpu_loss = gpu.forward_train(batch.tokens, batch.targets);
        EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 * cpu_loss);
        cpu.backward();
        gpu.backward();
        expect_close(flat(ctx, gpu.grads()), flat(ctx, cpu.grads()), kSameF32, "gradients");
        const train::OptimizerStepInfo cpu_info = cpu_opt.step(cpu.params(), cpu.grads(), 1.0);
        const train::OptimizerStepInfo gpu_info = gpu_opt.step(gpu.params(), gpu.grads(), 1.0);
        EXPECT_NEAR(gpu_info.grad_norm, cpu_info.grad_norm, 1e-5 * cpu_info.grad_norm);
        expect_close(flat(ctx, gpu.params()), flat(ctx, cpu.params()), kSameF32, "params after the step");
      }
      // Named parameters come back to the host (export reads them this way).
      const std::string name = architecture == Architecture::Gpt2 ? "wte.weight" : "model.embed_tokens.weight";
      EXPECT_TRUE(gpu.param(name).device().is_cpu());
      expect_close(flat(ctx, gpu.param(name)), flat(ctx, cpu.param(name)), kSameF32, name);
    }
  }
}

// Muon on the GPU (ops on device views of the flat buffers) against the CPU: the same
// momentum, Newton-Schulz and AdamW updates over a few steps, up to f32 summation order.
TEST(GpuTraining, MuonStepsMatchTheCpu) {
  Ctx& ctx = test_ctx();
  if (!ctx.has_cuda()) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed());
  for (const Architecture architecture : {Architecture::Llama, Architecture::Gpt2}) {
    SCOPED_TRACE(model::architecture_name(architecture));
    model::ModelConfig config = tiny_train_config(architecture, false);
    config.vocab_size = 67;
    config.max_position = 33;
    train::TrainModelOptions on_gpu;
    on_gpu.device = Device::cuda(0);
    train::TrainModel cpu(ctx, config);
    train::TrainModel gpu(ctx, config, on_gpu);
    cpu.init_weights(3);
    gpu.init_weights(3);
    train::OptimizerConfig muon;
    muon.name = "muon";
    muon.lr = 3e-3;
    muon.muon_lr = 0.02;
    muon.weight_decay = 0.1;
    muon.grad_clip = 0.5;
    train::Optimizer cpu_opt(ctx, cpu.table(), muon);
    train::Optimizer gpu_opt(ctx, gpu.table(), muon, Device::cuda(0));
    for (int step = 0; step < 3; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const Batch batch = random_batch(3, 33, config.vocab_size, rng);
      cpu.zero_grad();
      gpu.zero_grad();
      static_cast<void>(cpu.forward_train(batch.tokens, batch.targets));
      static_cast<void>(gpu.forward_train(batch.tokens, batch.targets));
      cpu.backward();
      gpu.backward();
      const HostArray before = flat(ctx, cpu.params());
      static_cast<void>(cpu_opt.step(cpu.params(), cpu.grads(), 1.0));
      static_cast<void>(gpu_opt.step(gpu.params(), gpu.grads(), 1.0));
      const HostArray after = flat(ctx, cpu.params());
      EXPECT_NE(before.values, after.values) << "the step changed nothing";
      expect_close(flat(ctx, gpu.params()), after, kSameF32, "params after the Muon step");
      expect_close(to_host(ctx, gpu_opt.state().back().second), to_host(ctx, cpu_opt.state().back().second), kSameF32,
                   "Muon momentum");
    }
  }
}

}  // namespace
}  // namespace anvil::testing
