#pragma once
#include "anvil/context.h"

namespace anvil {
// dst = src converted to dst's dtype; shapes equal; host<->device copies allowed.
void copy(Ctx& ctx, Tensor& dst, const Tensor& src);
}  // namespace anvil
