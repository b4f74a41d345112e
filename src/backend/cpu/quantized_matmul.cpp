// quantized_matmul on the CPU: x rows are quantised once to 8-bit blocks, then each weight
// row is dotted block by block in integers with up to kTileRows activation rows at a time
// (prefill reuses each weight row from L1), times the block scales in f32.
// Work is split over weight rows (N), so each thread streams its own weights (decode is
// memory-bound) and every output comes from one kernel call: results do not depend on the
// thread count. This file holds the driver and the scalar kernels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "anvil/core/float_convert.h"
#include "anvil/core/quant.h"
#include "cpu/cpu_backend.h"
#include "cpu/quantized_matmul_kernels.h"
#include "cpu/row_io.h"

namespace anvil::cpu {
namespace {

using qmm::ActTile;
using qmm::kTileRows;

// ---------------------------------------------------------------------------------------
// Activation quantisation: x ~ d * code per block, d = amax / 127, code in [-127, 127].

// round-half-even(clamp(value, -127, 127)); NaN gives -127 rather than an undefined cast.
int8_t round_to_code(float value) {
  value = value >= -127.0F ? value : -127.0F;
  value = value <= 127.0F ? value : 127.0F;
  constexpr float kMagic = 12582912.0F;  // 1.5 * 2^23: adding it rounds to an integer, ties to even
  return static_cast<int8_t>(static_cast<int>((value + kMagic) - kMagic));
}

// The activation rows (M, K) quantised for one weight family.
struct QuantizedActivations {
  int64_t k = 0;
  int64_t blocks_per_row = 0;
  int64_t sums_per_row = 0;
  std::vector<int8_t> codes;      // (M, K)
  std::vector<float> scales;      // (M, blocks_per_row)
  std::vector<int16_t> sums;      // (M, sums_per_row)
  std::vector<float> block_sums;  // (M, blocks_per_row), legacy blocks only

  [[nodiscard]] ActTile tile(int64_t first_row, int64_t num_rows) const {
    ActTile tile;
    tile.rows = static_cast<int>(std::min<int64_t>(num_rows, kTileRows));
    for (int r = 0; r < tile.rows; ++r) {
      const int64_t row = first_row + r;
      tile.codes[r] = codes.data() + row * k;
      tile.scales[r] = scales.data() + row * blocks_per_row;
      tile.sums[r] = sums.data() + row * sums_per_row;
      tile.block_sums[r] = block_sums.empty() ? nullptr : block_sums.data() + row * blocks_per_row;
    }
    return tile;
  }
};

// Legacy blocks of one row: ggml's Q8_0 / Q8_1 keep the scale as f16 and Q8_1 keeps
// s = fp16(d * sum(codes)) with the f32 d. Matching them bit for bit is what makes greedy
// decoding follow llama.cpp's on the same GGUF (the codes themselves are already the same).
void round_legacy_scales(int64_t blocks, float* scales, const int16_t* sums, float* block_sums) {
  for (int64_t b = 0; b < blocks; ++b) {
    block_sums[b] = f16_to_f32(f32_to_f16(scales[b] * static_cast<float>(sums[b])));
    scales[b] = f16_to_f32(f32_to_f16(scales[b]));
  }
}

// Quantises x (M, K) f32 in blocks of `block`, with code sums per `sum_group` elements.
QuantizedActivations quantize_activations(ThreadPool& pool, qmm::RowQuantizer quantize_row, const Tensor& x, int block,
                                          int sum_group) {
  QuantizedActivations acts;
  const int64_t rows = x.size(0);
  acts.k = x.size(1);
  acts.blocks_per_row = acts.k / block;
  acts.sums_per_row = acts.k / sum_group;
  acts.codes.resize(static_cast<size_t>(rows * acts.k));
  acts.scales.resize(static_cast<size_t>(rows * acts.blocks_per_row));
  acts.sums.resize(static_cast<size_t>(rows * acts.sums_per_row));
  const bool legacy = block == qmm::kLegacyBlock;
  if (legacy) acts.block_sums.resize(acts.scales.size());
  const float* values = x.data<const float>();
  pool.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      float* scales = acts.scales.data() + row * acts.blocks_per_row;
      const int16_t* sums = acts.sums.data() + row * acts.sums_per_row;
      quantize_row(values + row * acts.k, acts.k, block, sum_group, acts.codes.data() + row * acts.k, scales,
                   acts.sums.data() + row * acts.sums_per_row);
      if (legacy)
        round_legacy_scales(acts.blocks_per_row, scales, sums, acts.block_sums.data() + row * acts.blocks_per_row);
    }
  });
  return acts;
}

// x (M, K) quantised for a weight family: blocks of 32 (legacy) or 256 (K-quants).
QuantizedActivations quantize_for(ThreadPool& pool, CpuIsa isa, const Tensor& x, bool k_quant) {
  const qmm::RowQuantizer quantize_row = isa == CpuIsa::Avx512 ? qmm::quantize_row_avx512
                                         : isa == CpuIsa::Avx2 ? qmm::quantize_row_avx2
                                                               : qmm::quantize_row_scalar;
  return k_quant ? quantize_activations(pool, quantize_row, x, kQuantSuperBlock, qmm::kSuperSumGroup)
                 : quantize_activations(pool, quantize_row, x, kQuantBlock, kQuantBlock);
}

// A Q8Act / Q8KAct tensor (M, K) in the kernels' form: the same codes and scales; code sums
// as i16 per 32 (legacy) or recomputed per 16 from the codes (K-quants).
QuantizedActivations unpack_activations(const Tensor& x) {
  const ActivationLayout layout = activation_layout(x.dtype(), x.numel());
  const auto* bytes = static_cast<const uint8_t*>(x.raw_data());
  const bool legacy = layout.block == kQuantBlock;
  QuantizedActivations acts;
  acts.k = x.size(1);
  acts.blocks_per_row = acts.k / layout.block;
  acts.sums_per_row = acts.k / (legacy ? kQuantBlock : qmm::kSuperSumGroup);
  const auto count = static_cast<size_t>(x.numel());
  acts.codes.resize(count);
  std::memcpy(acts.codes.data(), bytes, count);
  acts.scales.resize(count / static_cast<size_t>(layout.block));
  std::memcpy(acts.scales.data(), bytes + layout.scales_offset, acts.scales.size() * sizeof(float));
  acts.sums.resize(count / static_cast<size_t>(legacy ? kQuantBlock : qmm::kSuperSumGroup));
  if (legacy) {
    std::vector<int32_t> sums(acts.sums.size());
    std::memcpy(sums.data(), bytes + layout.sums_offset, sums.size() * sizeof(int32_t));
    for (size_t i = 0; i < sums.size(); ++i) acts.sums[i] = static_cast<int16_t>(sums[i]);  // |sum| <= 32 * 127
    acts.block_sums.resize(acts.scales.size());
    std::memcpy(acts.block_sums.data(), bytes + layout.block_sums_offset, acts.block_sums.size() * sizeof(float));
  } else {
    for (size_t g = 0; g < acts.sums.size(); ++g) {
      int sum = 0;
      for (size_t i = 0; i < static_cast<size_t>(qmm::kSuperSumGroup); ++i) {
        sum += acts.codes[g * qmm::kSuperSumGroup + i];
      }
      acts.sums[g] = static_cast<int16_t>(sum);
    }
  }
  return acts;
}

// ---------------------------------------------------------------------------------------
// Scalar kernels: decode a block's integer codes, integer dot per activation row, scale.

template <typename Block>
Block load_block(const uint8_t* bytes) {
  Block block;
  std::memcpy(&block, bytes, sizeof(Block));
  return block;
}

// A legacy block as w = d * code + m.
struct LegacyCodes {
  float d = 0.0F;
  float m = 0.0F;
  int codes[kQuantBlock] = {};
};

void unpack_nibbles(const uint8_t* qs, int offset, int* codes) {
  for (int j = 0; j < kQuantBlock / 2; ++j) {
    codes[j] = (qs[j] & 0x0F) - offset;
    codes[j + kQuantBlock / 2] = (qs[j] >> 4) - offset;
  }
}

void add_high_bits(const uint8_t* qh, int* codes) {
  uint32_t bits = 0;
  std::memcpy(&bits, qh, sizeof(bits));  // little-endian, as ggml reads it
  for (int j = 0; j < kQuantBlock; ++j) codes[j] += static_cast<int>((bits >> j) & 1U) << 4;
}

LegacyCodes decode_q8_0(const uint8_t* bytes) {
  const auto block = load_block<BlockQ8_0>(bytes);
  LegacyCodes out;
  out.d = f16_to_f32(block.d);
  // qs holds signed 8-bit codes: the sign extension is the point.
  for (int j = 0; j < kQuantBlock; ++j) out.codes[j] = block.qs[j];  // NOLINT(bugprone-signed-char-misuse)
  return out;
}

LegacyCodes decode_q4_0(const uint8_t* bytes) {
  const auto block = load_block<BlockQ4_0>(bytes);
  LegacyCodes out;
  out.d = f16_to_f32(block.d);
  unpack_nibbles(block.qs, 8, out.codes);
  return out;
}

LegacyCodes decode_q4_1(const uint8_t* bytes) {
  const auto block = load_block<BlockQ4_1>(bytes);
  LegacyCodes out;
  out.d = f16_to_f32(block.d);
  out.m = f16_to_f32(block.m);
  unpack_nibbles(block.qs, 0, out.codes);
  return out;
}

LegacyCodes decode_q5_0(const uint8_t* bytes) {
  const auto block = load_block<BlockQ5_0>(bytes);
  LegacyCodes out;
  out.d = f16_to_f32(block.d);
  unpack_nibbles(block.qs, 0, out.codes);
  add_high_bits(block.qh, out.codes);
  for (int& code : out.codes) code -= 16;
  return out;
}

LegacyCodes decode_q5_1(const uint8_t* bytes) {
  const auto block = load_block<BlockQ5_1>(bytes);
  LegacyCodes out;
  out.d = f16_to_f32(block.d);
  out.m = f16_to_f32(block.m);
  unpack_nibbles(block.qs, 0, out.codes);
  add_high_bits(block.qh, out.codes);
  return out;
}

int dot_codes(const int* weight_codes, const int8_t* act_codes, int length) {
  int sum = 0;
  for (int i = 0; i < length; ++i) sum += weight_codes[i] * act_codes[i];
  return sum;
}

// Per block and row: (d * dx) * dot + m * s, s = the block's rounded dx * sum(codes).
template <LegacyCodes (*kDecode)(const uint8_t*), size_t kBlockBytes>
void legacy_scalar(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  float acc[kTileRows] = {};
  for (int64_t b = 0; b < k / kQuantBlock; ++b) {
    const LegacyCodes block = kDecode(weight_row + b * static_cast<int64_t>(kBlockBytes));
    for (int r = 0; r < tile.rows; ++r) {
      const int dot = dot_codes(block.codes, tile.codes[r] + b * kQuantBlock, kQuantBlock);
      const float dx = tile.scales[r][b];
      acc[r] += (block.d * dx) * static_cast<float>(dot);
      acc[r] += block.m * tile.block_sums[r][b];
    }
  }
  for (int r = 0; r < tile.rows; ++r) out[r] = acc[r];
}

// Q8_0 / Q4_1 in ggml order (see quantized_matmul_kernels.h): 8 lanes of 4 elements per block.
template <LegacyCodes (*kDecode)(const uint8_t*), size_t kBlockBytes, bool kHasMin>
void ggml_order_scalar(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  constexpr int kLanes = 8;
  for (int r = 0; r < tile.rows; ++r) {
    float lanes[kLanes] = {};
    float summs = 0.0F;
    for (int64_t b = 0; b < k / kQuantBlock; ++b) {
      const LegacyCodes block = kDecode(weight_row + b * static_cast<int64_t>(kBlockBytes));
      const float scale = block.d * tile.scales[r][b];
      if constexpr (kHasMin) summs = std::fma(block.m, tile.block_sums[r][b], summs);
      for (int j = 0; j < kLanes; ++j) {
        const int dot = dot_codes(block.codes + 4 * j, tile.codes[r] + b * kQuantBlock + 4 * j, 4);
        lanes[j] = std::fma(scale, static_cast<float>(dot), lanes[j]);
      }
    }
    out[r] =
        (((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))) + summs;
  }
}

// A Q4_K / Q5_K super-block as w = (d * scale[j]) * code - dmin * min[j] per sub-block j of 32.
struct KCodes {
  float d = 0.0F;
  float dmin = 0.0F;
  int scales[8] = {};
  int mins[8] = {};
  int codes[kQuantSuperBlock] = {};
};

// ggml's get_scale_min_k4 for all eight sub-blocks.
void unpack_k_scales(const uint8_t* packed, int* scales, int* mins) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = packed[j] & 63;
    mins[j] = packed[j + 4] & 63;
    scales[j + 4] = (packed[j + 8] & 0x0F) | ((packed[j] >> 6) << 4);
    mins[j + 4] = (packed[j + 8] >> 4) | ((packed[j + 4] >> 6) << 4);
  }
}

// Sub-blocks 2c and 2c+1 are the low and high nibbles of qs[32c .. 32c+31].
void unpack_k_nibbles(const uint8_t* qs, int* codes) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      codes[64 * c + l] = qs[32 * c + l] & 0x0F;
      codes[64 * c + 32 + l] = qs[32 * c + l] >> 4;
    }
  }
}

KCodes decode_q4_k(const uint8_t* bytes) {
  const auto block = load_block<BlockQ4_K>(bytes);
  KCodes out;
  out.d = f16_to_f32(block.d);
  out.dmin = f16_to_f32(block.dmin);
  unpack_k_scales(block.scales, out.scales, out.mins);
  unpack_k_nibbles(block.qs, out.codes);
  return out;
}

KCodes decode_q5_k(const uint8_t* bytes) {
  const auto block = load_block<BlockQ5_K>(bytes);
  KCodes out;
  out.d = f16_to_f32(block.d);
  out.dmin = f16_to_f32(block.dmin);
  unpack_k_scales(block.scales, out.scales, out.mins);
  unpack_k_nibbles(block.qs, out.codes);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) out.codes[32 * j + l] += ((block.qh[l] >> j) & 1) << 4;
  }
  return out;
}

// Per super-block and row: (d * dx) * sum_j scale_j * dot_j - (dmin * dx) * sum_j min_j * sum_j(x codes).
template <KCodes (*kDecode)(const uint8_t*), size_t kBlockBytes>
void k_scalar(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  float acc[kTileRows] = {};
  for (int64_t b = 0; b < k / kQuantSuperBlock; ++b) {
    const KCodes block = kDecode(weight_row + b * static_cast<int64_t>(kBlockBytes));
    for (int r = 0; r < tile.rows; ++r) {
      const int8_t* x = tile.codes[r] + b * kQuantSuperBlock;
      const int16_t* sums = tile.sums[r] + b * (kQuantSuperBlock / qmm::kSuperSumGroup);
      int scaled_dot = 0;
      int min_dot = 0;
      for (int j = 0; j < 8; ++j) {
        scaled_dot += block.scales[j] * dot_codes(block.codes + 32 * j, x + 32 * j, 32);
        min_dot += block.mins[j] * (sums[2 * j] + sums[2 * j + 1]);
      }
      const float dx = tile.scales[r][b];
      acc[r] += (block.d * dx) * static_cast<float>(scaled_dot);
      acc[r] -= (block.dmin * dx) * static_cast<float>(min_dot);
    }
  }
  for (int r = 0; r < tile.rows; ++r) out[r] = acc[r];
}

// Q6_K element e: low 4 bits in ql[64h + r % 64] (nibble r / 64), high 2 bits in
// qh[32h + r % 32] (bits 2 * (r / 32)), h = e / 128, r = e % 128; code - 32 is signed.
void q6_k_scalar(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  float acc[kTileRows] = {};
  for (int64_t b = 0; b < k / kQuantSuperBlock; ++b) {
    const auto block = load_block<BlockQ6_K>(weight_row + b * static_cast<int64_t>(sizeof(BlockQ6_K)));
    int codes[kQuantSuperBlock];
    for (int e = 0; e < kQuantSuperBlock; ++e) {
      const int h = e / 128;
      const int r = e % 128;
      const int low = (block.ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
      const int high = (block.qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
      codes[e] = (low | (high << 4)) - 32;
    }
    const float d = f16_to_f32(block.d);
    for (int r = 0; r < tile.rows; ++r) {
      const int8_t* x = tile.codes[r] + b * kQuantSuperBlock;
      int scaled_dot = 0;
      for (int s = 0; s < 16; ++s) scaled_dot += block.scales[s] * dot_codes(codes + 16 * s, x + 16 * s, 16);
      acc[r] += (d * tile.scales[r][b]) * static_cast<float>(scaled_dot);
    }
  }
  for (int r = 0; r < tile.rows; ++r) out[r] = acc[r];
}

// ---------------------------------------------------------------------------------------
// Driver.

qmm::RowKernel pick_kernel(CpuIsa isa, bool vnni, DType dtype) {
  qmm::RowKernel kernel = nullptr;
  if (isa == CpuIsa::Avx512) kernel = qmm::avx512_row_kernel(dtype, vnni);
  if (kernel == nullptr && isa != CpuIsa::Scalar) kernel = qmm::avx2_row_kernel(dtype);
  if (kernel == nullptr) kernel = qmm::scalar_row_kernel(dtype);
  return kernel;
}

// out (M, N) = x (M, K) @ weight (N, K)^T for f32/f16/bf16 weights, in double per output.
void plain_matmul(ThreadPool& pool, Tensor& out, const Tensor& x, const Tensor& weight) {
  const int64_t rows = x.size(0);
  const int64_t k = x.size(1);
  const int64_t n = weight.size(0);
  const float* xs = x.data<const float>();
  float* ys = out.data<float>();
  pool.parallel_for(n, std::max<int64_t>(1, 4096 / k), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t col = begin; col < end; ++col) {
      const float* w = load_row(weight, col, k, scratch);
      for (int64_t row = 0; row < rows; ++row) {
        double sum = 0.0;
        for (int64_t i = 0; i < k; ++i) sum += static_cast<double>(w[i]) * xs[row * k + i];
        ys[row * n + col] = static_cast<float>(sum);
      }
    }
  });
}

}  // namespace

namespace qmm {

void quantize_row_scalar(const float* x, int64_t k, int block, int sum_group, int8_t* codes, float* scales,
                         int16_t* sums) {
  for (int64_t start = 0; start < k; start += block) {
    float amax = 0.0F;
    for (int64_t i = start; i < start + block; ++i) {
      const float magnitude = x[i] < 0.0F ? -x[i] : x[i];
      amax = magnitude > amax ? magnitude : amax;  // NaN is skipped
    }
    scales[start / block] = amax / 127.0F;
    const float inverse = amax > 0.0F ? 127.0F / amax : 0.0F;
    for (int64_t i = start; i < start + block; ++i) codes[i] = round_to_code(x[i] * inverse);
  }
  for (int64_t g = 0; g < k / sum_group; ++g) {
    int sum = 0;
    for (int i = 0; i < sum_group; ++i) sum += codes[g * sum_group + i];
    sums[g] = static_cast<int16_t>(sum);
  }
}

RowKernel scalar_row_kernel(DType dtype) {
  switch (dtype) {
    case DType::Q8_0:
      return ggml_order_scalar<decode_q8_0, sizeof(BlockQ8_0), false>;
    case DType::Q4_0:
      return legacy_scalar<decode_q4_0, sizeof(BlockQ4_0)>;
    case DType::Q4_1:
      return ggml_order_scalar<decode_q4_1, sizeof(BlockQ4_1), true>;
    case DType::Q5_0:
      return legacy_scalar<decode_q5_0, sizeof(BlockQ5_0)>;
    case DType::Q5_1:
      return legacy_scalar<decode_q5_1, sizeof(BlockQ5_1)>;
    case DType::Q4_K:
      return k_scalar<decode_q4_k, sizeof(BlockQ4_K)>;
    case DType::Q5_K:
      return k_scalar<decode_q5_k, sizeof(BlockQ5_K)>;
    case DType::Q6_K:
      return q6_k_scalar;
    default:
      return nullptr;
  }
}

}  // namespace qmm

void CpuBackend::quantized_matmul(Tensor& out, const Tensor& x, const Tensor& weight) {
  const DTypeInfo& info = dtype_info(weight.dtype());
  if (x.size(0) == 0 || weight.size(0) == 0) return;                 // empty output
  if (x.dtype() != DType::F32 && !is_activation_codes(x.dtype())) {  // f16/bf16 x of a f16/bf16 weight: exact in f32
    quantized_matmul(out, x.to_dtype(DType::F32), weight);
    return;
  }
  if (!info.is_quantized) {
    plain_matmul(pool_, out, x, weight);
    return;
  }
  const int64_t rows = x.size(0);
  const int64_t k = x.size(1);
  const int64_t n = weight.size(0);
  const bool k_quant = info.block_elems == kQuantSuperBlock;
  const QuantizedActivations acts =
      is_activation_codes(x.dtype()) ? unpack_activations(x) : quantize_for(pool_, isa_, x, k_quant);
  const qmm::RowKernel kernel = pick_kernel(isa_, features_.avx512_vnni, weight.dtype());
  const qmm::PairKernel pair_kernel =
      isa_ == CpuIsa::Avx512 ? qmm::avx512_ggml_order_pair_kernel(weight.dtype(), features_.avx512_vnni) : nullptr;
  const int64_t row_bytes = dtype_bytes_for(weight.dtype(), k);
  const int64_t num_tiles = (rows + kTileRows - 1) / kTileRows;
  const auto* weights = static_cast<const uint8_t*>(weight.raw_data());
  float* ys = out.data<float>();
  // Weight rows in blocks of kRowBlock: the block (a few KiB) stays in L1 while every
  // activation tile passes over it, and each tile stays in L1 for the block's rows.
  constexpr int64_t kRowBlock = 16;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / (row_bytes * num_tiles));
  pool_.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    float tile_out[kTileRows];
    float pair_out[kTileRows];
    for (int64_t block_begin = begin; block_begin < end; block_begin += kRowBlock) {
      const int64_t block_end = std::min(end, block_begin + kRowBlock);
      for (int64_t t = 0; t < num_tiles; ++t) {
        const ActTile tile = acts.tile(t * kTileRows, rows - t * kTileRows);
        int64_t col = block_begin;
        for (; pair_kernel != nullptr && tile.rows > 1 && col + 1 < block_end; col += 2) {
          pair_kernel(weights + col * row_bytes, weights + (col + 1) * row_bytes, k, tile, tile_out, pair_out);
          for (int r = 0; r < tile.rows; ++r) {
            ys[(t * kTileRows + r) * n + col] = tile_out[r];
            ys[(t * kTileRows + r) * n + col + 1] = pair_out[r];
          }
        }
        for (; col < block_end; ++col) {
          kernel(weights + col * row_bytes, k, tile, tile_out);
          for (int r = 0; r < tile.rows; ++r) ys[(t * kTileRows + r) * n + col] = tile_out[r];
        }
      }
    }
  });
}

void CpuBackend::quantize_activations(Tensor& out, const Tensor& x) {
  const bool k_quant = out.dtype() == DType::Q8KAct;
  const QuantizedActivations acts = quantize_for(pool_, isa_, x.view({x.numel() / x.size(-1), x.size(-1)}), k_quant);
  const ActivationLayout layout = activation_layout(out.dtype(), out.numel());
  auto* bytes = static_cast<uint8_t*>(out.raw_data());
  std::memcpy(bytes, acts.codes.data(), acts.codes.size());
  std::memcpy(bytes + layout.scales_offset, acts.scales.data(), acts.scales.size() * sizeof(float));
  // Code sums per 32 as i32: the legacy ones as they are, the K-quants' pairs of 16 added.
  const size_t per_sum = k_quant ? 2 : 1;
  std::vector<int32_t> sums(acts.sums.size() / per_sum);
  for (size_t i = 0; i < sums.size(); ++i) {
    sums[i] = acts.sums[i * per_sum] + (k_quant ? acts.sums[i * per_sum + 1] : 0);
  }
  std::memcpy(bytes + layout.sums_offset, sums.data(), sums.size() * sizeof(int32_t));
  if (!k_quant) {
    std::memcpy(bytes + layout.block_sums_offset, acts.block_sums.data(), acts.block_sums.size() * sizeof(float));
  }
}

}  // namespace anvil::cpu
