// CudaBackend's paged KV cache ops. The contract (backend.h) has the backend check slot,
// sequence, position and block id values, which live on the device: kv_cache_write
// downloads its slots (N ints) and checks them on the host; paged_attention checks on the
// device and downloads two ints, and only on a failure downloads the indices to name the
// first bad one with the CPU's message. Either way the op waits for the stream once, unless
// the caller says it checked the indices itself (the model layer does, on the host), which
// keeps a decode step free of host waits.
#include <algorithm>
#include <cmath>

#include "anvil/core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"
#include "cuda/paged_attention_kernels.h"
#include "cuda/rope_kernels.h"
#include "cuda/scratch_buffer.h"

namespace anvil::cuda {
namespace {

// Throws unless every slot is in [0, num_slots) and no slot appears twice.
void check_slots(const std::vector<int32_t>& slots, int64_t num_slots) {
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i] < 0 || slots[i] >= num_slots) {
      throw make_error("op kv_cache_write: slot ", slots[i], " of token ", i, " is out of range for a cache of ",
                       num_slots, " slots");
    }
  }
  std::vector<int32_t> sorted = slots;
  std::sort(sorted.begin(), sorted.end());
  const auto repeated = std::adjacent_find(sorted.begin(), sorted.end());
  ANVIL_CHECK(repeated == sorted.end(), "op kv_cache_write: slot ", *repeated, " is written twice in one call");
}

// Throws the CPU's message for the first token whose indices are invalid (the device check
// found one); the vectors are the downloaded index tensors.
[[noreturn]] void throw_bad_token(const PagedAttentionArgs& args, const std::vector<int32_t>& sequence_of,
                                  const std::vector<int32_t>& position_of, const std::vector<int32_t>& tables,
                                  size_t token) {
  const int64_t sequence = sequence_of[token];
  const int64_t position = position_of[token];
  ANVIL_CHECK(sequence >= 0 && sequence < args.sequences, "op paged_attention: token ", token, " names sequence ",
              sequence, " but block_tables has ", args.sequences, " rows");
  ANVIL_CHECK(position >= 0, "op paged_attention: token ", token, " has negative position ", position);
  const int64_t last_block = position / args.block_size;
  ANVIL_CHECK(last_block < args.max_blocks, "op paged_attention: token ", token, " at position ", position,
              " needs block index ", last_block, " but block_tables has ", args.max_blocks, " columns");
  const int64_t first = args.window > 0 ? std::max<int64_t>(0, position - args.window + 1) : 0;
  for (int64_t b = first / args.block_size; b <= last_block; ++b) {
    const int32_t block = tables[static_cast<size_t>(sequence * args.max_blocks + b)];
    ANVIL_CHECK(block >= 0 && block < args.num_blocks, "op paged_attention: block id ", block, " (sequence ", sequence,
                ", block index ", b, ") is out of range for a cache of ", args.num_blocks, " blocks");
  }
  throw make_error("op paged_attention: token ", token, " has invalid indices");
}

PagedAttentionArgs paged_args(Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                              const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                              const PagedAttentionParams& params) {
  PagedAttentionArgs args;
  args.q_dtype = q.dtype();
  args.cache_dtype = key_cache.dtype();
  args.q = q.raw_data();
  args.out = out.raw_data();
  args.key_cache = key_cache.raw_data();
  args.value_cache = value_cache.raw_data();
  args.token_sequences = token_sequences.data<const int32_t>();
  args.positions = positions.data<const int32_t>();
  args.block_tables = block_tables.data<const int32_t>();
  args.tokens = q.size(0);
  args.q_heads = q.size(1);
  args.kv_heads = key_cache.size(2);
  args.head_dim = q.size(2);
  args.num_blocks = key_cache.size(0);
  args.block_size = key_cache.size(1);
  args.sequences = block_tables.size(0);
  args.max_blocks = block_tables.size(1);
  args.window = params.sliding_window;
  args.scale = params.scale != 0.0F ? params.scale : 1.0F / std::sqrt(static_cast<float>(args.head_dim));
  return args;
}

}  // namespace

void CudaBackend::kv_cache_write(Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v,
                                 const Tensor& slots, bool slots_checked) {
  const DeviceGuard guard(device_index_);
  if (!slots_checked) check_slots(download_i32(slots), key_cache.size(0) * key_cache.size(1));
  const KvCacheWriteArgs args{k.dtype(),
                              key_cache.dtype(),
                              k.raw_data(),
                              v.raw_data(),
                              key_cache.raw_data(),
                              value_cache.raw_data(),
                              slots.data<const int32_t>(),
                              k.size(0),
                              key_cache.size(2) * key_cache.size(3)};
  launch_kv_cache_write(args, stream_);
}

void CudaBackend::rope_kv_cache_write(Tensor& qkv, Tensor& key_cache, Tensor& value_cache, const Tensor& positions,
                                      const Tensor& slots, const RopeParams& params, bool slots_checked) {
  const DeviceGuard guard(device_index_);
  if (!slots_checked) check_slots(download_i32(slots), key_cache.size(0) * key_cache.size(1));
  const int64_t kv_heads = key_cache.size(2);
  // Heads of no whole 16-byte vectors: the rope and kv_cache_write kernels, token by token.
  const RopeKvWriteArgs args{floats(qkv),
                             floats(key_cache),
                             floats(value_cache),
                             positions.data<const int32_t>(),
                             slots.data<const int32_t>(),
                             qkv.size(0),
                             qkv.size(1) - 2 * kv_heads,
                             kv_heads,
                             qkv.size(2)};
  if (!launch_rope_kv_cache_write(args, params, stream_)) {
    Backend::rope_kv_cache_write(qkv, key_cache, value_cache, positions, slots, params, /*slots_checked=*/true);
  }
}

void CudaBackend::paged_attention(Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                                  const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                                  const PagedAttentionParams& params) {
  const DeviceGuard guard(device_index_);
  PagedAttentionArgs args =
      paged_args(out, q, key_cache, value_cache, token_sequences, positions, block_tables, params);
  PagedTokenCheck check;
  if (params.checked_max_visible > 0) {  // checked by the caller: no wait for the device
    check.max_visible = static_cast<int32_t>(params.checked_max_visible);
  } else {
    const ScratchBuffer result(*allocator_, 2 * sizeof(int32_t));
    check = check_paged_tokens(args, result.as<int32_t>(), stream_);
  }
  if (check.first_bad_token >= 0) {
    throw_bad_token(args, download_i32(token_sequences), download_i32(positions), download_i32(block_tables),
                    static_cast<size_t>(check.first_bad_token));
  }
  if (num_sms_ == 0) ANVIL_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_index_));
  const int num_sms = num_sms_;
  const PagedPartitioning plan = plan_paged_attention(args, check.max_visible, num_sms);
  const ScratchBuffer partials(*allocator_, plan.scratch_bytes);
  int32_t* counters = plan.counters <= kPagedCounters ? paged_counters_ : nullptr;
  if (is_activation_codes(out.dtype())) {
    // The tiled kernel writes Q8Act codes where it writes the outputs itself (one partition,
    // or its fused merge); other plans and Q8KAct go through f32 and the quantiser.
    const bool tiled_writes = plan.tiled && (plan.partitions == 1 || (plan.counters > 0 && counters != nullptr));
    if (out.dtype() == DType::Q8Act && tiled_writes) {
      args.out = nullptr;
      args.codes = activations_at(out.raw_data(), out.dtype(), out.numel() / out.size(-1), out.size(-1));
      launch_paged_attention(args, plan, partials.get(), counters, stream_);
      return;
    }
    Tensor values = Tensor::empty(out.shape(), DType::F32, *allocator_);
    args.out = values.raw_data();
    launch_paged_attention(args, plan, partials.get(), counters, stream_);
    quantize_activations(out, values);
    return;
  }
  launch_paged_attention(args, plan, partials.get(), counters, stream_);
}

}  // namespace anvil::cuda
