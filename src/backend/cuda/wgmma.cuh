#pragma once
// Hopper warpgroup matrix multiply (wgmma, sm_90a) for the attention kernels: shared-memory
// matrix descriptors for tiles in the 128-byte-swizzle layout, and the few instruction shapes
// they use (m64 x N x k16, f32 accumulators, bf16/f16 operands). A wgmma is issued by the 128
// threads of a warpgroup together, runs asynchronously, and is fenced, committed and waited
// for as a group (fence / commit / wait below).
//
// Tile layout (both operands): a (rows, D) tile of 16-bit elements is stored as D / 64
// column blocks, each rows x 128 bytes (64 elements per row), one after the other; within a
// block, row r's 16-byte chunk c sits at r * 128 + ((c ^ (r % 8)) * 16) (the hardware's
// 128-byte swizzle, so the tile must start 1024-byte aligned). swizzled_offset() gives that
// address. Such a tile serves as
//  - a K-major operand (A = Q, B = K for S = Q K^T; the reduction runs along the row):
//    descriptor(block + 32 * k-step-within-block, 16, 1024);
//  - an MN-major operand (B = V for O = P V, A = dS read from a stored dS^T; the reduction
//    runs down the rows): descriptor(tile + k-step * 16 rows * 128, column-block bytes,
//    1024), transposed; an operand of 64 columns starting at column block j starts at
//    tile + j * column-block bytes.
// Accumulators of m64nN: warp w of the group owns rows 16 w .. 16 w + 15; its lane holds,
// for each 8-column tile j, d[4 j + 0..1] = (row 16 w + lane / 4, columns 8 j + 2 (lane % 4)
// + 0..1) and d[4 j + 2..3] = the same columns of row + 8: the mma.sync m16n8 layout, so two
// adjacent column tiles rounded to 16 bits are the A registers of the next wgmma.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace anvil::cuda::wgmma {

// Byte offset of 16-byte chunk c (of D / 8) of row r in a swizzled tile of kRows rows.
template <int kRows>
__device__ __forceinline__ uint32_t swizzled_offset(int r, int c) {
  return static_cast<uint32_t>((c >> 3) * (kRows * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

// Queues the cp.async copy of rows first .. first + kRows - 1 (row t at base + t * row_step,
// kCols 16-bit elements) into the swizzled tile at shared address dst; rows at or past
// rows_end are zero-filled. All kThreads threads of the block take part.
template <typename T, int kCols, int kRows, int kThreads>
__device__ __forceinline__ void load_rows_swizzled(uint32_t dst, const T* base, int64_t row_step, int first,
                                                   int rows_end) {
  constexpr int kChunksPerRow = kCols / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
#pragma unroll
  for (int i = 0; i < (kChunks + kThreads - 1) / kThreads; ++i) {
    const int id = static_cast<int>(threadIdx.x) + i * kThreads;
    if (kChunks % kThreads != 0 && id >= kChunks) break;
    const int r = id / kChunksPerRow;
    const int c = id % kChunksPerRow;
    const int t = first + r;
    const bool valid = t < rows_end;
    const T* src = base + (valid ? t * row_step + c * 8 : 0);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst + swizzled_offset<kRows>(r, c)), "l"(src),
                 "r"(valid ? 16 : 0));
  }
}

// Plain shared-memory accesses by address (the tiles above are addressed as u32 offsets):
// a 4-byte store, e.g. two packed accumulators, and a 16-byte load, e.g. a chunk of a row.
__device__ __forceinline__ void store_shared(uint32_t address, uint32_t bits) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address), "r"(bits) : "memory");
}
__device__ __forceinline__ uint4 load_shared_16(uint32_t address) {
  uint4 chunk;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(chunk.x), "=r"(chunk.y), "=r"(chunk.z), "=r"(chunk.w)
               : "r"(address)
               : "memory");
  return chunk;
}

// Shared-memory matrix descriptor: start address, leading and stride byte offsets (both in
// 16-byte units), 128-byte swizzle (mode 1, bits 62-63).
__device__ __forceinline__ uint64_t descriptor(uint32_t smem_address, uint32_t leading_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((smem_address >> 4) & 0x3FFFU) |
         (static_cast<uint64_t>((leading_bytes >> 4) & 0x3FFFU) << 16) |
         (static_cast<uint64_t>((stride_bytes >> 4) & 0x3FFFU) << 32) | (uint64_t{1} << 62);
}

// Before the first wgmma that reads registers (accumulators, A) written by other instructions.
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most kPending committed groups of this warpgroup are in flight.
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving reads or writes of the accumulators across wait().
template <int kN>
__device__ __forceinline__ void fence_operands(float (&d)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

template <int kRows, int kCols>
__device__ __forceinline__ void fence_operands(uint32_t (&r)[kRows][kCols]) {
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
#pragma unroll
    for (int j = 0; j < kCols; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
  }
}

// Generic-proxy writes to shared memory (cp.async, st.shared) made visible to wgmma reads;
// each writing thread, before the barrier that precedes the wgmma.
__device__ __forceinline__ void fence_shared_for_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// The instruction shapes m64 x kN x k16 for storage type T (specialised below).
template <typename T, int kN>
struct Mma;

// d (64 x kN, f32) = [accumulate ? d : 0] + A (64 x 16) B (16 x kN), both from shared memory
// (descriptors a, b). kTransA = 0: A K-major (64 rows of 16 reduction elements), 1: MN-major
// (16 rows of 64 elements); kTransB = 0: B K-major (kN rows of 16), 1: MN-major (16 rows of kN).
template <typename T, int kN, int kTransA = 0, int kTransB = 0>
__device__ __forceinline__ void mma_ss(float (&d)[kN / 2], uint64_t a, uint64_t b, int accumulate) {
  Mma<T, kN>::template ss<kTransA, kTransB>(d, a, b, accumulate);
}

// d (64 x kN, f32) = [accumulate ? d : 0] + A (64 x 16, registers as documented above) B
// (16 x kN, descriptor b, MN-major: 16 rows of kN elements).
template <typename T, int kN>
__device__ __forceinline__ void mma_rs_bt(float (&d)[kN / 2], const uint32_t (&a)[4], uint64_t b, int accumulate) {
  Mma<T, kN>::rs_bt(d, a, b, accumulate);
}

// The specialisations, per storage type (T, its PTX name) and N (operand lists generated;
// N = 176, the forward's widest key tile, only from shared memory).
#define ANVIL_WGMMA_SHAPES(T, PTX)                                                                                     \
  template <>                                                                                                          \
  struct Mma<T, 64> {                                                                                                  \
    template <int kTransA, int kTransB>                                                                                \
    static __device__ __forceinline__ void ss(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {                \
      asm volatile(                                                                                                    \
          "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                                 \
          "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX "." PTX                                                    \
          " "                                                                                                          \
          "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
          "%23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, %35, %36;\n}\n"                            \
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),            \
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),      \
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),    \
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])     \
          : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));                                              \
    }                                                                                                                  \
    static __device__ __forceinline__ void rs_bt(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int accumulate) { \
      asm volatile(                                                                                                    \
          "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                                 \
          "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX "." PTX                                                    \
          " "                                                                                                          \
          "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
          "%23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                  \
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),            \
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),      \
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),    \
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])     \
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));                                      \
    }                                                                                                                  \
  };                                                                                                                   \
  template <>                                                                                                          \
  struct Mma<T, 128> {                                                                                                 \
    template <int kTransA, int kTransB>                                                                                \
    static __device__ __forceinline__ void ss(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {                \
      asm volatile(                                                                                                    \
          "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                                 \
          "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX "." PTX                                                   \
          " "                                                                                                          \
          "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
          "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "  \
          "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, " \
          "%65, p, 1, 1, %67, %68;\n}\n"                                                                               \
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),            \
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),      \
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),    \
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),    \
            "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),    \
            "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),    \
            "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),    \
            "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])     \
          : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));                                              \
    }                                                                                                                  \
    static __device__ __forceinline__ void rs_bt(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int accumulate) { \
      asm volatile(                                                                                                    \
          "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                                                 \
          "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX "." PTX                                                   \
          " "                                                                                                          \
          "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
          "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "  \
          "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "      \
          "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                                                                \
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),            \
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),      \
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),    \
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),    \
            "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),    \
            "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),    \
            "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),    \
            "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])     \
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));                                      \
    }                                                                                                                  \
  };                                                                                                                   \
  template <>                                                                                                          \
  struct Mma<T, 176> {                                                                                                 \
    template <int kTransA, int kTransB>                                                                                \
    static __device__ __forceinline__ void ss(float (&d)[88], uint64_t a, uint64_t b, int accumulate) {                \
      asm volatile(                                                                                                    \
          "{\n.reg .pred p;\nsetp.ne.b32 p, %90, 0;\n"                                                                 \
          "wgmma.mma_async.sync.aligned.m64n176k16.f32." PTX "." PTX                                                   \
          " "                                                                                                          \
          "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "      \
          "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "  \
          "%43, "                                                                                                      \
          "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, "  \
          "%65, "                                                                                                      \
          "%66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, "  \
          "%87}, "                                                                                                     \
          "%88, %89, p, 1, 1, %91, %92;\n}\n"                                                                          \
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),            \
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),      \
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),    \
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),    \
            "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),    \
            "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),    \
            "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),    \
            "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),    \
            "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),    \
            "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),    \
            "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87])     \
          : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));                                              \
    }                                                                                                                  \
  };

ANVIL_WGMMA_SHAPES(__nv_bfloat16, "bf16")
ANVIL_WGMMA_SHAPES(__half, "f16")
#undef ANVIL_WGMMA_SHAPES

// acc (64 x kN) = A B^T over kK reduction elements, A and B K-major swizzled tiles in
// 64-column blocks: A's 64 rows at `a` (column blocks a_block_bytes apart), B's kN rows at `b`.
template <typename T, int kK, int kN>
__device__ __forceinline__ void gemm_kmajor(float (&acc)[kN / 2], uint32_t a, uint32_t a_block_bytes, uint32_t b,
                                            uint32_t b_block_bytes) {
#pragma unroll
  for (int kk = 0; kk < kK / 16; ++kk) {
    const uint32_t column = static_cast<uint32_t>(kk % 4) * 32U;  // 16 elements per k-step
    mma_ss<T, kN>(acc, descriptor(a + (kk / 4) * a_block_bytes + column, 16, 1024),
                  descriptor(b + (kk / 4) * b_block_bytes + column, 16, 1024), kk > 0 ? 1 : 0);
  }
}

// acc (64 x kN) += A B, A as register fragments (kK / 16 k-steps of 16), B the first kK rows
// of a swizzled tile read MN-major (kN columns, column blocks b_block_bytes apart).
template <typename T, int kK, int kN>
__device__ __forceinline__ void gemm_registers_mn(float (&acc)[kN / 2], const uint32_t (&a)[kK / 16][4], uint32_t b,
                                                  uint32_t b_block_bytes) {
#pragma unroll
  for (int kk = 0; kk < kK / 16; ++kk) {
    mma_rs_bt<T, kN>(acc, a[kk], descriptor(b + static_cast<uint32_t>(kk) * 16U * 128U, b_block_bytes, 1024), 1);
  }
}

// acc (64 x kN) = A B over kK, both read MN-major from swizzled tiles: A's 64 columns at `a`
// (A^T stored: kK rows of them), B's kN columns at `b` (column blocks b_block_bytes apart).
template <typename T, int kK, int kN>
__device__ __forceinline__ void gemm_mn(float (&acc)[kN / 2], uint32_t a, uint32_t a_block_bytes, uint32_t b,
                                        uint32_t b_block_bytes) {
#pragma unroll
  for (int kk = 0; kk < kK / 16; ++kk) {
    const uint32_t rows = static_cast<uint32_t>(kk) * 16U * 128U;
    mma_ss<T, kN, 1, 1>(acc, descriptor(a + rows, a_block_bytes, 1024), descriptor(b + rows, b_block_bytes, 1024),
                        kk > 0 ? 1 : 0);
  }
}

}  // namespace anvil::cuda::wgmma
