#pragma once
// A fixed pool of worker threads for data-parallel loops on the CPU backend.
//
// A decode step runs hundreds of small loops per token, so a loop must start and end in
// microseconds: idle workers spin for a short while before they sleep, chunks are claimed
// with one compare-and-swap, and the caller waits only for chunks that were claimed (never
// for a worker that has not woken up yet, which matters when the machine is oversubscribed).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace anvil {

class ThreadPool {
 public:
  // `num_threads` <= 0 means one per hardware thread. The caller's thread takes part,
  // so num_threads - 1 workers are started.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int num_threads() const { return num_threads_; }

  // Calls body(begin, end) over [0, n) in chunks of at least `grain` items, in parallel,
  // and returns when all are done. The first exception thrown by a chunk is rethrown.
  // Nested calls from inside a body run serially.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

 private:
  void worker_loop();
  // Claims and runs chunks of the current job until none is left.
  void run_chunks();
  void run_chunk(int64_t chunk);

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // The current job. `claims_` packs (job number: 32 bits, chunk count: 16, next chunk: 16);
  // a chunk is claimed by a compare-and-swap on it, so a worker that read the fields of a
  // job it then fails to claim from never runs them. The fields are atomics only so that a
  // stale worker's read is not a data race; they are written before `claims_` is published.
  std::atomic<uint64_t> claims_{0};
  std::atomic<const std::function<void(int64_t, int64_t)>*> body_{nullptr};
  std::atomic<int64_t> job_size_{0};
  std::atomic<int64_t> chunk_size_{0};
  std::atomic<int64_t> chunks_done_{0};
  std::atomic<uint32_t> job_{0};  // jobs published so far: what idle workers watch
  std::atomic<int> sleepers_{0};  // workers blocked on work_ready_
  std::atomic<bool> stopping_{false};
  bool in_parallel_ = false;        // guarded by mutex_
  std::exception_ptr first_error_;  // guarded by mutex_
};

}  // namespace anvil
