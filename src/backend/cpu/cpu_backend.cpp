#include "cpu/cpu_backend.h"

#include <cblas.h>

namespace anvil::cpu {

CpuBackend::CpuBackend(ThreadPool& pool, const CpuFeatures& features)
    : pool_(pool), features_(features), isa_(best_isa(features)) {
  // OpenBLAS runs single-threaded: matmul splits GEMMs into tiles over pool_, so the pool
  // owns every thread (no oversubscription, nested calls stay serial).
  openblas_set_num_threads(1);
}

bool CpuBackend::supports(OpKind op, DType dtype) const {
  const bool float_type = dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
  switch (op) {
    case OpKind::Copy:
      return true;
    case OpKind::AdamW:
    case OpKind::Argmax:
    case OpKind::TopKFilter:
    case OpKind::TopPFilter:
    case OpKind::MinPFilter:
    case OpKind::SampleMultinomial:
      return dtype == DType::F32;
    case OpKind::QuantizedMatmul:  // dtype: the weight's
      return float_type || dtype == DType::Q8_0 || dtype == DType::Q4_0 || dtype == DType::Q4_1 ||
             dtype == DType::Q5_0 || dtype == DType::Q5_1 || dtype == DType::Q4_K || dtype == DType::Q5_K ||
             dtype == DType::Q6_K;
    default:
      return float_type;
  }
}

}  // namespace anvil::cpu
