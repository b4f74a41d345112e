#pragma once
#include "anvil/context.h"

namespace anvil {
// out = a + b, b broadcast over a's leading dims (b's shape is a suffix of a's: bias, residual).
// out may alias a.
void add(Ctx& ctx, Tensor& out, const Tensor& a, const Tensor& b);
// out = a * b, broadcast as add.
void mul(Ctx& ctx, Tensor& out, const Tensor& a, const Tensor& b);
// out = a * factor.
void scale(Ctx& ctx, Tensor& out, const Tensor& a, float factor);
// Gradients of add: grad_a = grad_out, grad_b = grad_out summed over broadcast dims.
void add_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out);
// Gradients of mul: grad_a = grad_out * b, grad_b = sum over broadcast dims of grad_out * a.
void mul_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b);
}  // namespace anvil
