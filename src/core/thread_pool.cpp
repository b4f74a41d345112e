#include "anvil/core/thread_pool.h"

#include <algorithm>

namespace anvil {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run_chunks(int /*participant*/) {
  for (;;) {
    int64_t chunk = 0;
    {
      const std::lock_guard lock(mutex_);
      if (next_chunk_ >= num_chunks_) return;
      chunk = next_chunk_++;
    }
    const int64_t begin = chunk * chunk_size_;
    const int64_t end = std::min(job_size_, begin + chunk_size_);
    try {
      (*body_)(begin, end);
    } catch (...) {
      const std::lock_guard lock(mutex_);
      if (!first_error_) first_error_ = std::current_exception();
      next_chunk_ = num_chunks_;  // stop handing out work
    }
  }
}

void ThreadPool::worker_loop(int worker_index) {
  uint64_t seen_generation = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
      if (stopping_) return;
      seen_generation = generation_;
    }
    run_chunks(worker_index);
    {
      const std::lock_guard lock(mutex_);
      if (--pending_workers_ == 0) work_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = std::max<int64_t>(n / grain, 1);  // so every chunk has >= grain items
  bool serial = workers_.empty() || max_chunks == 1;
  {
    const std::lock_guard lock(mutex_);
    serial = serial || in_parallel_;
    if (!serial) in_parallel_ = true;
  }
  if (serial) {
    body(0, n);
    return;
  }
  {
    const std::lock_guard lock(mutex_);
    // A few chunks per thread balance uneven work without much locking.
    num_chunks_ = std::min<int64_t>(max_chunks, static_cast<int64_t>(num_threads_) * 4);
    chunk_size_ = (n + num_chunks_ - 1) / num_chunks_;
    num_chunks_ = (n + chunk_size_ - 1) / chunk_size_;
    job_size_ = n;
    next_chunk_ = 0;
    body_ = &body;
    first_error_ = nullptr;
    pending_workers_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  work_ready_.notify_all();
  run_chunks(0);
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    work_done_.wait(lock, [&] { return pending_workers_ == 0; });
    body_ = nullptr;
    in_parallel_ = false;
    error = first_error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace anvil
