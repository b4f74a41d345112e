// Embedding: lookup against float64 (exact: rows are copied), backward against finite
// differences with repeated ids, and ids out of range, on every backend.
#include <gtest/gtest.h>

#include <string>

#include "anvil/ops/embedding.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

// (vocabulary V, channels C, ids N).
struct EmbeddingCase {
  int64_t vocab;
  int64_t channels;
  int64_t count;
};
// {11, 64, 25}: rows of whole 16-byte vectors (the CUDA fast path).
const std::vector<EmbeddingCase> kCases = {{1, 1, 1},      {7, 13, 5},   {50, 257, 33},
                                           {300, 65, 200}, {3, 130, 40}, {11, 64, 25}};

// out[i, c] = table[ids[i], c] in float64.
HostArray embedding_reference(const HostArray& table, const HostArray& ids) {
  const int64_t channels = table.shape[1];
  HostArray out{{ids.numel(), channels}, std::vector<double>(static_cast<size_t>(ids.numel() * channels))};
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const auto row = static_cast<int64_t>(ids[i]);
    for (int64_t c = 0; c < channels; ++c) out[i * channels + c] = table[row * channels + c];
  }
  return out;
}

// A lookup copies rows, so the result is exact in the table's dtype (and in f32 from bf16/f16).
constexpr Tolerance kExact{0.0, 0.0, 0.0};

TEST(OpEmbedding, ForwardMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const EmbeddingCase& c : kCases) {
        for (const DType out_dtype : {dtype, DType::F32}) {
          SCOPED_TRACE(case_label(dtype, device, {c.vocab, c.channels}) + ", N " + std::to_string(c.count) + ", out " +
                       std::string(dtype_name(out_dtype)));
          HostArray table = random_array({c.vocab, c.channels}, rng, -2.0, 2.0);
          HostArray ids = random_ints({c.count}, rng, 0, c.vocab);
          Tensor table_tensor = make_tensor(ctx, table, dtype, device);
          Tensor ids_tensor = make_tensor(ctx, ids, DType::I32, device);
          Tensor out = ctx.empty({c.count, c.channels}, out_dtype, device);
          embedding(ctx, out, table_tensor, ids_tensor);
          expect_close(to_host(ctx, out), embedding_reference(table, ids), kExact, "out");
        }
      }
    }
  }
}

TEST(OpEmbedding, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const EmbeddingCase& c : {EmbeddingCase{1, 1, 3}, EmbeddingCase{7, 13, 20}, EmbeddingCase{5, 130, 40}}) {
        SCOPED_TRACE(case_label(dtype, device, {c.vocab, c.channels}) + ", N " + std::to_string(c.count));
        HostArray table = random_array({c.vocab, c.channels}, rng);
        // N > V: ids repeat, and their gradients must add up.
        HostArray ids = random_ints({c.count}, rng, 0, c.vocab);
        HostArray grad_out = random_array({c.count, c.channels}, rng);
        HostArray grad_start = random_array({c.vocab, c.channels}, rng);  // backward accumulates
        Tensor ids_tensor = make_tensor(ctx, ids, DType::I32, device);
        Tensor grad_out_tensor = make_tensor(ctx, grad_out, dtype, device);
        Tensor grad_table = make_tensor(ctx, grad_start, DType::F32, device);
        embedding_backward(ctx, grad_table, grad_out_tensor, ids_tensor);
        HostArray grad_ref =
            finite_difference([&](const HostArray& probe) { return embedding_reference(probe, ids); }, table, grad_out);
        for (int64_t i = 0; i < grad_ref.numel(); ++i) grad_ref[i] += grad_start[i];
        expect_close(to_host(ctx, grad_table), grad_ref, tolerance_for(DType::F32), "grad_table");
      }
    }
  }
}

// Every id the same: the whole of grad_out sums into one row, in a fixed order.
TEST(OpEmbedding, BackwardAddsRepeatedIdsDeterministically) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    const int64_t count = 500;
    const int64_t channels = 70;
    HostArray ids{{count}, std::vector<double>(static_cast<size_t>(count), 2.0)};
    HostArray grad_out = random_array({count, channels}, rng);
    Tensor ids_tensor = make_tensor(ctx, ids, DType::I32, device);
    Tensor grad_out_tensor = make_tensor(ctx, grad_out, DType::F32, device);
    HostArray zeros{{4, channels}, std::vector<double>(static_cast<size_t>(4 * channels), 0.0)};
    HostArray ref = zeros;
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t c = 0; c < channels; ++c) ref[2 * channels + c] += grad_out[i * channels + c];
    }
    Tensor first = make_tensor(ctx, zeros, DType::F32, device);
    Tensor second = make_tensor(ctx, zeros, DType::F32, device);
    embedding_backward(ctx, first, grad_out_tensor, ids_tensor);
    embedding_backward(ctx, second, grad_out_tensor, ids_tensor);
    const HostArray first_host = to_host(ctx, first);
    expect_close(first_host, ref, tolerance_for(DType::F32), "grad_table");
    EXPECT_EQ(first_host.values, to_host(ctx, second).values) << "two runs differ";
  }
}

// Message of the Error `body` throws ("" if none).
template <typename Body>
std::string error_message(Body body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(OpEmbedding, RejectsIdsOutOfRange) {
  Ctx& ctx = test_ctx();
  for (const Device device : test_devices(ctx)) {
    Tensor table = ctx.empty({7, 4}, DType::F32, device);
    Tensor out = ctx.empty({3, 4}, DType::F32, device);
    Tensor grad_table = ctx.empty({7, 4}, DType::F32, device);
    for (const int32_t bad_id : {7, -1, 1000}) {
      const std::vector<int32_t> values = {0, bad_id, 3};
      const Tensor host_ids = Tensor::from_i32({3}, values);
      Tensor ids = device.is_cpu() ? host_ids : ctx.to_device(host_ids, device);
      const std::string forward = error_message([&] { embedding(ctx, out, table, ids); });
      EXPECT_NE(forward.find("id " + std::to_string(bad_id)), std::string::npos) << forward;
      EXPECT_NE(forward.find("V=7"), std::string::npos) << forward;
      const std::string backward = error_message([&] { embedding_backward(ctx, grad_table, out, ids); });
      EXPECT_NE(backward.find("id " + std::to_string(bad_id)), std::string::npos) << backward;
    }
  }
}

TEST(OpEmbedding, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor table = Tensor::zeros({7, 4}, DType::F32);
  Tensor ids = Tensor::zeros({3}, DType::I32);
  Tensor out = Tensor::zeros({3, 4}, DType::F32);
  embedding(ctx, out, table, ids);  // the good call works
  Tensor float_ids = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(embedding(ctx, out, table, float_ids), Error);
  Tensor ids_2d = Tensor::zeros({3, 1}, DType::I32);
  EXPECT_THROW(embedding(ctx, out, table, ids_2d), Error);
  Tensor out_wrong = Tensor::zeros({3, 5}, DType::F32);
  EXPECT_THROW(embedding(ctx, out_wrong, table, ids), Error);
  Tensor table_1d = Tensor::zeros({7}, DType::F32);
  EXPECT_THROW(embedding(ctx, out, table_1d, ids), Error);
  Tensor int_table = Tensor::zeros({7, 4}, DType::I32);
  EXPECT_THROW(embedding(ctx, out, int_table, ids), Error);

  Tensor grad_bf16 = Tensor::zeros({7, 4}, DType::BF16);
  EXPECT_THROW(embedding_backward(ctx, grad_bf16, out, ids), Error);  // grad_table accumulates in f32
  Tensor grad_table = Tensor::zeros({7, 4}, DType::F32);
  EXPECT_THROW(embedding_backward(ctx, grad_table, out_wrong, ids), Error);
}

}  // namespace
}  // namespace anvil::testing
