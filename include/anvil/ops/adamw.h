#pragma once
#include <span>

#include "anvil/context.h"

namespace anvil {
// One AdamW step (decoupled weight decay, bias-corrected moments), in place.
// param, m, v f32 of one shape; grad f32 or bf16 of that shape.
void adamw(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params);
// The same step over the runs of flat (P) buffers in one call (one launch on a GPU): each
// run [begin, end) gets params.weight_decay when run.decay, else none; runs sorted, disjoint
// and within [0, P); other elements untouched. Bit-identical to adamw per run.
void adamw_runs(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                std::span<const AdamWRun> runs);
// The same, and param_low (P) bf16 (may be undefined) = each updated element of the runs
// rounded: mixed precision's compute copy of the parameters, without a pass of its own.
void adamw_runs(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                std::span<const AdamWRun> runs, Tensor& param_low);
}  // namespace anvil
