#pragma once
// A device buffer of floats whose storage dtype (f32, bf16 or f16) is known only at run time.
// Launch APIs take these instead of templates so that an op with several arguments of
// independent dtypes needs one kernel, not one per dtype combination; device code reads and
// writes them through float_io.cuh, in f32. Plain C++ so host .cpp files can build them.
#include "anvil/core/dtype.h"
#include "anvil/core/tensor.h"

namespace anvil::cuda {

struct ConstFloatBuffer {
  const void* data = nullptr;
  DType dtype = DType::F32;
};

struct FloatBuffer {
  void* data = nullptr;
  DType dtype = DType::F32;
};

// Views of a contiguous float tensor (f32/bf16/f16; the op's checks guarantee it).
inline ConstFloatBuffer const_floats(const Tensor& tensor) { return {tensor.raw_data(), tensor.dtype()}; }
inline FloatBuffer floats(Tensor& tensor) { return {tensor.raw_data(), tensor.dtype()}; }

}  // namespace anvil::cuda
