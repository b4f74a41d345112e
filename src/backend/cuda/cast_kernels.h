#pragma once
// Dtype conversion of contiguous device buffers on a stream (f32, bf16, f16 in any pair).
// Declared without CUDA headers beyond the runtime API so host .cpp files can call it.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil::cuda {

// Whether launch_cast handles src_dtype -> dst_dtype.
bool cast_supported(DType src_dtype, DType dst_dtype);

// dst[i] = convert(src[i]) for i < num_elems, queued on `stream`; floats round to
// nearest-even. Throws anvil::Error for unsupported pairs or a failed launch.
void launch_cast(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t num_elems, cudaStream_t stream);

}  // namespace anvil::cuda
