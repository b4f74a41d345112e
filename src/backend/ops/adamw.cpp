#include "anvil/ops/adamw.h"

#include <cmath>

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// Hyper-parameter ranges as torch.optim.AdamW accepts them, plus a finite grad_scale.
void check_adamw_params(const char* op, const AdamWParams& params) {
  ANVIL_CHECK(std::isfinite(params.learning_rate) && params.learning_rate >= 0.0F, "op ", op,
              ": learning_rate must be finite and >= 0, got ", params.learning_rate);
  ANVIL_CHECK(params.beta1 >= 0.0F && params.beta1 < 1.0F, "op ", op, ": beta1 must be in [0, 1), got ", params.beta1);
  ANVIL_CHECK(params.beta2 >= 0.0F && params.beta2 < 1.0F, "op ", op, ": beta2 must be in [0, 1), got ", params.beta2);
  ANVIL_CHECK(std::isfinite(params.eps) && params.eps >= 0.0F, "op ", op, ": eps must be finite and >= 0, got ",
              params.eps);
  ANVIL_CHECK(std::isfinite(params.weight_decay) && params.weight_decay >= 0.0F, "op ", op,
              ": weight_decay must be finite and >= 0, got ", params.weight_decay);
  ANVIL_CHECK(params.step >= 1, "op ", op, ": step is 1-based, got ", params.step);
  ANVIL_CHECK(std::isfinite(params.grad_scale), "op ", op, ": grad_scale must be finite, got ", params.grad_scale);
}

// The checks adamw and adamw_runs share; returns the tensors' device.
Device check_adamw_tensors(const char* op, const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& grad,
                           const AdamWParams& params) {
  oc::require(op, {"param", &param});
  oc::require_dtype(op, {"param", &param}, {DType::F32});
  oc::require_same_shape(op, {"param", &param}, {"m", &m});
  oc::require_dtype(op, {"m", &m}, {DType::F32});
  oc::require_same_shape(op, {"param", &param}, {"v", &v});
  oc::require_dtype(op, {"v", &v}, {DType::F32});
  oc::require_same_shape(op, {"param", &param}, {"grad", &grad});
  oc::require_dtype(op, {"grad", &grad}, {DType::F32, DType::BF16});
  check_adamw_params(op, params);
  ANVIL_CHECK(param.raw_data() != m.raw_data() && param.raw_data() != v.raw_data() && m.raw_data() != v.raw_data(),
              "op ", op, ": param, m and v must be distinct tensors");
  return oc::common_device(op, {{"param", &param}, {"m", &m}, {"v", &v}, {"grad", &grad}});
}

}  // namespace

// Follows torch.optim.AdamW (non-amsgrad): param *= 1 - lr * wd first, then the bias-corrected
// Adam step param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), with g = grad * grad_scale.
void adamw(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params) {
  const Device device = check_adamw_tensors("adamw", param, m, v, grad, params);
  ctx.backend(device).adamw(param, m, v, grad, params);
}

void adamw_runs(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                std::span<const AdamWRun> runs) {
  Tensor none;
  adamw_runs(ctx, param, m, v, grad, params, runs, none);
}

void adamw_runs(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                std::span<const AdamWRun> runs, Tensor& param_low) {
  constexpr const char* kOp = "adamw_runs";
  const Device device = check_adamw_tensors(kOp, param, m, v, grad, params);
  if (param_low.defined()) {
    oc::require(kOp, {"param_low", &param_low});
    oc::require_same_shape(kOp, {"param", &param}, {"param_low", &param_low});
    oc::require_dtype(kOp, {"param_low", &param_low}, {DType::BF16});
    ANVIL_CHECK(param_low.is_contiguous(), "op ", kOp, ": param_low must be contiguous");
    static_cast<void>(oc::common_device(kOp, {{"param", &param}, {"param_low", &param_low}}));
  }
  ANVIL_CHECK(
      param.dim() == 1 && param.is_contiguous() && m.is_contiguous() && v.is_contiguous() && grad.is_contiguous(),
      "op ", kOp, ": expected contiguous flat (P) buffers, got param ", param.to_string(0));
  int64_t previous_end = 0;
  for (const AdamWRun& run : runs) {
    ANVIL_CHECK(run.begin >= previous_end && run.end >= run.begin && run.end <= param.numel(), "op ", kOp, ": run [",
                run.begin, ", ", run.end, ") is not sorted, disjoint and within ", param.numel(), " elements");
    previous_end = run.end;
  }
  ctx.backend(device).adamw_runs(param, m, v, grad, params, runs, param_low);
}

}  // namespace anvil
