#include "anvil/ops/layer_norm.h"

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// x (..., C) must be a non-empty float tensor; returns C.
int64_t checked_channels(const char* op, const Tensor& x) {
  oc::require(op, {"x", &x});
  oc::require_float(op, {"x", &x});
  ANVIL_CHECK(x.dim() >= 1 && x.size(-1) > 0, "op ", op, ": argument 'x' has shape ", shape_string(x.shape()),
              ", expected (..., C) with C > 0");
  return x.size(-1);
}

// An optional (C) parameter gradient accumulated in f32.
void require_param_grad(const char* op, const oc::Arg& grad, int64_t channels) {
  if (!grad.tensor->defined()) return;
  oc::require_shape(op, grad, {channels});
  oc::require_dtype(op, grad, {DType::F32});
}

// A backward's saved statistics (rows,) f32 and its optional parameter gradients (channels,).
void require_saved_and_param_grads(const char* op, const Tensor& mean, const Tensor& rstd, int64_t rows,
                                   const Tensor& dweight, const Tensor& dbias, int64_t channels) {
  for (const oc::Arg& saved : {oc::Arg{"mean", &mean}, oc::Arg{"rstd", &rstd}}) {
    oc::require_shape(op, saved, {rows});
    oc::require_dtype(op, saved, {DType::F32});
  }
  require_param_grad(op, {"dweight", &dweight}, channels);
  require_param_grad(op, {"dbias", &dbias}, channels);
}

}  // namespace

void layer_norm(Ctx& ctx, Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                const Tensor& bias, float eps) {
  constexpr const char* kOp = "layer_norm";
  const int64_t channels = checked_channels(kOp, x);
  const int64_t rows = x.numel() / channels;
  oc::require_same_shape(kOp, {"x", &x}, {"out", &out});
  oc::require_float(kOp, {"out", &out});
  oc::require_shape(kOp, {"weight", &weight}, {channels});
  oc::require_float(kOp, {"weight", &weight});
  if (bias.defined()) {
    oc::require_shape(kOp, {"bias", &bias}, {channels});
    oc::require_float(kOp, {"bias", &bias});
  }
  for (const oc::Arg& saved : {oc::Arg{"mean", &mean}, oc::Arg{"rstd", &rstd}}) {
    if (!saved.tensor->defined()) continue;
    oc::require_shape(kOp, saved, {rows});
    oc::require_dtype(kOp, saved, {DType::F32});
  }
  ANVIL_CHECK(eps >= 0.0F, "op ", kOp, ": eps must be >= 0, got ", eps);
  const Device device = oc::common_device(
      kOp, {{"out", &out}, {"mean", &mean}, {"rstd", &rstd}, {"x", &x}, {"weight", &weight}, {"bias", &bias}});
  ctx.backend(device).layer_norm(out, mean, rstd, x, weight, bias, eps);
}

void layer_norm_backward(Ctx& ctx, Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  constexpr const char* kOp = "layer_norm_backward";
  const int64_t channels = checked_channels(kOp, x);
  const int64_t rows = x.numel() / channels;
  oc::require_same_shape(kOp, {"x", &x}, {"dx", &dx});
  oc::require_float(kOp, {"dx", &dx});
  oc::require_same_shape(kOp, {"x", &x}, {"dout", &dout});
  oc::require_float(kOp, {"dout", &dout});
  oc::require_shape(kOp, {"weight", &weight}, {channels});
  oc::require_float(kOp, {"weight", &weight});
  require_saved_and_param_grads(kOp, mean, rstd, rows, dweight, dbias, channels);
  const Device device = oc::common_device(kOp, {{"dx", &dx},
                                                {"dweight", &dweight},
                                                {"dbias", &dbias},
                                                {"dout", &dout},
                                                {"x", &x},
                                                {"weight", &weight},
                                                {"mean", &mean},
                                                {"rstd", &rstd}});
  ctx.backend(device).layer_norm_backward(dx, dweight, dbias, dout, x, weight, mean, rstd);
}

void layer_norm_backward_residual(Ctx& ctx, Tensor& dres, Tensor& dres_low, Tensor& dweight, Tensor& dbias,
                                  Tensor& dres_sums, const Tensor& dout, const Tensor& x, const Tensor& weight,
                                  const Tensor& mean, const Tensor& rstd) {
  constexpr const char* kOp = "layer_norm_backward_residual";
  const int64_t channels = checked_channels(kOp, x);
  const int64_t rows = x.numel() / channels;
  oc::require_rank(kOp, {"x", &x}, 2);
  for (const oc::Arg& arg : {oc::Arg{"dres", &dres}, oc::Arg{"dout", &dout}, oc::Arg{"x", &x}}) {
    oc::require(kOp, arg);
    oc::require_same_shape(kOp, {"x", &x}, arg);
    oc::require_dtype(kOp, arg, {DType::F32});
  }
  if (dres_low.defined()) {
    oc::require(kOp, {"dres_low", &dres_low});
    oc::require_same_shape(kOp, {"x", &x}, {"dres_low", &dres_low});
    oc::require_dtype(kOp, {"dres_low", &dres_low}, {DType::BF16});
  }
  oc::require_shape(kOp, {"weight", &weight}, {channels});
  oc::require_dtype(kOp, {"weight", &weight}, {DType::F32});
  require_saved_and_param_grads(kOp, mean, rstd, rows, dweight, dbias, channels);
  if (dres_sums.defined()) {
    oc::require(kOp, {"dres_sums", &dres_sums});
    oc::require_shape(kOp, {"dres_sums", &dres_sums}, {channels});
    oc::require_dtype(kOp, {"dres_sums", &dres_sums}, {DType::F32});
  }
  const Device device = oc::common_device(kOp, {{"dres", &dres},
                                                {"dres_low", &dres_low},
                                                {"dres_sums", &dres_sums},
                                                {"dweight", &dweight},
                                                {"dbias", &dbias},
                                                {"dout", &dout},
                                                {"x", &x},
                                                {"weight", &weight},
                                                {"mean", &mean},
                                                {"rstd", &rstd}});
  ctx.backend(device).layer_norm_backward_residual(dres, dres_low, dweight, dbias, dres_sums, dout, x, weight, mean,
                                                   rstd);
}

}  // namespace anvil
