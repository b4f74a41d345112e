// TMA tensor maps, see tensor_map.h.
#include "cuda/tensor_map.h"

#include <cuda_runtime_api.h>
#include <cudaTypedefs.h>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"

namespace anvil::cuda {

// cuTensorMapEncodeTiled from the driver, its 12.0 ABI.
TensorMapEncoder::TensorMapEncoder() {
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  ANVIL_CUDA_CHECK(
      cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &encode_, 12000, cudaEnableDefault, &found));
  ANVIL_CHECK(found == cudaDriverEntryPointSuccess && encode_ != nullptr,
              "cuda: the driver has no cuTensorMapEncodeTiled (TMA needs a CUDA 12 driver)");
}

CUtensorMap TensorMapEncoder::row_tiles(const void* data, int64_t batch, int64_t rows, int64_t heads, int64_t cols,
                                        int box_rows) const {
  ANVIL_CHECK(reinterpret_cast<uintptr_t>(data) % 16 == 0, "cuda tensor map: data is not 16-byte aligned");
  ANVIL_CHECK(cols % 64 == 0 && box_rows >= 1 && box_rows <= 256, "cuda tensor map: cols ", cols, " box_rows ",
              box_rows, " unsupported");
  constexpr int64_t kElementBytes = 2;
  // Dimensions innermost first: column, head, row, batch.
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(heads),
                              static_cast<cuuint64_t>(rows), static_cast<cuuint64_t>(batch)};
  // Byte strides of dimensions 1..3.
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(cols * kElementBytes),
                                 static_cast<cuuint64_t>(heads * cols * kElementBytes),
                                 static_cast<cuuint64_t>(rows * heads * cols * kElementBytes)};
  const cuuint32_t box[4] = {64, 1, static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  CUtensorMap map{};
  const CUresult status = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(encode_)(
      &map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 4, const_cast<void*>(data), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  ANVIL_CHECK(status == CUDA_SUCCESS, "cuda tensor map: cuTensorMapEncodeTiled failed (CUresult ",
              static_cast<int>(status), ") for (", batch, ", ", rows, ", ", heads, ", ", cols, ")");
  return map;
}

}  // namespace anvil::cuda
