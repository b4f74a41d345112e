// Tensor-core quantized_matmul: block (N tile, M tile) of 4 warps computes out[64 x 64],
// walking K in chunks of 256. Per chunk the activation codes (64 x 256 i8) are copied and
// the weight blocks decoded (64 x 256 i8 codes plus their scales) into shared memory; each
// warp then runs int8 mma.sync on its 32 x 32 sub-tile, one 32-element block at a time
// (16 for Q6_K's sub-blocks), and folds each block's exact int32 dot into f32 exactly as
// the CPU does: legacy (d_w * d_x) * dot (+ (m_w * d_x) * sum); K-quants sum the scaled
// sub-block dots in int32 over the super-block first.
#include <algorithm>

#include "anvil/core/error.h"
#include "anvil/core/quant.h"
#include "cuda/cuda_check.h"
#include "cuda/quant_block_decode.cuh"
#include "cuda/quantized_matmul_mma.h"

namespace anvil::cuda {
namespace {

using namespace qdecode;  // NOLINT(google-build-using-namespace): the block formats

constexpr int kTileM = 64;
constexpr int kTileN = 64;
constexpr int kChunk = 256;
constexpr int kSubBlocks = kChunk / 32;
constexpr int kRowBytes = kChunk + 16;  // padded: fragment loads hit 32 distinct banks
constexpr int kThreads = 128;
constexpr int kWarpSize = 32;

enum class Family : uint8_t { Legacy, K4, Q6K };

// One chunk of both operands. x rows are activation rows m0.., w rows weight rows n0...
struct MmaTile {
  int8_t x[kTileM][kRowBytes];
  int8_t w[kTileN][kRowBytes];
  float x_scale[kTileM][kSubBlocks];       // legacy: per 32; K-quants: [m][0] per 256
  int x_sum[kTileM][kSubBlocks];           // code sums per 32
  float x_block_sum[kTileM][kSubBlocks];   // legacy: fp16(d * code sum) per 32 (the min term's s)
  float w_d[kTileN][kSubBlocks];           // legacy: d per block; K-quants: [n][0] d, [n][1] dmin
  float w_m[kTileN][kSubBlocks];           // legacy: m per block
  int8_t w_scale[kTileN][2 * kSubBlocks];  // K-quants: scale of each 16 elements
  int8_t w_min[kTileN][kSubBlocks];        // Q4_K / Q5_K: min of each 32 elements
};

// ---------------------------------------------------------------------------------------
// Tile loads. Rows past M or N load as zeros (their outputs are never stored).

__device__ void load_x_tile(const QuantizedActivations& acts, int64_t m, int64_t k, int64_t m0, int64_t k0,
                            int sub_blocks, bool k_quant, MmaTile& tile) {
  const int vectors_per_row = sub_blocks * 2;  // 16-byte vectors
  for (int i = static_cast<int>(threadIdx.x); i < kTileM * vectors_per_row; i += kThreads) {
    const int r = i / vectors_per_row;
    const int c = i % vectors_per_row;
    int4 value = make_int4(0, 0, 0, 0);
    if (m0 + r < m) value = *reinterpret_cast<const int4*>(acts.codes + (m0 + r) * k + k0 + c * 16);
    *reinterpret_cast<int4*>(&tile.x[r][c * 16]) = value;
  }
  for (int i = static_cast<int>(threadIdx.x); i < kTileM * sub_blocks; i += kThreads) {
    const int r = i / sub_blocks;
    const int s = i % sub_blocks;
    const bool inside = m0 + r < m;
    tile.x_sum[r][s] = inside ? acts.sums[(m0 + r) * (k / kQuantBlock) + k0 / kQuantBlock + s] : 0;
    if (!k_quant) {
      tile.x_scale[r][s] = inside ? acts.scales[(m0 + r) * (k / kQuantBlock) + k0 / kQuantBlock + s] : 0.0F;
      tile.x_block_sum[r][s] = inside ? acts.block_sums[(m0 + r) * (k / kQuantBlock) + k0 / kQuantBlock + s] : 0.0F;
    } else if (s == 0) {
      tile.x_scale[r][0] = inside ? acts.scales[(m0 + r) * (k / kQuantSuperBlock) + k0 / kQuantSuperBlock] : 0.0F;
    }
  }
}

__device__ __forceinline__ void store_codes(const int (&words)[8], int8_t* row) {
  int* destination = reinterpret_cast<int*>(row);
#pragma unroll
  for (int q = 0; q < 8; ++q) destination[q] = words[q];
}

template <typename Format>
__device__ void load_w_legacy(const uint8_t* weight, int64_t row_bytes, int64_t n, int64_t n0, int64_t k0,
                              int sub_blocks, MmaTile& tile) {
  for (int i = static_cast<int>(threadIdx.x); i < kTileN * sub_blocks; i += kThreads) {
    const int r = i / sub_blocks;
    const int b = i % sub_blocks;
    LegacyBlock block;
    if (n0 + r < n) block = Format::decode(weight + (n0 + r) * row_bytes + (k0 / kQuantBlock + b) * Format::kBytes);
    store_codes(block.w, &tile.w[r][32 * b]);
    tile.w_d[r][b] = block.d;
    tile.w_m[r][b] = block.m;
  }
}

template <typename Format>
__device__ void load_w_k(const uint8_t* weight, int64_t row_bytes, int64_t n, int64_t n0, int64_t k0, MmaTile& tile) {
  for (int i = static_cast<int>(threadIdx.x); i < kTileN * kSubBlocks; i += kThreads) {
    const int r = i / kSubBlocks;
    const int j = i % kSubBlocks;
    KSubBlock sub;
    if (n0 + r < n) sub = Format::decode(weight + (n0 + r) * row_bytes + (k0 / kQuantSuperBlock) * Format::kBytes, j);
    store_codes(sub.w, &tile.w[r][32 * j]);
    tile.w_scale[r][2 * j] = static_cast<int8_t>(sub.scale_low);
    tile.w_scale[r][2 * j + 1] = static_cast<int8_t>(sub.scale_high);
    tile.w_min[r][j] = static_cast<int8_t>(sub.min);
    if (j == 0) {
      tile.w_d[r][0] = sub.d;
      tile.w_d[r][1] = sub.dmin;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Warp sub-tile: rows m_base + 16 mi + {g, g + 8}, columns n_base + 8 ni + 2 t + {0, 1}
// (g = lane / 4, t = lane % 4): accumulator element r of tile (mi, ni) is row g + 8 (r / 2),
// column 2 t + r % 2, the mma C layout.

__device__ __forceinline__ int word_at(const int8_t* p) { return *reinterpret_cast<const int*>(p); }

__device__ __forceinline__ void mma_k32(int (&c)[4], const int (&a)[4], const int (&b)[2]) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_k16(int (&c)[4], const int (&a)[2], int b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(b));
}

struct WarpTile {
  int g, t, m_base, n_base;
  [[nodiscard]] __device__ int row(int mi, int r) const { return m_base + 16 * mi + g + 8 * (r >> 1); }
  [[nodiscard]] __device__ int col(int ni, int r) const { return n_base + 8 * ni + 2 * t + (r & 1); }
};

// Integer dots of the 32 elements at column kk of the chunk, for the 2 x 4 mma tiles.
__device__ __forceinline__ void dots_k32(const MmaTile& tile, const WarpTile& wt, int kk, int (&c)[2][4][4]) {
  int a[2][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
    const int row = wt.m_base + 16 * mi + wt.g;
    a[mi][0] = word_at(&tile.x[row][kk + 4 * wt.t]);
    a[mi][1] = word_at(&tile.x[row + 8][kk + 4 * wt.t]);
    a[mi][2] = word_at(&tile.x[row][kk + 16 + 4 * wt.t]);
    a[mi][3] = word_at(&tile.x[row + 8][kk + 16 + 4 * wt.t]);
  }
#pragma unroll
  for (int ni = 0; ni < 4; ++ni) {
    const int col = wt.n_base + 8 * ni + wt.g;
    const int b[2] = {word_at(&tile.w[col][kk + 4 * wt.t]), word_at(&tile.w[col][kk + 16 + 4 * wt.t])};
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
      c[mi][ni][0] = c[mi][ni][1] = c[mi][ni][2] = c[mi][ni][3] = 0;
      mma_k32(c[mi][ni], a[mi], b);
    }
  }
}

// The same for the 16 elements at column kk (Q6_K's sub-blocks).
__device__ __forceinline__ void dots_k16(const MmaTile& tile, const WarpTile& wt, int kk, int (&c)[2][4][4]) {
  int a[2][2];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
    const int row = wt.m_base + 16 * mi + wt.g;
    a[mi][0] = word_at(&tile.x[row][kk + 4 * wt.t]);
    a[mi][1] = word_at(&tile.x[row + 8][kk + 4 * wt.t]);
  }
#pragma unroll
  for (int ni = 0; ni < 4; ++ni) {
    const int b = word_at(&tile.w[wt.n_base + 8 * ni + wt.g][kk + 4 * wt.t]);
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
      c[mi][ni][0] = c[mi][ni][1] = c[mi][ni][2] = c[mi][ni][3] = 0;
      mma_k16(c[mi][ni], a[mi], b);
    }
  }
}

// Legacy blocks: per block s, acc += (d_w * d_x) * dot (+ m_w * s_x, s_x = fp16(d_x * sum(x codes))).
template <bool kHasMin>
__device__ void accumulate_legacy(const MmaTile& tile, const WarpTile& wt, int sub_blocks, float (&acc)[2][4][4]) {
  for (int s = 0; s < sub_blocks; ++s) {
    int c[2][4][4];
    dots_k32(tile, wt, 32 * s, c);
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const float dx = tile.x_scale[wt.row(mi, r)][s];
          const int n = wt.col(ni, r);
          acc[mi][ni][r] += (tile.w_d[n][s] * dx) * static_cast<float>(c[mi][ni][r]);
          if (kHasMin) acc[mi][ni][r] += tile.w_m[n][s] * tile.x_block_sum[wt.row(mi, r)][s];
        }
      }
    }
  }
}

// K-quant super-block: int32 sums of scale * dot (and min * x sum), then the CPU's two terms.
template <Family kFamily>
__device__ void accumulate_k(const MmaTile& tile, const WarpTile& wt, float (&acc)[2][4][4]) {
  int scaled[2][4][4] = {};
  int mins[2][4][4] = {};
  for (int s = 0; s < kSubBlocks; ++s) {
#pragma unroll
    for (int half = 0; half < (kFamily == Family::Q6K ? 2 : 1); ++half) {
      int c[2][4][4];
      if (kFamily == Family::Q6K) {
        dots_k16(tile, wt, 32 * s + 16 * half, c);
      } else {
        dots_k32(tile, wt, 32 * s, c);
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const int n = wt.col(ni, r);
            scaled[mi][ni][r] += tile.w_scale[n][2 * s + half] * c[mi][ni][r];
            if (kFamily == Family::K4) mins[mi][ni][r] += tile.w_min[n][s] * tile.x_sum[wt.row(mi, r)][s];
          }
        }
      }
    }
  }
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const float dx = tile.x_scale[wt.row(mi, r)][0];
        const int n = wt.col(ni, r);
        acc[mi][ni][r] += (tile.w_d[n][0] * dx) * static_cast<float>(scaled[mi][ni][r]);
        if (kFamily == Family::K4) acc[mi][ni][r] -= (tile.w_d[n][1] * dx) * static_cast<float>(mins[mi][ni][r]);
      }
    }
  }
}

// out (M, N): block (N tile, M tile); 4 warps in 2 x 2, each a 32 x 32 sub-tile.
template <typename Format, Family kFamily>
__global__ void __launch_bounds__(kThreads)
    quantized_matmul_mma_kernel(const uint8_t* __restrict__ weight, int64_t row_bytes, QuantizedActivations acts,
                                float* __restrict__ out, int64_t m, int64_t n, int64_t k) {
  __shared__ __align__(16) MmaTile tile;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const int warp = static_cast<int>(threadIdx.x / kWarpSize);
  const WarpTile wt{lane >> 2, lane & 3, (warp / 2) * 32, (warp % 2) * 32};
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTileN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTileM;
  float acc[2][4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kChunk) {
    const int sub_blocks = static_cast<int>(std::min<int64_t>(kSubBlocks, (k - k0) / kQuantBlock));
    load_x_tile(acts, m, k, m0, k0, sub_blocks, kFamily != Family::Legacy, tile);
    if constexpr (kFamily == Family::Legacy) {
      load_w_legacy<Format>(weight, row_bytes, n, n0, k0, sub_blocks, tile);
    } else {
      load_w_k<Format>(weight, row_bytes, n, n0, k0, tile);
    }
    __syncthreads();
    if constexpr (kFamily == Family::Legacy) {
      accumulate_legacy<Format::kHasMin>(tile, wt, sub_blocks, acc);
    } else {
      accumulate_k<kFamily>(tile, wt, acc);
    }
    __syncthreads();  // the next chunk overwrites the tile
  }
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t row = m0 + wt.row(mi, r);
        const int64_t col = n0 + wt.col(ni, r);
        if (row < m && col < n) out[row * n + col] = acc[mi][ni][r];
      }
    }
  }
}

template <typename Format, Family kFamily>
void launch_family(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, cudaStream_t stream) {
  const int64_t row_tiles = (args.m + kTileM - 1) / kTileM;
  const int64_t col_tiles = (args.n + kTileN - 1) / kTileN;
  ANVIL_CHECK(row_tiles <= 65535 && col_tiles <= INT32_MAX, "cuda quantized_matmul: (", args.m, ", ", args.n,
              ") output exceeds the grid");
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_tiles));
  quantized_matmul_mma_kernel<Format, kFamily><<<grid, kThreads, 0, stream>>>(
      static_cast<const uint8_t*>(args.weight), dtype_bytes_for(args.weight_dtype, args.k), acts, args.out, args.m,
      args.n, args.k);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_quantized_matmul_mma(const QuantizedMatmulArgs& args, const QuantizedActivations& acts,
                                 cudaStream_t stream) {
  switch (args.weight_dtype) {
    case DType::Q8_0:
      return launch_family<Q8_0Format, Family::Legacy>(args, acts, stream);
    case DType::Q4_0:
      return launch_family<Q4_0Format, Family::Legacy>(args, acts, stream);
    case DType::Q4_1:
      return launch_family<Q4_1Format, Family::Legacy>(args, acts, stream);
    case DType::Q5_0:
      return launch_family<Q5_0Format, Family::Legacy>(args, acts, stream);
    case DType::Q5_1:
      return launch_family<Q5_1Format, Family::Legacy>(args, acts, stream);
    case DType::Q4_K:
      return launch_family<Q4_KFormat, Family::K4>(args, acts, stream);
    case DType::Q5_K:
      return launch_family<Q5_KFormat, Family::K4>(args, acts, stream);
    case DType::Q6_K:
      return launch_family<Q6_KFormat, Family::Q6K>(args, acts, stream);
    default:
      throw make_error("cuda quantized_matmul: weight dtype ", dtype_name(args.weight_dtype),
                       " is not block-quantized");
  }
}

}  // namespace anvil::cuda
