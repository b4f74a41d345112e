#include "demo.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "anvil/context.h"
#include "anvil/ops.h"

namespace anvil::cli {
namespace {

Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, float scale) {
  std::normal_distribution<float> normal(0.0F, scale);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& value : values) value = normal(rng);
  return Tensor::from_f32(shape, values);
}

double elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int run_system(int threads) {
  Ctx ctx(CtxOptions{threads});
  std::printf("cpu features : %s\n", ctx.cpu_features().to_string().c_str());
  std::printf("kernel isa   : %s\n", isa_name(best_isa(ctx.cpu_features())));
  std::printf("threads      : %d\n", ctx.pool().num_threads());
  std::printf("cuda backend : %s\n", ctx.has_cuda() ? "available" : "not available");
  return 0;
}

int run_demo(const DemoOptions& options) {
  Ctx ctx(CtxOptions{options.threads});
  std::mt19937_64 rng(options.seed);
  const int64_t tokens = options.tokens;
  const int64_t width = options.width;
  std::printf("demo: RMSNorm over (%lld, %lld) on %d threads, isa %s\n", static_cast<long long>(tokens),
              static_cast<long long>(width), ctx.pool().num_threads(), isa_name(best_isa(ctx.cpu_features())));

  Tensor x = random_tensor({tokens, width}, rng, 1.0F);
  Tensor weight = random_tensor({width}, rng, 0.1F);
  Tensor out = Tensor::empty({tokens, width}, DType::F32);
  Tensor rstd = Tensor::empty({tokens}, DType::F32);
  auto start = std::chrono::steady_clock::now();
  rms_norm(ctx, out, rstd, x, weight, 1e-5F);
  std::printf("demo: rms_norm forward  %.3f ms\n", elapsed_ms(start));

  Tensor dout = random_tensor({tokens, width}, rng, 1.0F);
  Tensor dx = Tensor::empty({tokens, width}, DType::F32);
  Tensor dweight = Tensor::zeros({width}, DType::F32);
  start = std::chrono::steady_clock::now();
  rms_norm_backward(ctx, dx, dweight, dout, x, weight, rstd);
  std::printf("demo: rms_norm backward %.3f ms\n", elapsed_ms(start));

  const std::vector<float> values = out.to_f32_vector();
  for (const float value : values) {
    if (!std::isfinite(value)) {
      std::printf("demo: FAILED (non-finite output)\n");
      return 1;
    }
  }
  std::printf("demo: ok\n");
  return 0;
}

}  // namespace anvil::cli
