// The fallback GEMM: 16x16 output tiles, K walked in steps of 16 through shared memory,
// f32 accumulation in a fixed order (deterministic). Used only where cuBLASLt is not.
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/device_float.cuh"
#include "cuda/gemm_fallback_kernels.h"

namespace anvil::cuda {
namespace {

constexpr int kTile = 16;
constexpr int64_t kMaxGridZ = 65535;

struct FallbackArgs {
  bool trans_a, trans_b;
  int64_t m, n, k, batch;
  int64_t stride_a, stride_b, stride_out;
  float alpha, beta;
};

// out (batch, M, N); block (16, 16) computes one 16x16 tile of out for batch entries
// blockIdx.z, blockIdx.z + gridDim.z, ...; thread (x, y) owns out[row y, col x] of the tile.
template <typename In, typename Out>
__global__ void gemm_fallback_kernel(const In* __restrict__ a, const In* __restrict__ b, Out* __restrict__ out,
                                     FallbackArgs args) {
  __shared__ float a_tile[kTile][kTile + 1];  // [row][p]
  __shared__ float b_tile[kTile][kTile + 1];  // [p][col]
  const int tx = static_cast<int>(threadIdx.x);
  const int ty = static_cast<int>(threadIdx.y);
  const int64_t row = static_cast<int64_t>(blockIdx.y) * kTile + ty;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kTile + tx;
  for (int64_t entry = blockIdx.z; entry < args.batch; entry += gridDim.z) {
    const In* a_entry = a + entry * args.stride_a;
    const In* b_entry = b + entry * args.stride_b;
    float sum = 0.0F;
    for (int64_t p0 = 0; p0 < args.k; p0 += kTile) {
      // a_tile[ty][tx] = op(a)[tile row ty, p0 + tx]; b_tile[ty][tx] = op(b)[p0 + ty, tile col tx].
      const int64_t a_row = static_cast<int64_t>(blockIdx.y) * kTile + ty;
      const int64_t a_p = p0 + tx;
      float a_value = 0.0F;
      if (a_row < args.m && a_p < args.k) {
        a_value = load_float(a_entry + (args.trans_a ? a_p * args.m + a_row : a_row * args.k + a_p));
      }
      const int64_t b_p = p0 + ty;
      float b_value = 0.0F;
      if (col < args.n && b_p < args.k) {
        b_value = load_float(b_entry + (args.trans_b ? col * args.k + b_p : b_p * args.n + col));
      }
      a_tile[ty][tx] = a_value;
      b_tile[ty][tx] = b_value;
      __syncthreads();
      for (int p = 0; p < kTile; ++p) sum += a_tile[ty][p] * b_tile[p][tx];
      __syncthreads();
    }
    if (row < args.m && col < args.n) {
      Out* target = out + entry * args.stride_out + row * args.n + col;
      // beta = 0 must not read out (it may hold NaN).
      const float value = args.beta == 0.0F ? args.alpha * sum : args.alpha * sum + args.beta * load_float(target);
      store_float(target, value);
    }
  }
}

template <typename In, typename Out>
void launch_typed(const RowMajorGemm& g, cudaStream_t stream) {
  const FallbackArgs args{g.trans_a,  g.trans_b,  g.m,          g.n,     g.k,   g.batch,
                          g.stride_a, g.stride_b, g.stride_out, g.alpha, g.beta};
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((g.n + kTile - 1) / kTile), static_cast<unsigned>((g.m + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min(g.batch, kMaxGridZ)));
  gemm_fallback_kernel<In, Out><<<grid, block, 0, stream>>>(static_cast<const In*>(g.a), static_cast<const In*>(g.b),
                                                            static_cast<Out*>(g.out), args);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_gemm_fallback(const RowMajorGemm& gemm, cudaStream_t stream) {
  if (gemm.m == 0 || gemm.n == 0 || gemm.batch == 0) return;
  ANVIL_CHECK((gemm.m + kTile - 1) / kTile <= 65535, "cuda matmul fallback: M = ", gemm.m, " is too large");
  dispatch_float_dtype(gemm.input_dtype, "cuda matmul", [&](auto input) {
    using In = decltype(input);
    if (gemm.output_dtype == DType::F32) {
      launch_typed<In, float>(gemm, stream);
    } else {
      ANVIL_CHECK(gemm.output_dtype == gemm.input_dtype, "cuda matmul: out dtype ", dtype_name(gemm.output_dtype),
                  " must be f32 or the inputs' dtype");
      launch_typed<In, In>(gemm, stream);
    }
  });
}

}  // namespace anvil::cuda
