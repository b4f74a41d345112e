#pragma once
// How the ops that may write quantized_matmul's 8-bit activations (rms_norm, add_rms_norm,
// swiglu with a Q8Act / Q8KAct out) run: the backend writes the codes itself where it says
// so (Backend::writes_activation_codes), else the op runs into an f32 scratch and
// quantize_activations follows.
#include <functional>

#include "anvil/backend/backend.h"
#include "anvil/context.h"

namespace anvil::op_checks {

// Checks a Q8Act / Q8KAct out: contiguous, rows a whole number of its blocks.
void require_activation_codes(const char* op, const Tensor& out);

// Runs produce(target) for `out`: target is out itself, or an f32 scratch of its shape that
// is then quantised into out.
void produce_activations(Ctx& ctx, Backend& backend, OpKind op, Tensor& out,
                         const std::function<void(Tensor& target)>& produce);

}  // namespace anvil::op_checks
