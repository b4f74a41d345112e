#pragma once
#include "anvil/context.h"

namespace anvil {
// out (N, C) = table (V, C) rows at ids (N) i32; an id outside [0, V) is an error.
void embedding(Ctx& ctx, Tensor& out, const Tensor& table, const Tensor& ids);
// grad_table (V, C) += scatter of grad_out (N, C) rows to ids (repeated ids add up).
void embedding_backward(Ctx& ctx, Tensor& grad_table, const Tensor& grad_out, const Tensor& ids);
}  // namespace anvil
