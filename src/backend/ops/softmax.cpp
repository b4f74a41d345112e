#include "anvil/ops/softmax.h"

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// Every argument is a float tensor of the first one's shape, which is (..., C) with C > 0.
void require_rows(const char* op, std::initializer_list<oc::Arg> args) {
  const oc::Arg& reference = *args.begin();
  oc::require(op, reference);
  ANVIL_CHECK(reference.tensor->dim() >= 1 && reference.tensor->size(-1) > 0, "op ", op, ": argument '", reference.name,
              "' has shape ", shape_string(reference.tensor->shape()), ", expected (..., C) with C > 0");
  for (const oc::Arg& arg : args) {
    oc::require_same_shape(op, reference, arg);
    oc::require_float(op, arg);
  }
}

}  // namespace

void softmax(Ctx& ctx, Tensor& out, const Tensor& x) {
  constexpr const char* kOp = "softmax";
  require_rows(kOp, {{"x", &x}, {"out", &out}});
  ctx.backend(oc::common_device(kOp, {{"out", &out}, {"x", &x}})).softmax(out, x);
}

void softmax_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& y) {
  constexpr const char* kOp = "softmax_backward";
  require_rows(kOp, {{"y", &y}, {"dout", &dout}, {"dx", &dx}});
  ctx.backend(oc::common_device(kOp, {{"dx", &dx}, {"dout", &dout}, {"y", &y}})).softmax_backward(dx, dout, y);
}

}  // namespace anvil
