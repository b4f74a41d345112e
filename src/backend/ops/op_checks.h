#pragma once
// Argument checks shared by the op entry points: every op validates once, here,
// before any backend sees the tensors, and names the op and the argument it rejects.
#include <initializer_list>
#include <string>

#include "anvil/backend/op_params.h"
#include "anvil/core/error.h"
#include "anvil/core/tensor.h"

namespace anvil::op_checks {

struct Arg {
  const char* name;
  const Tensor* tensor;
};

// The tensor must be defined and contiguous.
void require(const char* op, const Arg& arg);
// All defined args are on one device (undefined ones are skipped); returns that device.
Device common_device(const char* op, std::initializer_list<Arg> args);
void require_shape(const char* op, const Arg& arg, const Shape& shape);
void require_dtype(const char* op, const Arg& arg, std::initializer_list<DType> allowed);
void require_same_shape(const char* op, const Arg& a, const Arg& b);
void require_rank(const char* op, const Arg& arg, int64_t rank);
// A float type the ops compute with: f32, bf16, f16.
void require_float(const char* op, const Arg& arg);
// Rotary parameters that give finite frequencies and pairs inside a head of head_dim.
void require_rope_params(const char* op, const RopeParams& params, int64_t head_dim);

}  // namespace anvil::op_checks
