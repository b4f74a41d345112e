#include "anvil/ops/rms_norm.h"

#include "ops/activation_codes.h"
#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

void rms_norm(Ctx& ctx, Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  constexpr const char* kOp = "rms_norm";
  oc::require_float(kOp, {"x", &x});
  oc::require(kOp, {"x", &x});
  const int64_t channels = x.size(-1);
  const int64_t rows = x.numel() / channels;
  oc::require_same_shape(kOp, {"x", &x}, {"out", &out});
  oc::require_shape(kOp, {"weight", &weight}, {channels});
  oc::require_float(kOp, {"weight", &weight});
  if (rstd.defined()) {
    oc::require_shape(kOp, {"rstd", &rstd}, {rows});
    oc::require_dtype(kOp, {"rstd", &rstd}, {DType::F32});
  }
  if (is_activation_codes(out.dtype())) oc::require_activation_codes(kOp, out);
  const Device device = oc::common_device(kOp, {{"out", &out}, {"rstd", &rstd}, {"x", &x}, {"weight", &weight}});
  Backend& backend = ctx.backend(device);
  oc::produce_activations(ctx, backend, OpKind::RmsNorm, out,
                          [&](Tensor& target) { backend.rms_norm(target, rstd, x, weight, eps); });
}

void add_rms_norm(Ctx& ctx, Tensor& out, Tensor& x, const Tensor& delta, const Tensor& weight, float eps) {
  constexpr const char* kOp = "add_rms_norm";
  oc::require_float(kOp, {"x", &x});
  oc::require(kOp, {"x", &x});
  const int64_t channels = x.size(-1);
  oc::require_same_shape(kOp, {"x", &x}, {"delta", &delta});
  oc::require_same_shape(kOp, {"x", &x}, {"out", &out});
  oc::require_float(kOp, {"delta", &delta});
  oc::require_shape(kOp, {"weight", &weight}, {channels});
  oc::require_float(kOp, {"weight", &weight});
  if (is_activation_codes(out.dtype())) oc::require_activation_codes(kOp, out);
  const Device device = oc::common_device(kOp, {{"out", &out}, {"x", &x}, {"delta", &delta}, {"weight", &weight}});
  Backend& backend = ctx.backend(device);
  oc::produce_activations(ctx, backend, OpKind::AddRmsNorm, out,
                          [&](Tensor& target) { backend.add_rms_norm(target, x, delta, weight, eps); });
}

void rms_norm_backward(Ctx& ctx, Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                       const Tensor& rstd) {
  constexpr const char* kOp = "rms_norm_backward";
  oc::require_float(kOp, {"x", &x});
  oc::require(kOp, {"x", &x});
  const int64_t channels = x.size(-1);
  const int64_t rows = x.numel() / channels;
  oc::require_same_shape(kOp, {"x", &x}, {"dx", &dx});
  oc::require_same_shape(kOp, {"x", &x}, {"dout", &dout});
  oc::require_shape(kOp, {"weight", &weight}, {channels});
  oc::require_shape(kOp, {"rstd", &rstd}, {rows});
  oc::require_dtype(kOp, {"rstd", &rstd}, {DType::F32});
  if (dweight.defined()) {
    oc::require_shape(kOp, {"dweight", &dweight}, {channels});
    oc::require_dtype(kOp, {"dweight", &dweight}, {DType::F32});
  }
  const Device device = oc::common_device(
      kOp, {{"dx", &dx}, {"dweight", &dweight}, {"dout", &dout}, {"x", &x}, {"weight", &weight}, {"rstd", &rstd}});
  ctx.backend(device).rms_norm_backward(dx, dweight, dout, x, weight, rstd);
}

}  // namespace anvil
