#pragma once
// Self-attention on the device (FlashAttention-2 style: no (T, T) matrix is stored).
// Declared without CUDA device headers so host .cpp files can call it.
// q/out/dout/dq (B, T, Hq, D), k/v/dk/dv (B, T, Hkv, D), lse (B, Hq, T) f32, all
// contiguous on the device and of one storage dtype (f32, bf16 or f16).
//
// bf16/f16 with D = 64 or 128 (and 16-byte aligned pointers) run on tensor cores (f32
// accumulate, P and dS rounded to the storage dtype as mma operands): Hopper's warpgroup MMA
// (wgmma) runs the forward and the one-pass backward (with a dQ accumulator), mma.sync the
// exact-delta pre-pass and the deterministic two-kernel backward; everything else (all f32,
// other head dims up to 256) runs on a generic f32 CUDA-core path.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil::cuda {

// The tensor-core forward kernels, for the benchmark's side-by-side rows; Auto runs the
// fastest measured (WgmmaTma).
enum class AttentionForwardKernel : uint8_t {
  Auto,
  MmaSync,  // mma.sync m16n8k16, 128 query rows per block (attention_mma_forward.cu)
  Wgmma,    // wgmma, 128 query rows per block in 2 warpgroups (attention_wgmma_forward.cu)
  // wgmma fed by a TMA producer warpgroup (attention_wgmma_tma_forward.cu); its tilings
  // are AttentionShape::forward_variant.
  WgmmaTma,
};

// The tilings of the WgmmaTma forward (forward_variant 0 .. tma_forward_variants(head_dim) - 1,
// named by tma_forward_variant_name; kTmaForwardFastest picks the fastest measured for the
// head dim and mask).
constexpr int kTmaForwardFastest = -1;
int tma_forward_variants(int64_t head_dim);
const char* tma_forward_variant_name(int64_t head_dim, int variant);

// The tensor-core backward kernels (with a dQ accumulator), likewise.
enum class AttentionBackwardKernel : uint8_t {
  Auto,
  MmaSync,  // attention_mma_backward_fused.cu
  Wgmma,    // attention_wgmma_backward.cu
};

struct AttentionShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0F;  // resolved (never the "0 means 1/sqrt(D)" placeholder)
  bool causal = true;
  AttentionForwardKernel forward_kernel = AttentionForwardKernel::Auto;
  AttentionBackwardKernel backward_kernel = AttentionBackwardKernel::Auto;
  int forward_variant = kTmaForwardFastest;  // with forward_kernel WgmmaTma
};

// out and (when lse is not null) lse, overwritten.
void launch_attention_forward(const AttentionShape& shape, DType dtype, const void* q, const void* k, const void* v,
                              void* out, float* lse, cudaStream_t stream);

// dq, dk, dv, overwritten. `delta` is scratch of B * Hq * T floats. exact_delta: take
// delta = rowsum(dout * O) from O recomputed in f32 (one more forward pass) rather than
// from `out` as stored in bf16/f16 (FlashAttention-2's choice); f32 storage is exact either way.
// `dq_accum`: scratch of attention_backward_dq_accum_elements floats where that is not 0;
// the tensor-core path then runs one pass over the keys with dQ added up in f32 by atomics
// (fastest; dQ's last bits may vary run to run). With null it runs the deterministic
// two-kernel backward (dK/dV, then dQ recomputing S and dP), which is slower.
void launch_attention_backward(const AttentionShape& shape, DType dtype, bool exact_delta, const void* dout,
                               const void* q, const void* k, const void* v, const void* out, const float* lse, void* dq,
                               void* dk, void* dv, float* delta, float* dq_accum, cudaStream_t stream);

// The f32 scratch the backward of this shape and dtype wants for dQ (its tensor-core path,
// bf16/f16 with D = 64 or 128): B * Hq * (T rounded up to 128) * D floats; 0 for the others.
int64_t attention_backward_dq_accum_elements(const AttentionShape& shape, DType dtype);

}  // namespace anvil::cuda
