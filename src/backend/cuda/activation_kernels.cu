// Activations: grid-stride elementwise kernels, one template instance per op. Fast path: all
// operands of one dtype and 16-byte aligned move 16-byte vectors (the count % vector tail
// element by element); otherwise each element goes through float_io.cuh. The formulas are
// the CPU backend's (src/backend/cpu/activations.cpp), in the same f32 order.
#include <algorithm>

#include "cuda/activation_codes.cuh"
#include "cuda/activation_kernels.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

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

constexpr int num_inputs(ActivationOp op) {
  switch (op) {
    case ActivationOp::Gelu:
    case ActivationOp::Silu:
      return 1;
    case ActivationOp::SwigluBackward:
      return 3;
    default:
      return 2;
  }
}

constexpr int num_outputs(ActivationOp op) { return op == ActivationOp::SwigluBackward ? 2 : 1; }

// One element: out[0..num_outputs) from in[0..num_inputs).
template <ActivationOp kOp>
__device__ __forceinline__ void compute(const float* in, float* out) {
  if constexpr (kOp == ActivationOp::Gelu) {
    out[0] = gelu_value(in[0]);
  } else if constexpr (kOp == ActivationOp::GeluBackward) {
    out[0] = in[0] * gelu_derivative(in[1]);
  } else if constexpr (kOp == ActivationOp::Silu) {
    out[0] = silu_value(in[0]);
  } else if constexpr (kOp == ActivationOp::SiluBackward) {
    out[0] = in[0] * silu_derivative(in[1]);
  } else if constexpr (kOp == ActivationOp::Swiglu) {
    out[0] = silu_value(in[0]) * in[1];
  } else {  // SwigluBackward: in {dout, gate, up}, out {dgate, dup}
    out[0] = in[0] * in[2] * silu_derivative(in[1]);
    out[1] = in[0] * silu_value(in[1]);
  }
}

// Flat (count) tensors of any dtypes; grid-stride over elements. Each element's inputs are
// read before its outputs are written, so exact aliasing is safe.
template <ActivationOp kOp>
__global__ void activation_kernel(ActivationArgs args, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    float in[kMaxActivationInputs];
    float out[kMaxActivationOutputs];
#pragma unroll
    for (int n = 0; n < num_inputs(kOp); ++n) in[n] = load_float(args.inputs[n], i);
    compute<kOp>(in, out);
#pragma unroll
    for (int n = 0; n < num_outputs(kOp); ++n) store_float(args.outputs[n], i, out[n]);
  }
}

// The pointers of a one-dtype launch.
template <typename T>
struct TypedArgs {
  const T* inputs[kMaxActivationInputs];
  T* outputs[kMaxActivationOutputs];
};

// One-dtype, 16-byte aligned tensors: vectors, then the count % vector tail element by
// element by the first threads of the grid.
template <typename T, ActivationOp kOp>
__global__ void activation_vec_kernel(TypedArgs<T> args, int64_t count) {
  allow_dependents();   // a decode GEMV after it may start streaming its weights
  wait_for_producer();  // launched early after a GEMV (launch_dependent): its inputs
  constexpr int kSize = kVecSize<T>;
  constexpr int kIn = num_inputs(kOp);
  constexpr int kOut = num_outputs(kOp);
  const int64_t num_vecs = count / kSize;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t v = first; v < num_vecs; v += stride) {
    float in[kIn][kSize];
    float out[kOut][kSize];
#pragma unroll
    for (int n = 0; n < kIn; ++n) load_vec(args.inputs[n], v, in[n]);
#pragma unroll
    for (int k = 0; k < kSize; ++k) {
      float element_in[kMaxActivationInputs];
      float element_out[kMaxActivationOutputs];
#pragma unroll
      for (int n = 0; n < kIn; ++n) element_in[n] = in[n][k];
      compute<kOp>(element_in, element_out);
#pragma unroll
      for (int n = 0; n < kOut; ++n) out[n][k] = element_out[n];
    }
#pragma unroll
    for (int n = 0; n < kOut; ++n) store_vec(args.outputs[n], v, out[n]);
  }
  const int64_t tail = num_vecs * kSize + first;
  if (tail >= count) return;
  float element_in[kMaxActivationInputs];
  float element_out[kMaxActivationOutputs];
#pragma unroll
  for (int n = 0; n < kIn; ++n) element_in[n] = widen(args.inputs[n][tail]);
  compute<kOp>(element_in, element_out);
#pragma unroll
  for (int n = 0; n < kOut; ++n) args.outputs[n][tail] = narrow<T>(element_out[n]);
}

// silu(gate) * up of f32, 16-byte aligned gate and up (count a multiple of codes.block),
// written as quantized_matmul's activations: each thread 8 consecutive elements, kLanes
// threads a block. The loop bound is uniform over each block's lanes (they shuffle).
template <int kLanes>
__global__ void swiglu_codes_kernel(const float* gate, const float* up, QuantizedActivations codes, int64_t count) {
  // Launched early after a GEMV (launch_dependent): its inputs. Only then may the GEMV after
  // it launch (as the quantiser it replaces: a chain of early launches slows the long rows).
  wait_for_producer();
  allow_dependents();
  const int64_t eights = count / 8;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x; base < eights; base += stride) {
    const int64_t e = base + threadIdx.x;
    const bool valid = e < eights;
    float values[8] = {};
    if (valid) {
      // gate and up come from the kernel ahead: __ldcg (L2; a load the wait orders, see
      // dependent_launch.cuh), read once.
      const auto* gate4 = reinterpret_cast<const float4*>(gate) + 2 * e;
      const auto* up4 = reinterpret_cast<const float4*>(up) + 2 * e;
      const float4 g0 = __ldcg(gate4);
      const float4 g1 = __ldcg(gate4 + 1);
      const float4 u0 = __ldcg(up4);
      const float4 u1 = __ldcg(up4 + 1);
      const float g[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
      const float u[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const float in[kMaxActivationInputs] = {g[k], u[k], 0.0F};
        float out[kMaxActivationOutputs];
        compute<ActivationOp::Swiglu>(in, out);
        values[k] = out[0];
      }
    }
    quantize_eight<kLanes>(values, e * 8, valid, codes);
  }
}

unsigned grid_for(int64_t work_items) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(kMaxBlocks, (work_items + kThreads - 1) / kThreads)));
}

template <ActivationOp kOp>
void launch_typed(const ActivationArgs& args, int64_t count, cudaStream_t stream) {
  const DType dtype = args.inputs[0].dtype;
  bool ready = true;
  for (int n = 0; n < num_inputs(kOp); ++n) ready = ready && vector_ready(dtype, {args.inputs[n]});
  for (int n = 0; n < num_outputs(kOp); ++n) ready = ready && vector_ready(dtype, {as_const(args.outputs[n])});
  if (ready) {
    dispatch_storage(dtype, [&](auto tag) {
      using T = decltype(tag);
      TypedArgs<T> typed{};
      for (int n = 0; n < num_inputs(kOp); ++n) typed.inputs[n] = static_cast<const T*>(args.inputs[n].data);
      for (int n = 0; n < num_outputs(kOp); ++n) typed.outputs[n] = static_cast<T*>(args.outputs[n].data);
      // Threads cover the vectors and at least the tail (< kVecSize elements).
      const int64_t threads_needed = std::max<int64_t>(count / kVecSize<T>, kVecSize<T>);
      launch_dependent(activation_vec_kernel<T, kOp>, grid_for(threads_needed), kThreads, 0, stream, typed, count);
    });
  } else {
    activation_kernel<kOp><<<grid_for(count), kThreads, 0, stream>>>(args, count);
  }
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

bool launch_swiglu_codes(const QuantizedActivations& codes, ConstFloatBuffer gate, ConstFloatBuffer up, int64_t count,
                         cudaStream_t stream) {
  if (count == 0) return true;
  if (!vector_ready(DType::F32, {gate, up}) || count % codes.block != 0) return false;
  const unsigned grid = grid_for(count / 8);
  if (codes.block == kQuantBlock) {
    launch_dependent(swiglu_codes_kernel<kLegacyCodeLanes>, grid, kThreads, 0, stream,
                     static_cast<const float*>(gate.data), static_cast<const float*>(up.data), codes, count);
  } else {
    launch_dependent(swiglu_codes_kernel<kSuperCodeLanes>, grid, kThreads, 0, stream,
                     static_cast<const float*>(gate.data), static_cast<const float*>(up.data), codes, count);
  }
  return true;
}

}  // namespace anvil::cuda
