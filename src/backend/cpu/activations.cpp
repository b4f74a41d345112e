// GELU (tanh approximation), SiLU and SwiGLU on the CPU: elementwise in f32, parallel over
// fixed chunks of the flattened tensors.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "cpu/activation_kernels.h"
#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

constexpr int64_t kChunkElems = 4096;
constexpr float kSqrt2OverPi = 0.7978845608028654F;
constexpr float kGeluCubic = 0.044715F;

// Elements [begin, begin + count) of a contiguous tensor as f32: in place for f32, else
// converted into `scratch`.
const float* load_span(const Tensor& tensor, int64_t begin, int64_t count, std::vector<float>& scratch) {
  const char* bytes = row_bytes(tensor, begin, 1);
  if (tensor.dtype() == DType::F32) return reinterpret_cast<const float*>(bytes);
  scratch.resize(static_cast<size_t>(count));
  convert_host(tensor.dtype(), bytes, DType::F32, scratch.data(), count);
  return scratch.data();
}

// Where to write elements [begin, begin + count) as f32; store_span finishes the write.
float* output_span(Tensor& tensor, int64_t begin, int64_t count, std::vector<float>& scratch) {
  if (tensor.dtype() == DType::F32) return reinterpret_cast<float*>(row_bytes(tensor, begin, 1));
  scratch.resize(static_cast<size_t>(count));
  return scratch.data();
}

void store_span(Tensor& tensor, int64_t begin, int64_t count, const float* values) {
  if (tensor.dtype() == DType::F32) return;
  convert_host(DType::F32, values, tensor.dtype(), row_bytes(tensor, begin, 1), count);
}

// outputs[o][i] = element_fn(inputs[0][i], ...)[o] for every element i. Each element's inputs are
// read before its outputs are written, so an output may alias an input exactly.
template <size_t kIn, size_t kOut, typename ElementFn>
void map_elements(ThreadPool& pool, const std::array<const Tensor*, kIn>& inputs,
                  const std::array<Tensor*, kOut>& outputs, ElementFn element_fn) {
  const int64_t numel = inputs[0]->numel();
  const int64_t num_chunks = (numel + kChunkElems - 1) / kChunkElems;
  pool.parallel_for(num_chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::array<std::vector<float>, kIn> in_scratch;
    std::array<std::vector<float>, kOut> out_scratch;
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      const int64_t begin = chunk * kChunkElems;
      const int64_t count = std::min(kChunkElems, numel - begin);
      std::array<const float*, kIn> in{};
      std::array<float*, kOut> out{};
      for (size_t i = 0; i < kIn; ++i) in[i] = load_span(*inputs[i], begin, count, in_scratch[i]);
      for (size_t o = 0; o < kOut; ++o) out[o] = output_span(*outputs[o], begin, count, out_scratch[o]);
      for (int64_t e = 0; e < count; ++e) {
        std::array<float, kIn> args{};
        for (size_t i = 0; i < kIn; ++i) args[i] = in[i][e];
        const std::array<float, kOut> results = element_fn(args);
        for (size_t o = 0; o < kOut; ++o) out[o][e] = results[o];
      }
      for (size_t o = 0; o < kOut; ++o) store_span(*outputs[o], begin, count, out[o]);
    }
  });
}

float sigmoid(float x) { return 1.0F / (1.0F + std::exp(-x)); }

// 0.5 (1 + tanh(u)) written as sigmoid(2u): no cancellation for large negative x.
float gelu_gate(float x) { return sigmoid(2.0F * kSqrt2OverPi * (x + kGeluCubic * x * x * x)); }

float gelu_value(float x) { return x * gelu_gate(x); }

// d/dx [x s], s = sigmoid(2u): s + x * 2 s (1 - s) * du/dx.
float gelu_derivative(float x) {
  const float s = gelu_gate(x);
  const float du_dx = kSqrt2OverPi * (1.0F + 3.0F * kGeluCubic * x * x);
  return s + x * 2.0F * s * (1.0F - s) * du_dx;
}

float silu_value(float x) { return x * sigmoid(x); }

// d/dx [x s(x)] = s (1 + x (1 - s)).
float silu_derivative(float x) {
  const float s = sigmoid(x);
  return s * (1.0F + x * (1.0F - s));
}

}  // namespace

void CpuBackend::gelu(Tensor& out, const Tensor& x) {
  map_elements<1, 1>(pool_, {&x}, {&out},
                     [](const std::array<float, 1>& in) { return std::array<float, 1>{gelu_value(in[0])}; });
}

void CpuBackend::gelu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) {
  map_elements<2, 1>(pool_, {&dout, &x}, {&dx}, [](const std::array<float, 2>& in) {
    return std::array<float, 1>{in[0] * gelu_derivative(in[1])};
  });
}

void CpuBackend::silu(Tensor& out, const Tensor& x) {
  map_elements<1, 1>(pool_, {&x}, {&out},
                     [](const std::array<float, 1>& in) { return std::array<float, 1>{silu_value(in[0])}; });
}

void CpuBackend::silu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) {
  map_elements<2, 1>(pool_, {&dout, &x}, {&dx}, [](const std::array<float, 2>& in) {
    return std::array<float, 1>{in[0] * silu_derivative(in[1])};
  });
}

void CpuBackend::swiglu(Tensor& out, const Tensor& gate, const Tensor& up) {
  const bool all_f32 = gate.dtype() == DType::F32 && up.dtype() == DType::F32 && out.dtype() == DType::F32;
  if (isa_ != CpuIsa::Scalar && all_f32 && gate.numel() > 0) {  // llama.cpp's bits, row by row
    const auto row_fn = isa_ == CpuIsa::Avx512 ? swiglu_row_ggml_order_avx512 : swiglu_row_ggml_order_avx2;
    const int64_t width = gate.size(-1);
    const float* g = gate.data<const float>();
    const float* u = up.data<const float>();
    float* y = out.data<float>();
    pool_.parallel_for(gate.numel() / width, std::max<int64_t>(1, kChunkElems / width),
                       [&](int64_t begin, int64_t end) {
                         for (int64_t row = begin; row < end; ++row) {
                           row_fn(g + row * width, u + row * width, y + row * width, width);
                         }
                       });
    return;
  }
  map_elements<2, 1>(pool_, {&gate, &up}, {&out},
                     [](const std::array<float, 2>& in) { return std::array<float, 1>{silu_value(in[0]) * in[1]}; });
}

void CpuBackend::swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up) {
  // out = silu(gate) * up: dgate = dout * up * silu'(gate), dup = dout * silu(gate).
  map_elements<3, 2>(pool_, {&dout, &gate, &up}, {&dgate, &dup}, [](const std::array<float, 3>& in) {
    return std::array<float, 2>{in[0] * in[2] * silu_derivative(in[1]), in[0] * silu_value(in[1])};
  });
}

}  // namespace anvil::cpu
