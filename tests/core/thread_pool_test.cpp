// ThreadPool::parallel_for: exact coverage of [0, n) for many sizes and grains, exception
// propagation, nested and concurrent calls (serial, no deadlock).
#include "anvil/core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace anvil {
namespace {

// Runs `body` on another thread and ends the test binary if it does not finish in time:
// a deadlocked pool would otherwise hang the whole suite.
void run_with_deadline(const std::function<void()>& body, std::chrono::seconds deadline = std::chrono::seconds(60)) {
  std::packaged_task<void()> task(body);
  std::future<void> done = task.get_future();
  std::thread runner(std::move(task));
  if (done.wait_for(deadline) != std::future_status::ready) {
    std::fprintf(stderr, "parallel_for did not finish within the deadline (deadlock?)\n");
    std::_Exit(1);
  }
  runner.join();
  done.get();  // rethrows a failure from the body
}

// Calls parallel_for and checks every index was visited once, by chunks inside [0, n)
// of at least `grain` items (except the one ending at n).
void expect_exact_cover(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> visits(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::atomic<int> short_chunks{0};
  std::atomic<int> bad_ranges{0};
  pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    if (begin < 0 || end > n || begin >= end) {
      ++bad_ranges;
      return;
    }
    if (end - begin < grain && end != n) ++short_chunks;
    for (int64_t i = begin; i < end; ++i) visits[static_cast<size_t>(i)].fetch_add(1);
  });
  EXPECT_EQ(bad_ranges.load(), 0) << "n=" << n << " grain=" << grain;
  EXPECT_EQ(short_chunks.load(), 0) << "n=" << n << " grain=" << grain;
  int64_t wrong = 0;
  for (const auto& count : visits) wrong += count.load() != 1 ? 1 : 0;
  EXPECT_EQ(wrong, 0) << "indices not visited exactly once, n=" << n << " grain=" << grain
                      << " threads=" << pool.num_threads();
}

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  run_with_deadline([] {
    for (const int threads : {1, 2, 3, 8}) {
      ThreadPool pool(threads);
      EXPECT_EQ(pool.num_threads(), threads);
      for (const int64_t n : {0, 1, 2, 7, 33, 64, 257, 1000, 10007}) {
        for (const int64_t grain : {0, 1, 3, 16, 100, 5000}) expect_exact_cover(pool, n, grain);
      }
    }
  });
}

TEST(ThreadPool, DefaultSizeAndEmptyRanges) {
  ThreadPool pool;
  EXPECT_GE(pool.num_threads(), 1);
  int calls = 0;
  pool.parallel_for(0, 1, [&](int64_t, int64_t) { ++calls; });
  pool.parallel_for(-5, 1, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, ExceptionsPropagateAndPoolStaysUsable) {
  run_with_deadline([] {
    ThreadPool pool(4);
    for (int round = 0; round < 20; ++round) {
      const int64_t bad_index = 13 * round + 5;
      EXPECT_THROW(pool.parallel_for(300, 4,
                                     [&](int64_t begin, int64_t end) {
                                       if (begin <= bad_index && bad_index < end)
                                         throw std::runtime_error("chunk failed");
                                     }),
                   std::runtime_error);
      expect_exact_cover(pool, 300, 4);  // the pool still works after a failure
    }
    // Serial path (one chunk) propagates too, with the original message.
    try {
      pool.parallel_for(3, 10, [](int64_t, int64_t) { throw std::invalid_argument("serial failure"); });
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& error) {
      EXPECT_STREQ(error.what(), "serial failure");
    }
  });
}

TEST(ThreadPool, NestedCallsRunSeriallyWithoutDeadlock) {
  run_with_deadline([] {
    ThreadPool pool(4);
    constexpr int64_t kOuter = 64;
    constexpr int64_t kInner = 50;
    std::vector<std::atomic<int>> visits(kOuter * kInner);
    std::atomic<int> inner_calls_split{0};
    pool.parallel_for(kOuter, 1, [&](int64_t begin, int64_t end) {
      for (int64_t outer = begin; outer < end; ++outer) {
        int inner_chunks = 0;
        pool.parallel_for(kInner, 1, [&](int64_t inner_begin, int64_t inner_end) {
          ++inner_chunks;
          for (int64_t i = inner_begin; i < inner_end; ++i) visits[static_cast<size_t>(outer * kInner + i)]++;
        });
        if (inner_chunks != 1) ++inner_calls_split;  // nested: one serial call over the whole range
      }
    });
    EXPECT_EQ(inner_calls_split.load(), 0);
    for (const auto& count : visits) ASSERT_EQ(count.load(), 1);
  });
}

TEST(ThreadPool, ConcurrentCallersFromOtherThreads) {
  run_with_deadline([] {
    ThreadPool pool(3);
    std::vector<std::thread> callers;
    std::atomic<int> failures{0};
    for (int caller = 0; caller < 4; ++caller) {
      callers.emplace_back([&pool, &failures, caller] {
        for (int round = 0; round < 25; ++round) {
          const int64_t n = 100 + 37 * caller + round;
          std::vector<std::atomic<int>> visits(static_cast<size_t>(n));
          pool.parallel_for(n, 2, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) visits[static_cast<size_t>(i)]++;
          });
          for (const auto& count : visits) failures += count.load() != 1 ? 1 : 0;
        }
      });
    }
    for (std::thread& caller : callers) caller.join();
    EXPECT_EQ(failures.load(), 0);
  });
}

// With enough chunks the work really spreads: each chunk waits (bounded) until a second
// thread has joined in.
TEST(ThreadPool, WorkRunsOnSeveralThreads) {
  run_with_deadline([] {
    ThreadPool pool(4);
    std::mutex mutex;
    std::set<std::thread::id> seen;
    pool.parallel_for(64, 1, [&](int64_t, int64_t) {
      {
        const std::lock_guard lock(mutex);
        seen.insert(std::this_thread::get_id());
      }
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (std::chrono::steady_clock::now() < give_up) {
        {
          const std::lock_guard lock(mutex);
          if (seen.size() >= 2) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    EXPECT_GE(seen.size(), 2U);
  });
}

}  // namespace
}  // namespace anvil
