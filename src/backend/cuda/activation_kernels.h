#pragma once
// GELU (tanh approximation), SiLU and SwiGLU, forward and backward, elementwise in f32 over
// any mix of f32 / bf16 / f16 storage. Outputs may alias inputs exactly.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/float_buffer.h"
#include "cuda/quantized_matmul_kernels.h"

namespace anvil::cuda {

enum class ActivationOp : uint8_t {
  Gelu,            // out = gelu(x)                      inputs {x}              outputs {out}
  GeluBackward,    // dx = dout * gelu'(x)               inputs {dout, x}        outputs {dx}
  Silu,            // out = silu(x)                      inputs {x}              outputs {out}
  SiluBackward,    // dx = dout * silu'(x)               inputs {dout, x}        outputs {dx}
  Swiglu,          // out = silu(gate) * up              inputs {gate, up}       outputs {out}
  SwigluBackward,  // dgate, dup                         inputs {dout, gate, up} outputs {dgate, dup}
};

constexpr int kMaxActivationInputs = 3;
constexpr int kMaxActivationOutputs = 2;

struct ActivationArgs {
  ConstFloatBuffer inputs[kMaxActivationInputs];
  FloatBuffer outputs[kMaxActivationOutputs];
};

// Applies `op` to `count` elements; unused inputs/outputs are ignored.
void launch_activation(ActivationOp op, const ActivationArgs& args, int64_t count, cudaStream_t stream);

// out = silu(gate) * up written as quantized_matmul's activations (`codes`, blocks of
// codes.block) in one kernel. False, launching nothing, unless gate and up are f32 and
// 16-byte aligned and count is a multiple of the block.
bool launch_swiglu_codes(const QuantizedActivations& codes, ConstFloatBuffer gate, ConstFloatBuffer up, int64_t count,
                         cudaStream_t stream);

}  // namespace anvil::cuda
