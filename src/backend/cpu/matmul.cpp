// CpuBackend::matmul: lays the (batched) problem out as a GemmProblem with an f32 C, then
// picks a kernel by operand dtype and ISA:
//   f32                      -> OpenBLAS (matmul_blas.cpp)
//   bf16 with AVX-512 BF16   -> vdpbf16ps kernels (matmul_avx512.cpp, matmul_small_m_avx512.cpp)
//   f16, small M, AVX-512    -> streaming kernel widening f16 on the fly (matmul_small_m_avx512.cpp)
//   otherwise (f16, or bf16 on the portable path) -> operands widened to f32, then OpenBLAS.
// An out of bf16/f16 is computed in an f32 scratch and rounded once at the end.
#include <algorithm>

#include "anvil/core/convert.h"
#include "cpu/cpu_backend.h"
#include "cpu/matmul_kernels.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kConvertChunk = 1 << 14;

// dst = src converted, in parallel chunks; widening to f32 uses AVX-512 when `simd`.
void convert_parallel(ThreadPool& pool, DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t count,
                      bool simd = false) {
  const int64_t chunks = (count + kConvertChunk - 1) / kConvertChunk;
  pool.parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t first = chunk * kConvertChunk;
      const int64_t length = std::min(kConvertChunk, count - first);
      const char* from = static_cast<const char*>(src) + dtype_bytes_for(src_dtype, first);
      char* to = static_cast<char*>(dst) + dtype_bytes_for(dst_dtype, first);
      if (simd && dst_dtype == DType::F32 && (src_dtype == DType::BF16 || src_dtype == DType::F16)) {
        widen_to_f32_avx512(src_dtype, from, reinterpret_cast<float*>(to), length);
      } else {
        convert_host(src_dtype, from, dst_dtype, to, length);
      }
    }
  });
}

// An f32 copy of a tensor's elements (a scratch tensor), for the widening path.
Tensor widened(ThreadPool& pool, const Tensor& tensor, bool simd) {
  Tensor wide = Tensor::empty({tensor.numel()}, DType::F32);
  convert_parallel(pool, tensor.dtype(), tensor.raw_data(), DType::F32, wide.raw_data(), tensor.numel(), simd);
  return wide;
}

// The batched problem of out (..., M, N) = alpha * op(a) @ op(b) + beta * out, without pointers.
GemmProblem describe(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
                     float beta) {
  GemmProblem p;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  p.m = out.size(-2);
  p.n = out.size(-1);
  p.k = trans_a ? a.size(-2) : a.size(-1);
  p.batch = out.numel() / (p.m * p.n);
  p.alpha = alpha;
  p.beta = beta;
  p.lda = a.size(-1);
  p.ldb = b.size(-1);
  p.ldc = p.n;
  p.batch_stride_a = p.m * p.k;
  p.batch_stride_b = b.dim() == 2 ? 0 : p.k * p.n;
  p.batch_stride_c = p.m * p.n;
  if (p.batch_stride_b == 0 && !trans_a) {
    // A shared B: the batch entries' rows of A and C are one taller matrix.
    p.m *= p.batch;
    p.batch = 1;
  }
  return p;
}

}  // namespace

void CpuBackend::matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
                        float beta) {
  if (out.numel() == 0) return;
  GemmProblem p = describe(out, a, b, trans_a, trans_b, alpha, beta);
  Tensor c_scratch;  // f32 C when out is bf16/f16
  if (out.dtype() == DType::F32) {
    p.c = out.data<float>();
  } else {
    c_scratch = Tensor::empty({out.numel()}, DType::F32);
    if (beta != 0.0F)
      convert_parallel(pool_, out.dtype(), out.raw_data(), DType::F32, c_scratch.raw_data(), out.numel());
    p.c = c_scratch.data<float>();
  }
  if (p.k == 0) {
    gemm_scale_only(p);
  } else if (a.dtype() == DType::F32) {
    p.a = a.raw_data();
    p.b = b.raw_data();
    gemm_f32_blas(pool_, p);
  } else if (a.dtype() == DType::BF16 && isa_ == CpuIsa::Avx512 && features_.avx512_bf16) {
    p.a = a.raw_data();
    p.b = b.raw_data();
    gemm_bf16_avx512(pool_, p);
  } else if (a.dtype() == DType::F16 && isa_ == CpuIsa::Avx512 && p.m <= kSmallMRows) {
    p.a = a.raw_data();
    p.b = b.raw_data();
    gemm_small_m_avx512(pool_, p, DType::F16);
  } else {
    const bool simd = isa_ == CpuIsa::Avx512;
    const Tensor wide_a = widened(pool_, a, simd);
    const Tensor wide_b = widened(pool_, b, simd);
    p.a = wide_a.raw_data();
    p.b = wide_b.raw_data();
    gemm_f32_blas(pool_, p);
  }
  if (c_scratch.defined()) {
    convert_parallel(pool_, DType::F32, c_scratch.raw_data(), out.dtype(), out.raw_data(), out.numel());
  }
}

}  // namespace anvil::cpu
