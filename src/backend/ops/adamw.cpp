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

}  // namespace

// Follows torch.optim.AdamW (non-amsgrad): param *= 1 - lr * wd first, then the bias-corrected
// Adam step param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), with g = grad * grad_scale.
void adamw(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params) {
  constexpr const char* kOp = "adamw";
  oc::require(kOp, {"param", &param});
  oc::require_dtype(kOp, {"param", &param}, {DType::F32});
  oc::require_same_shape(kOp, {"param", &param}, {"m", &m});
  oc::require_dtype(kOp, {"m", &m}, {DType::F32});
  oc::require_same_shape(kOp, {"param", &param}, {"v", &v});
  oc::require_dtype(kOp, {"v", &v}, {DType::F32});
  oc::require_same_shape(kOp, {"param", &param}, {"grad", &grad});
  oc::require_dtype(kOp, {"grad", &grad}, {DType::F32, DType::BF16});
  check_adamw_params(kOp, params);
  ANVIL_CHECK(param.raw_data() != m.raw_data() && param.raw_data() != v.raw_data() && m.raw_data() != v.raw_data(),
              "op ", kOp, ": param, m and v must be distinct tensors");
  const Device device = oc::common_device(kOp, {{"param", &param}, {"m", &m}, {"v", &v}, {"grad", &grad}});
  ctx.backend(device).adamw(param, m, v, grad, params);
}

}  // namespace anvil
