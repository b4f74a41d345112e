#pragma once
// A fixed pool of worker threads for data-parallel loops on the CPU backend.
#include <condition_variable>
#include <cstdint>
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
  void worker_loop(int worker_index);
  void run_chunks(int participant);

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // The job being run (guarded by mutex_).
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t job_size_ = 0;
  int64_t chunk_size_ = 0;
  int64_t num_chunks_ = 0;
  int64_t next_chunk_ = 0;
  int pending_workers_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  bool in_parallel_ = false;
  std::exception_ptr first_error_;
};

}  // namespace anvil
