// AdamW: a grid-stride elementwise update. The per-step scalars are the CPU backend's
// (adamw_scalars.h, computed on the host in f64), and the per-element f32
// arithmetic follows the same order, torch.optim.AdamW's: decay param, update the moments,
// then the bias-corrected step.
#include <algorithm>
#include <span>
#include <type_traits>

#include "adamw_scalars.h"
#include "cuda/adamw_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// One element, updated in place. Every rounding is spelled out (intrinsics ptxas does not
// contract), so the scalar, vector and multi-run kernels give the same bits for an element
// whichever path takes it: the fmas are the ones nvcc chose for the plain expressions, and
// param * decay - update rounds twice, as on the CPU.
__device__ __forceinline__ void adamw_element(float& param, float& m, float& v, float grad, const AdamWScalars& s) {
  const float g = __fmul_rn(grad, s.grad_scale);
  const float m_new = __fmaf_rn(s.beta1, m, __fmul_rn(s.one_minus_beta1, g));
  const float v_new = __fmaf_rn(s.beta2, v, __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
  m = m_new;
  v = v_new;
  const float denominator = __fmaf_rn(__fsqrt_rn(v_new), s.inv_sqrt_bc2, s.eps);
  param = __fsub_rn(__fmul_rn(param, s.decay), __fdiv_rn(__fmul_rn(s.step_size, m_new), denominator));
}

// Quad q (elements 4q .. 4q + 3) of 16-byte aligned buffers: param, m, v as float4, grad as
// 16 bytes of f32 or 8 of bf16; low (8-byte aligned, may be null) receives param rounded.
template <typename G>
__device__ __forceinline__ void adamw_quad(float* param, float* m, float* v, const G* grad, int64_t q,
                                           const AdamWScalars& s, __nv_bfloat16* low = nullptr) {
  float4 p4 = reinterpret_cast<float4*>(param)[q];
  float4 m4 = reinterpret_cast<float4*>(m)[q];
  float4 v4 = reinterpret_cast<float4*>(v)[q];
  float g[4];
  if constexpr (std::is_same_v<G, float>) {
    const float4 g4 = reinterpret_cast<const float4*>(grad)[q];
    g[0] = g4.x;
    g[1] = g4.y;
    g[2] = g4.z;
    g[3] = g4.w;
  } else {
    const uint2 raw = reinterpret_cast<const uint2*>(grad)[q];
    const G* values = reinterpret_cast<const G*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) g[k] = widen(values[k]);
  }
  adamw_element(p4.x, m4.x, v4.x, g[0], s);
  adamw_element(p4.y, m4.y, v4.y, g[1], s);
  adamw_element(p4.z, m4.z, v4.z, g[2], s);
  adamw_element(p4.w, m4.w, v4.w, g[3], s);
  reinterpret_cast<float4*>(param)[q] = p4;
  reinterpret_cast<float4*>(m)[q] = m4;
  reinterpret_cast<float4*>(v)[q] = v4;
  if (low != nullptr) {
    const __nv_bfloat162 pair[2] = {__floats2bfloat162_rn(p4.x, p4.y), __floats2bfloat162_rn(p4.z, p4.w)};
    reinterpret_cast<uint2*>(low)[q] = *reinterpret_cast<const uint2*>(pair);
  }
}

// param, m, v, grad (count); grid-stride over elements.
__global__ void adamw_kernel(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, AdamWScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    adamw_element(param[i], m[i], v[i], load_float(grad, i), s);
  }
}

// Fast path (all four 16-byte aligned): four elements per step as float4 (param, m, v) and
// four grad values (16 bytes of f32 or 8 of bf16); the count % 4 tail goes element by
// element on the first threads.
template <typename G>
__global__ void adamw_vec_kernel(float* param, float* m, float* v, const G* grad, int64_t count, AdamWScalars s) {
  const int64_t quads = count / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t q = first; q < quads; q += stride) {
    adamw_quad(param, m, v, grad, q, s);
  }
  const int64_t tail = quads * 4 + first;
  if (tail < count) adamw_element(param[tail], m[tail], v[tail], widen(grad[tail]), s);
}

// Up to kRunsPerLaunch runs of one adamw_runs call, passed by value (kernel parameters stay
// under the classic 4 KiB limit); longer lists take one launch per kRunsPerLaunch runs.
constexpr int kRunsPerLaunch = 128;

struct AdamWRunTable {
  int64_t begin[kRunsPerLaunch];
  int64_t end[kRunsPerLaunch];
  float decay[kRunsPerLaunch];  // 1 - lr * wd for decayed runs, 1 for the others
  int count;
};

// The run holding element i, or -1 (a gap): binary search over the sorted begins. Threads
// of a warp mostly share one run, so the parameter-space reads broadcast.
__device__ __forceinline__ int find_run(const AdamWRunTable& t, int64_t i) {
  int lo = 0, hi = t.count - 1;
  while (lo < hi) {  // the last run with begin <= i
    const int mid = (lo + hi + 1) / 2;
    if (t.begin[mid] <= i) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return (t.begin[lo] <= i && i < t.end[lo]) ? lo : -1;
}

// One element i of the flat buffers if a run holds it, with that run's decay (and its
// rounded copy into low when not null).
__device__ __forceinline__ void adamw_run_element(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t i,
                                                  const AdamWRunTable& t, AdamWScalars s, __nv_bfloat16* low) {
  const int run = find_run(t, i);
  if (run < 0) return;
  s.decay = t.decay[run];
  adamw_element(param[i], m[i], v[i], load_float(grad, i), s);
  if (low != nullptr) low[i] = __float2bfloat16_rn(param[i]);
}

// Flat buffers, elements [first, last) = [the first run's begin, the last run's end);
// grid-stride over the quads of absolute element indices (4q .. 4q + 3). A quad wholly
// inside one run goes as float4 when `vector` (every base 16-byte aligned); quads at run
// boundaries, gaps or the ends go element by element, touching only elements of a run.
template <bool Vector, typename G>
__global__ void adamw_runs_kernel(float* param, float* m, float* v, ConstFloatBuffer grad, __nv_bfloat16* low,
                                  int64_t first, int64_t last, AdamWRunTable table, AdamWScalars s) {
  const int64_t first_quad = first / 4;
  const int64_t quads = (last + 3) / 4 - first_quad;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < quads; q += stride) {
    const int64_t base = (first_quad + q) * 4;
    const int run = find_run(table, base);
    if (Vector && run >= 0 && base + 3 < table.end[run]) {
      AdamWScalars rs = s;
      rs.decay = table.decay[run];
      adamw_quad(param, m, v, static_cast<const G*>(grad.data), base / 4, rs, low);
    } else {
      const int64_t begin = base > first ? base : first, end = base + 4 < last ? base + 4 : last;
      for (int64_t i = begin; i < end; ++i) {
        adamw_run_element(param, m, v, grad, i, table, s, low);
      }
    }
  }
}

}  // namespace

void launch_adamw(float* param, float* m, float* v, ConstFloatBuffer grad, int64_t count, const AdamWParams& params,
                  cudaStream_t stream) {
  if (count == 0) return;
  const AdamWScalars scalars = adamw_scalars(params);
  if (vector_ready(DType::F32, {{param, DType::F32}, {m, DType::F32}, {v, DType::F32}}) &&
      reinterpret_cast<uintptr_t>(grad.data) % 16 == 0) {
    // Threads cover the quads and at least the tail (< 4 elements).
    const int64_t threads_needed = std::max<int64_t>(count / 4, 4);
    const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (threads_needed + kThreads - 1) / kThreads));
    if (grad.dtype == DType::F32) {
      adamw_vec_kernel<float>
          <<<blocks, kThreads, 0, stream>>>(param, m, v, static_cast<const float*>(grad.data), count, scalars);
    } else {
      adamw_vec_kernel<__nv_bfloat16>
          <<<blocks, kThreads, 0, stream>>>(param, m, v, static_cast<const __nv_bfloat16*>(grad.data), count, scalars);
    }
  } else {
    const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (count + kThreads - 1) / kThreads));
    adamw_kernel<<<blocks, kThreads, 0, stream>>>(param, m, v, grad, count, scalars);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_adamw_runs(float* param, float* m, float* v, ConstFloatBuffer grad, void* param_low,
                       std::span<const AdamWRun> runs, const AdamWParams& params, cudaStream_t stream) {
  auto* low = static_cast<__nv_bfloat16*>(param_low);
  const AdamWScalars scalars = adamw_scalars(params);
  AdamWParams no_decay = params;
  no_decay.weight_decay = 0.0F;
  const float plain = adamw_scalars(no_decay).decay;  // 1: the same f64 expression as adamw's
  const bool vector = vector_ready(DType::F32, {{param, DType::F32}, {m, DType::F32}, {v, DType::F32}}) &&
                      reinterpret_cast<uintptr_t>(grad.data) % 16 == 0 && reinterpret_cast<uintptr_t>(low) % 8 == 0;
  for (size_t start = 0; start < runs.size(); start += kRunsPerLaunch) {
    AdamWRunTable table{};
    table.count = static_cast<int>(std::min<size_t>(kRunsPerLaunch, runs.size() - start));
    for (int r = 0; r < table.count; ++r) {
      const AdamWRun& run = runs[start + static_cast<size_t>(r)];
      table.begin[r] = run.begin;
      table.end[r] = run.end;
      table.decay[r] = run.decay ? scalars.decay : plain;
    }
    const int64_t first = table.begin[0], last = table.end[table.count - 1];
    if (last <= first) continue;
    const int64_t quads = (last + 3) / 4 - first / 4;
    const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (quads + kThreads - 1) / kThreads));
    if (!vector) {
      adamw_runs_kernel<false, float>
          <<<blocks, kThreads, 0, stream>>>(param, m, v, grad, low, first, last, table, scalars);
    } else if (grad.dtype == DType::F32) {
      adamw_runs_kernel<true, float>
          <<<blocks, kThreads, 0, stream>>>(param, m, v, grad, low, first, last, table, scalars);
    } else {
      adamw_runs_kernel<true, __nv_bfloat16>
          <<<blocks, kThreads, 0, stream>>>(param, m, v, grad, low, first, last, table, scalars);
    }
    ANVIL_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace anvil::cuda
