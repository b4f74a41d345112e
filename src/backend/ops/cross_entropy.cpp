#include "anvil/ops/cross_entropy.h"

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// logits (N, V) float with V > 0, targets (N) i32. Target values are checked by the backend
// (they may live on the device).
void require_logits_targets(const char* op, const Tensor& logits, const Tensor& targets) {
  oc::require_rank(op, {"logits", &logits}, 2);
  oc::require_float(op, {"logits", &logits});
  ANVIL_CHECK(logits.size(1) > 0, "op ", op, ": argument 'logits' has shape ", shape_string(logits.shape()),
              ", expected (N, V) with V > 0");
  oc::require_shape(op, {"targets", &targets}, {logits.size(0)});
  oc::require_dtype(op, {"targets", &targets}, {DType::I32});
}

}  // namespace

void cross_entropy(Ctx& ctx, Tensor& losses, const Tensor& logits, const Tensor& targets) {
  constexpr const char* kOp = "cross_entropy";
  require_logits_targets(kOp, logits, targets);
  oc::require_shape(kOp, {"losses", &losses}, {logits.size(0)});
  oc::require_dtype(kOp, {"losses", &losses}, {DType::F32});
  const Device device = oc::common_device(kOp, {{"losses", &losses}, {"logits", &logits}, {"targets", &targets}});
  ctx.backend(device).cross_entropy(losses, logits, targets);
}

void cross_entropy_backward(Ctx& ctx, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                            const Tensor& targets) {
  constexpr const char* kOp = "cross_entropy_backward";
  require_logits_targets(kOp, logits, targets);
  oc::require_same_shape(kOp, {"logits", &logits}, {"dlogits", &dlogits});
  oc::require_float(kOp, {"dlogits", &dlogits});
  oc::require_shape(kOp, {"dlosses", &dlosses}, {logits.size(0)});
  oc::require_dtype(kOp, {"dlosses", &dlosses}, {DType::F32});
  const Device device = oc::common_device(
      kOp, {{"dlogits", &dlogits}, {"dlosses", &dlosses}, {"logits", &logits}, {"targets", &targets}});
  ctx.backend(device).cross_entropy_backward(dlogits, dlosses, logits, targets);
}

void cross_entropy_fused(Ctx& ctx, Tensor& losses, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                         const Tensor& targets) {
  constexpr const char* kOp = "cross_entropy_fused";
  require_logits_targets(kOp, logits, targets);
  oc::require(kOp, {"logits", &logits});
  oc::require(kOp, {"dlogits", &dlogits});
  oc::require_same_shape(kOp, {"logits", &logits}, {"dlogits", &dlogits});
  oc::require_dtype(kOp, {"dlogits", &dlogits}, {DType::F32, logits.dtype()});
  ANVIL_CHECK(dlogits.raw_data() != logits.raw_data() || dlogits.dtype() == logits.dtype(), "op ", kOp,
              ": dlogits aliases logits with another dtype");
  for (const oc::Arg& arg : {oc::Arg{"losses", &losses}, oc::Arg{"dlosses", &dlosses}}) {
    oc::require_shape(kOp, arg, {logits.size(0)});
    oc::require_dtype(kOp, arg, {DType::F32});
  }
  const Device device = oc::common_device(
      kOp,
      {{"losses", &losses}, {"dlogits", &dlogits}, {"dlosses", &dlosses}, {"logits", &logits}, {"targets", &targets}});
  ctx.backend(device).cross_entropy_fused(losses, dlogits, dlosses, logits, targets);
}

}  // namespace anvil
