#pragma once
// TMA tensor maps (CUtensorMap) for the warp-specialised kernels, built on the host. The
// driver's encoder is reached through the runtime's driver entry point, so nothing links
// libcuda directly (the static runtime loads it).
#include <cuda.h>

#include <cstdint>

namespace anvil::cuda {

// A (batch, rows, heads, cols) tensor of 16-bit elements, row-major with cols innermost
// (e.g. q or k of attention: (B, T, H, D)), read in boxes of `box_rows` rows x 64 columns
// (128 bytes) of one (batch, head): a box lands in shared memory as box_rows rows of 128
// bytes in the 128-byte swizzle (wgmma.cuh's tile layout; the destination must be 1024-byte
// aligned). Coordinates of a box: (column, head, row, batch). Rows past `rows` read as zero.
// `data` must be 16-byte aligned and cols a multiple of 64. The encoder is looked up in the
// driver once per TensorMapEncoder (a launch makes one for all its maps).
class TensorMapEncoder {
 public:
  TensorMapEncoder();
  [[nodiscard]] CUtensorMap row_tiles(const void* data, int64_t batch, int64_t rows, int64_t heads, int64_t cols,
                                      int box_rows) const;

 private:
  void* encode_ = nullptr;  // cuTensorMapEncodeTiled (12.0 ABI)
};

}  // namespace anvil::cuda
