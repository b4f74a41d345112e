#pragma once
#include "anvil/context.h"

namespace anvil {
// Softmax over the last dim (numerically stable).
void softmax(Ctx& ctx, Tensor& out, const Tensor& x);
// dx = y * (dout - sum(dout * y)) from the saved output y.
void softmax_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& y);
}  // namespace anvil
