// Activations: grid-stride elementwise kernels, one template instance per op. The formulas
// are the CPU backend's (src/backend/cpu/activations.cpp), in the same f32 order.
#include <algorithm>

#include "cuda/activation_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;
constexpr float kSqrt2OverPi = 0.7978845608028654F;
constexpr float kGeluCubic = 0.044715F;

__device__ __forceinline__ float sigmoid(float x) { return 1.0F / (1.0F + expf(-x)); }

// 0.5 (1 + tanh(u)) written as sigmoid(2u): no cancellation for large negative x.
__device__ __forceinline__ float gelu_gate(float x) {
  return sigmoid(2.0F * kSqrt2OverPi * (x + kGeluCubic * x * x * x));
}

__device__ __forceinline__ float gelu_value(float x) { return x * gelu_gate(x); }

// d/dx [x s], s = sigmoid(2u): s + x * 2 s (1 - s) * du/dx.
__device__ __forceinline__ float gelu_derivative(float x) {
  const float s = gelu_gate(x);
  const float du_dx = kSqrt2OverPi * (1.0F + 3.0F * kGeluCubic * x * x);
  return s + x * 2.0F * s * (1.0F - s) * du_dx;
}

__device__ __forceinline__ float silu_value(float x) { return x * sigmoid(x); }

// d/dx [x s(x)] = s (1 + x (1 - s)).
__device__ __forceinline__ float silu_derivative(float x) {
  const float s = sigmoid(x);
  return s * (1.0F + x * (1.0F - s));
}

// One element: reads every input of element i, then writes the outputs (aliasing is safe).
template <ActivationOp kOp>
__device__ __forceinline__ void apply(const ActivationArgs& args, int64_t i) {
  if constexpr (kOp == ActivationOp::Gelu) {
    store_float(args.outputs[0], i, gelu_value(load_float(args.inputs[0], i)));
  } else if constexpr (kOp == ActivationOp::GeluBackward) {
    const float dout = load_float(args.inputs[0], i);
    store_float(args.outputs[0], i, dout * gelu_derivative(load_float(args.inputs[1], i)));
  } else if constexpr (kOp == ActivationOp::Silu) {
    store_float(args.outputs[0], i, silu_value(load_float(args.inputs[0], i)));
  } else if constexpr (kOp == ActivationOp::SiluBackward) {
    const float dout = load_float(args.inputs[0], i);
    store_float(args.outputs[0], i, dout * silu_derivative(load_float(args.inputs[1], i)));
  } else if constexpr (kOp == ActivationOp::Swiglu) {
    const float gate = load_float(args.inputs[0], i);
    store_float(args.outputs[0], i, silu_value(gate) * load_float(args.inputs[1], i));
  } else {
    const float dout = load_float(args.inputs[0], i);
    const float gate = load_float(args.inputs[1], i);
    const float up = load_float(args.inputs[2], i);
    const float dgate = dout * up * silu_derivative(gate);
    const float dup = dout * silu_value(gate);
    store_float(args.outputs[0], i, dgate);
    store_float(args.outputs[1], i, dup);
  }
}

// Flat (count) tensors; grid-stride over elements.
template <ActivationOp kOp>
__global__ void activation_kernel(ActivationArgs args, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    apply<kOp>(args, i);
  }
}

template <ActivationOp kOp>
void launch_typed(const ActivationArgs& args, int64_t count, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (count + kThreads - 1) / kThreads));
  activation_kernel<kOp><<<blocks, kThreads, 0, stream>>>(args, count);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_activation(ActivationOp op, const ActivationArgs& args, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  switch (op) {
    case ActivationOp::Gelu:
      return launch_typed<ActivationOp::Gelu>(args, count, stream);
    case ActivationOp::GeluBackward:
      return launch_typed<ActivationOp::GeluBackward>(args, count, stream);
    case ActivationOp::Silu:
      return launch_typed<ActivationOp::Silu>(args, count, stream);
    case ActivationOp::SiluBackward:
      return launch_typed<ActivationOp::SiluBackward>(args, count, stream);
    case ActivationOp::Swiglu:
      return launch_typed<ActivationOp::Swiglu>(args, count, stream);
    case ActivationOp::SwigluBackward:
      return launch_typed<ActivationOp::SwigluBackward>(args, count, stream);
  }
}

}  // namespace anvil::cuda
