#pragma once
// Launch shapes for the register-cached row kernels (norms, softmax): one block per row,
// each thread holding `vecs_per_thread` 16-byte vectors of the row in registers, so the row
// is read from memory once. Rows too long for that (or not a whole number of vectors) take
// the generic element-by-element kernels instead.
#include <cstdint>
#include <type_traits>

#include "cuda/vector_io.cuh"

namespace anvil::cuda {

// Largest block of a row kernel (its __launch_bounds__): up to 128 registers per thread.
constexpr int kRowVectorMaxThreads = 512;
constexpr int kRowVectorPreferredThreads = 256;

struct RowVectorPlan {
  int vecs_per_thread = 0;  // 0: no vector path for this row length
  int threads = 0;
};

// The fewest vectors per thread (1, 2, 4, 8) that keep a block at 256 threads, or else the
// most allowed with up to 512 threads; each thread caches at most max_elems_per_thread
// elements per cached array.
template <typename T>
RowVectorPlan plan_row_vectors(int64_t channels, int max_elems_per_thread) {
  if (channels % kVecSize<T> != 0) return {};
  const int64_t num_vecs = channels / kVecSize<T>;
  const int max_vecs = max_elems_per_thread / kVecSize<T>;
  for (int vecs = 1; vecs <= max_vecs; vecs *= 2) {
    const int64_t threads = (num_vecs + vecs - 1) / vecs;
    const bool last = vecs * 2 > max_vecs;
    if (threads <= kRowVectorPreferredThreads || (last && threads <= kRowVectorMaxThreads)) {
      const int64_t rounded = (threads + 31) / 32 * 32;
      return {vecs, static_cast<int>(rounded)};
    }
  }
  return {};
}

// Calls fn(std::integral_constant<int, V>{}) for V = vecs_per_thread in {1, 2, 4, 8}.
template <typename Fn>
void dispatch_vecs_per_thread(int vecs_per_thread, Fn&& fn) {
  switch (vecs_per_thread) {
    case 1:
      return fn(std::integral_constant<int, 1>{});
    case 2:
      return fn(std::integral_constant<int, 2>{});
    case 4:
      return fn(std::integral_constant<int, 4>{});
    default:
      return fn(std::integral_constant<int, 8>{});
  }
}

}  // namespace anvil::cuda
