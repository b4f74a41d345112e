#pragma once
#include "anvil/context.h"

namespace anvil {
// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu(Ctx& ctx, Tensor& out, const Tensor& x);
void gelu_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& x);
// SiLU: x * sigmoid(x).
void silu(Ctx& ctx, Tensor& out, const Tensor& x);
void silu_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& x);
// SwiGLU: out = silu(gate) * up (same shapes). out may be Q8Act / Q8KAct with gate and up
// f32: silu(gate) * up quantised as quantize_activations does (a GPU: in the same kernel).
void swiglu(Ctx& ctx, Tensor& out, const Tensor& gate, const Tensor& up);
void swiglu_backward(Ctx& ctx, Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up);
}  // namespace anvil
