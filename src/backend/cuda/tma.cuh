#pragma once
// Hopper's asynchronous copy machinery (sm_90a) for warp-specialised kernels: transaction
// barriers in shared memory (mbarrier), bulk tensor copies global -> shared driven by a
// tensor map (TMA, see tensor_map.h), named barriers between warpgroups, and the register
// reallocation between producer and consumer warpgroups (setmaxnreg).
//
// Protocol of a stage of a producer / consumer pipeline: the producer waits on the stage's
// `empty` barrier, announces the bytes it will copy (arrive_expect_tx on `full`) and issues
// the TMA copies, which complete the transaction on `full`; consumers wait on `full`, read
// the stage, and arrive on `empty`. A barrier counts phases: waiting for parity p returns
// once the phase of parity p has completed; a fresh barrier is in phase 0, so waiting for
// parity 1 returns at once (the producer's first pass over empty stages).
#include <cuda.h>

#include <cstdint>

namespace anvil::cuda::tma {

// Initialises the barrier at shared address `bar` to expect `count` arrivals per phase. One
// thread; then fence_barrier_init() and a block barrier before any other thread uses it.
__device__ __forceinline__ void barrier_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// One arrival that also announces `bytes` more bytes of transactions in this phase.
__device__ __forceinline__ void arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Blocks until the phase of parity `parity` of the barrier has completed.
__device__ __forceinline__ void wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
}

// Copies the box at coordinates (c0, c1, c2, c3) of the 4-D tensor map into shared memory at
// `dst`, completing its bytes as transactions on `bar`.
__device__ __forceinline__ void load_4d(uint32_t dst, const CUtensorMap& map, uint32_t bar, int c0, int c1, int c2,
                                        int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// Adds `bytes` bytes of f32 values at shared address `src` element-wise into global memory at
// `dst` (each element added atomically, like red.global.add), asynchronously; both 16-byte
// aligned, bytes a multiple of 16. Committed as a bulk group by bulk_commit().
__device__ __forceinline__ void bulk_reduce_add_f32(float* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst), "r"(src),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Waits until at most kPending bulk groups of this thread still read their shared source.
template <int kPending>
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}
// Waits until at most kPending bulk groups of this thread are incomplete.
template <int kPending>
__device__ __forceinline__ void bulk_wait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Brings the tensor map (a __grid_constant__ kernel parameter) into the descriptor cache.
__device__ __forceinline__ void prefetch_map(const CUtensorMap& map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&map)) : "memory");
}

// Named barriers 1..15 (0 is __syncthreads): `threads` threads take part in all, some
// waiting (sync), some only signalling (arrive). Both are warp-wide.
__device__ __forceinline__ void named_sync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_arrive(uint32_t id, uint32_t threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Gives up / takes registers for the executing warpgroup (all its threads together).
template <uint32_t kRegisters>
__device__ __forceinline__ void release_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <uint32_t kRegisters>
__device__ __forceinline__ void claim_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

}  // namespace anvil::cuda::tma
