// Generic attention kernels: any head_dim up to 256, storage f32/bf16/f16, all math in f32
// on the CUDA cores. This is the path for f32 tensors (whose tolerance rules out bf16
// tensor cores) and for head dims the tensor-core kernels do not cover.
//
// All three kernels share one pattern: a block of 4 warps takes 16 "own" rows of one head
// (query rows for the forward and dQ, key rows for dK/dV), 4 per warp, and streams tiles of
// 32 "other" rows through shared memory as f32. Lane j of a warp computes the dot products
// of other-row j with the warp's 4 own rows (other rows are stored with an odd stride so
// the 32 lanes hit 32 banks; own rows are read as broadcasts). The per-row results are
// then broadcast back with shuffles, and lane l accumulates columns l, l + 32, ... (kCols
// of them) of each own row's output. Every sum runs in a fixed order: deterministic.
#include <cmath>

#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"

namespace anvil::cuda::attention {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRows = kWarps * kRowsPerWarp;  // own rows per block
constexpr int kTile = 32;                     // other rows per tile: one per lane
constexpr int kThreads = kWarps * 32;

// Odd row stride: lanes reading element c of 32 consecutive rows hit 32 different banks.
__host__ __device__ int odd_stride(int d) { return d | 1; }

// dst (count, d) f32 with row stride `stride` = rows first .. first + count - 1 of one head,
// row t at base + t * row_step; rows at or past seq are zeros. All threads of the block take part.
template <typename T>
__device__ void load_rows(float* dst, int stride, const T* base, int64_t row_step, int first, int count, int seq,
                          int d) {
  for (int idx = static_cast<int>(threadIdx.x); idx < count * d; idx += kThreads) {
    const int r = idx / d;
    const int c = idx - r * d;
    const int t = first + r;
    dst[r * stride + c] = t < seq ? to_float(base[t * row_step + c]) : 0.0F;
  }
}

// Forward. Grid (B * Hq, ceil(T / 16)), 128 threads: one block per 16 query rows of one
// (b, h), causal heaviest tiles first. Per key tile of 32: lane j scores key j against the
// warp's 4 rows, the online softmax updates each row's running max m and sum l (in the
// exp2 domain, warp-uniform), then o += p_j v_j with p_j broadcast by shuffles.
// Shared memory (f32): q (16, D), k (32, D|1), v (32, D).
// kDelta: instead of out and lse, write delta = rowsum(dout * O) with O still in f32.
template <typename T, int kCols, bool kDelta>
__global__ void __launch_bounds__(kThreads) generic_forward_kernel(Args args) {
  extern __shared__ float smem[];
  const int d = args.head_dim;
  const int seq = args.seq;
  const int k_stride = odd_stride(d);
  float* q_s = smem;
  float* k_s = q_s + kRows * d;
  float* v_s = k_s + kTile * k_stride;

  const int b = static_cast<int>(blockIdx.x) / args.q_heads;
  const int h = static_cast<int>(blockIdx.x) % args.q_heads;
  const int kv_h = h / args.group();
  const int q0 = static_cast<int>(gridDim.y - 1 - blockIdx.y) * kRows;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int row0 = q0 + warp * kRowsPerWarp;
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * d;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * d;
  const T* k = static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h);
  const T* v = static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h);
  load_rows(q_s, d, static_cast<const T*>(args.q) + args.q_offset(b, 0, h), q_step, q0, kRows, seq, d);

  float o[kRowsPerWarp][kCols] = {};
  float m[kRowsPerWarp];
  float l[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0F;
  }
  const float* q_rows = q_s + warp * kRowsPerWarp * d;
  const int key_end = args.causal ? min(seq, q0 + kRows) : seq;
  for (int n0 = 0; n0 < key_end; n0 += kTile) {
    __syncthreads();  // q is loaded; the previous tile is consumed
    load_rows(k_s, k_stride, k, kv_step, n0, kTile, seq, d);
    load_rows(v_s, d, v, kv_step, n0, kTile, seq, d);
    __syncthreads();
    float s[kRowsPerWarp] = {};
    const float* k_row = k_s + lane * k_stride;
    for (int c = 0; c < d; ++c) {
      const float kc = k_row[c];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) s[i] = fmaf(q_rows[i * d + c], kc, s[i]);
    }
    const int key = n0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const bool visible = key < seq && (!args.causal || key <= row0 + i);
      const float x = visible ? s[i] * args.scale_log2 : -INFINITY;
      const float m_new = fmaxf(m[i], warp_max(x));
      const float m_use = m_new == -INFINITY ? 0.0F : m_new;  // no key seen yet: keep exp2 finite
      const float alpha = exp2f(m[i] - m_use);
      s[i] = exp2f(x - m_use);
      l[i] = l[i] * alpha + warp_sum(s[i]);
      m[i] = m_new;
#pragma unroll
      for (int col = 0; col < kCols; ++col) o[i][col] *= alpha;
    }
    for (int j = 0; j < kTile; ++j) {
      float p[kRowsPerWarp];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) p[i] = __shfl_sync(0xffffffffU, s[i], j);
#pragma unroll
      for (int col = 0; col < kCols; ++col) {
        const int c = lane + 32 * col;
        if (c < d) {
          const float vc = v_s[j * d + c];
#pragma unroll
          for (int i = 0; i < kRowsPerWarp; ++i) o[i][col] = fmaf(p[i], vc, o[i][col]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int t = row0 + i;
    if (t >= seq) continue;  // warp-uniform
    const float inv_l = 1.0F / l[i];
    const int64_t offset = args.q_offset(b, t, h);
    const int64_t stat = args.stat_offset(b, h) + t;
    if constexpr (kDelta) {
      const T* dout = static_cast<const T*>(args.dout) + offset;
      float sum = 0.0F;
#pragma unroll
      for (int col = 0; col < kCols; ++col) {
        const int c = lane + 32 * col;
        if (c < d) sum = fmaf(o[i][col] * inv_l, to_float(dout[c]), sum);
      }
      sum = warp_sum(sum);
      if (lane == 0) args.delta[stat] = sum;
    } else {
      T* out = static_cast<T*>(args.out) + offset;
#pragma unroll
      for (int col = 0; col < kCols; ++col) {
        const int c = lane + 32 * col;
        if (c < d) out[c] = from_float<T>(o[i][col] * inv_l);
      }
      if (args.lse != nullptr && lane == 0) args.lse[stat] = (m[i] + log2f(l[i])) * kLn2;
    }
  }
}

// dK and dV. Grid (B * Hkv, ceil(T / 16)), 128 threads: one block per 16 key rows of one
// (b, kv head), causal heaviest (earliest) tiles first. For each query head of the group in
// order, and each query tile of 32 that can see the block: lane i recomputes
// P = exp(scale q_i.k - lse_i) and dS = P (dout_i.v - delta_i) against the warp's 4 keys,
// then dv += P_i dout_i and dk += dS_i q_i with the P and dS values broadcast.
// Shared memory (f32): k, v (16, D); q, dout (32, D|1); lse * log2(e), delta (32).
template <typename T, int kCols>
__global__ void __launch_bounds__(kThreads) generic_dkdv_kernel(Args args) {
  extern __shared__ float smem[];
  const int d = args.head_dim;
  const int seq = args.seq;
  const int q_stride = odd_stride(d);
  float* k_s = smem;
  float* v_s = k_s + kRows * d;
  float* q_s = v_s + kRows * d;
  float* do_s = q_s + kTile * q_stride;
  float* lse_s = do_s + kTile * q_stride;
  float* delta_s = lse_s + kTile;

  const int b = static_cast<int>(blockIdx.x) / args.kv_heads;
  const int kv_h = static_cast<int>(blockIdx.x) % args.kv_heads;
  const int k0 = static_cast<int>(blockIdx.y) * kRows;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int key0 = k0 + warp * kRowsPerWarp;
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * d;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * d;
  load_rows(k_s, d, static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h), kv_step, k0, kRows, seq, d);
  load_rows(v_s, d, static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h), kv_step, k0, kRows, seq, d);

  float dk[kRowsPerWarp][kCols] = {};
  float dv[kRowsPerWarp][kCols] = {};
  const float* k_rows = k_s + warp * kRowsPerWarp * d;
  const float* v_rows = v_s + warp * kRowsPerWarp * d;
  const int q_begin = args.causal ? (k0 / kTile) * kTile : 0;
  const int group = args.group();
  for (int g = 0; g < group; ++g) {
    const int h = kv_h * group + g;
    const T* q = static_cast<const T*>(args.q) + args.q_offset(b, 0, h);
    const T* dout = static_cast<const T*>(args.dout) + args.q_offset(b, 0, h);
    const int64_t stat = args.stat_offset(b, h);
    for (int q0 = q_begin; q0 < seq; q0 += kTile) {
      __syncthreads();  // k/v are loaded; the previous tile is consumed
      load_rows(q_s, q_stride, q, q_step, q0, kTile, seq, d);
      load_rows(do_s, q_stride, dout, q_step, q0, kTile, seq, d);
      if (threadIdx.x < kTile) {
        const int t = q0 + static_cast<int>(threadIdx.x);
        lse_s[threadIdx.x] = t < seq ? args.lse[stat + t] * kLog2e : 0.0F;
        delta_s[threadIdx.x] = t < seq ? args.delta[stat + t] : 0.0F;
      }
      __syncthreads();
      float p[kRowsPerWarp] = {};
      float ds[kRowsPerWarp] = {};  // dP until the softmax step below
      const float* q_row = q_s + lane * q_stride;
      const float* do_row = do_s + lane * q_stride;
      for (int c = 0; c < d; ++c) {
        const float qc = q_row[c];
        const float doc = do_row[c];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          p[i] = fmaf(qc, k_rows[i * d + c], p[i]);
          ds[i] = fmaf(doc, v_rows[i * d + c], ds[i]);
        }
      }
      const int t = q0 + lane;
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const int key = key0 + i;
        const bool visible = t < seq && key < seq && (!args.causal || key <= t);
        p[i] = visible ? exp2f(fmaf(p[i], args.scale_log2, -lse_s[lane])) : 0.0F;
        ds[i] = p[i] * (ds[i] - delta_s[lane]);
      }
      for (int j = 0; j < kTile; ++j) {
        float pj[kRowsPerWarp];
        float dsj[kRowsPerWarp];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          pj[i] = __shfl_sync(0xffffffffU, p[i], j);
          dsj[i] = __shfl_sync(0xffffffffU, ds[i], j);
        }
#pragma unroll
        for (int col = 0; col < kCols; ++col) {
          const int c = lane + 32 * col;
          if (c < d) {
            const float doc = do_s[j * q_stride + c];
            const float qc = q_s[j * q_stride + c];
#pragma unroll
            for (int i = 0; i < kRowsPerWarp; ++i) {
              dv[i][col] = fmaf(pj[i], doc, dv[i][col]);
              dk[i][col] = fmaf(dsj[i], qc, dk[i][col]);
            }
          }
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int key = key0 + i;
    if (key >= seq) continue;
    const int64_t offset = args.kv_offset(b, key, kv_h);
    T* dk_out = static_cast<T*>(args.dk) + offset;
    T* dv_out = static_cast<T*>(args.dv) + offset;
#pragma unroll
    for (int col = 0; col < kCols; ++col) {
      const int c = lane + 32 * col;
      if (c < d) {
        dk_out[c] = from_float<T>(dk[i][col] * args.scale);
        dv_out[c] = from_float<T>(dv[i][col]);
      }
    }
  }
}

// dQ. Grid (B * Hq, ceil(T / 16)), 128 threads: one block per 16 query rows, laid out like
// the forward; per key tile lane j recomputes P and dS of key j against the warp's rows,
// then dq += dS_j k_j with dS_j broadcast.
// Shared memory (f32): q, dout (16, D); k, v (32, D|1).
template <typename T, int kCols>
__global__ void __launch_bounds__(kThreads) generic_dq_kernel(Args args) {
  extern __shared__ float smem[];
  const int d = args.head_dim;
  const int seq = args.seq;
  const int k_stride = odd_stride(d);
  float* q_s = smem;
  float* do_s = q_s + kRows * d;
  float* k_s = do_s + kRows * d;
  float* v_s = k_s + kTile * k_stride;

  const int b = static_cast<int>(blockIdx.x) / args.q_heads;
  const int h = static_cast<int>(blockIdx.x) % args.q_heads;
  const int kv_h = h / args.group();
  const int q0 = static_cast<int>(gridDim.y - 1 - blockIdx.y) * kRows;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int row0 = q0 + warp * kRowsPerWarp;
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * d;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * d;
  const T* k = static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h);
  const T* v = static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h);
  load_rows(q_s, d, static_cast<const T*>(args.q) + args.q_offset(b, 0, h), q_step, q0, kRows, seq, d);
  load_rows(do_s, d, static_cast<const T*>(args.dout) + args.q_offset(b, 0, h), q_step, q0, kRows, seq, d);

  float lse2[kRowsPerWarp];
  float delta[kRowsPerWarp];
  const int64_t stat = args.stat_offset(b, h);
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int t = row0 + i;
    lse2[i] = t < seq ? args.lse[stat + t] * kLog2e : 0.0F;
    delta[i] = t < seq ? args.delta[stat + t] : 0.0F;
  }
  float dq[kRowsPerWarp][kCols] = {};
  const float* q_rows = q_s + warp * kRowsPerWarp * d;
  const float* do_rows = do_s + warp * kRowsPerWarp * d;
  const int key_end = args.causal ? min(seq, q0 + kRows) : seq;
  for (int n0 = 0; n0 < key_end; n0 += kTile) {
    __syncthreads();
    load_rows(k_s, k_stride, k, kv_step, n0, kTile, seq, d);
    load_rows(v_s, k_stride, v, kv_step, n0, kTile, seq, d);
    __syncthreads();
    float s[kRowsPerWarp] = {};
    float ds[kRowsPerWarp] = {};  // dP until the softmax step below
    const float* k_row = k_s + lane * k_stride;
    const float* v_row = v_s + lane * k_stride;
    for (int c = 0; c < d; ++c) {
      const float kc = k_row[c];
      const float vc = v_row[c];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        s[i] = fmaf(q_rows[i * d + c], kc, s[i]);
        ds[i] = fmaf(do_rows[i * d + c], vc, ds[i]);
      }
    }
    const int key = n0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int t = row0 + i;
      const bool visible = t < seq && key < seq && (!args.causal || key <= t);
      const float p = visible ? exp2f(fmaf(s[i], args.scale_log2, -lse2[i])) : 0.0F;
      ds[i] = p * (ds[i] - delta[i]);
    }
    for (int j = 0; j < kTile; ++j) {
      float dsj[kRowsPerWarp];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) dsj[i] = __shfl_sync(0xffffffffU, ds[i], j);
#pragma unroll
      for (int col = 0; col < kCols; ++col) {
        const int c = lane + 32 * col;
        if (c < d) {
          const float kc = k_s[j * k_stride + c];
#pragma unroll
          for (int i = 0; i < kRowsPerWarp; ++i) dq[i][col] = fmaf(dsj[i], kc, dq[i][col]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int t = row0 + i;
    if (t >= seq) continue;
    T* dq_out = static_cast<T*>(args.dq) + args.q_offset(b, t, h);
#pragma unroll
    for (int col = 0; col < kCols; ++col) {
      const int c = lane + 32 * col;
      if (c < d) dq_out[c] = from_float<T>(dq[i][col] * args.scale);
    }
  }
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Launches `kernel` on `grid` with `smem_bytes` of dynamic shared memory (raising the
// kernel's limit first when it needs more than the default 48 KiB).
template <typename Kernel>
void launch(Kernel kernel, dim3 grid, size_t smem_bytes, const Args& args, cudaStream_t stream) {
  if (smem_bytes > 48 * 1024) {
    ANVIL_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)));
  }
  kernel<<<grid, kThreads, smem_bytes, stream>>>(args);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename T, int kCols>
void forward_typed(const Args& args, bool delta_mode, cudaStream_t stream) {
  const int d = args.head_dim;
  const size_t smem = sizeof(float) * static_cast<size_t>(kRows * d + kTile * odd_stride(d) + kTile * d);
  const dim3 grid(static_cast<unsigned>(args.batch * args.q_heads), static_cast<unsigned>(ceil_div(args.seq, kRows)));
  if (delta_mode) {
    launch(generic_forward_kernel<T, kCols, true>, grid, smem, args, stream);
  } else {
    launch(generic_forward_kernel<T, kCols, false>, grid, smem, args, stream);
  }
}

template <typename T, int kCols>
void backward_typed(const Args& args, cudaStream_t stream) {
  const int d = args.head_dim;
  const size_t dkdv_smem = sizeof(float) * static_cast<size_t>(2 * kRows * d + 2 * kTile * odd_stride(d) + 2 * kTile);
  const dim3 dkdv_grid(static_cast<unsigned>(args.batch * args.kv_heads),
                       static_cast<unsigned>(ceil_div(args.seq, kRows)));
  launch(generic_dkdv_kernel<T, kCols>, dkdv_grid, dkdv_smem, args, stream);
  const size_t dq_smem = sizeof(float) * static_cast<size_t>(2 * kRows * d + 2 * kTile * odd_stride(d));
  const dim3 dq_grid(static_cast<unsigned>(args.batch * args.q_heads),
                     static_cast<unsigned>(ceil_div(args.seq, kRows)));
  launch(generic_dq_kernel<T, kCols>, dq_grid, dq_smem, args, stream);
}

// Calls fn.template operator()<T, kCols>() for the storage dtype and the smallest column
// count per lane that covers head_dim.
template <typename Fn>
void dispatch(DType dtype, int head_dim, Fn&& fn) {
  ANVIL_CHECK(head_dim > 0 && head_dim <= kGenericMaxHeadDim, "cuda attention: head_dim ", head_dim,
              " is above the supported ", kGenericMaxHeadDim);
  auto by_cols = [&]<typename T>() {
    if (head_dim <= 32) return fn.template operator()<T, 1>();
    if (head_dim <= 64) return fn.template operator()<T, 2>();
    if (head_dim <= 128) return fn.template operator()<T, 4>();
    return fn.template operator()<T, 8>();
  };
  switch (dtype) {
    case DType::F32:
      return by_cols.template operator()<float>();
    case DType::BF16:
      return by_cols.template operator()<__nv_bfloat16>();
    case DType::F16:
      return by_cols.template operator()<__half>();
    default:
      throw make_error("cuda attention: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace

void generic_forward(const Args& args, DType dtype, bool delta_mode, cudaStream_t stream) {
  dispatch(dtype, args.head_dim, [&]<typename T, int kCols>() { forward_typed<T, kCols>(args, delta_mode, stream); });
}

void generic_backward(const Args& args, DType dtype, cudaStream_t stream) {
  dispatch(dtype, args.head_dim, [&]<typename T, int kCols>() { backward_typed<T, kCols>(args, stream); });
}

}  // namespace anvil::cuda::attention
