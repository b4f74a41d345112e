#include "anvil/core/thread_pool.h"

#include <algorithm>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace anvil {

namespace {

// How long an idle worker (or a caller waiting for claimed chunks) spins before it blocks:
// long enough to bridge the gap between the ops of one forward step, short enough not to
// burn a core when the pool is idle.
constexpr int kSpinIterations = 1 << 14;
constexpr int64_t kMaxChunks = 0xFFFF;

void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#endif
}

uint64_t pack_claims(uint32_t job, int64_t chunks, int64_t next) {
  return (uint64_t{job} << 32) | (static_cast<uint64_t>(chunks) << 16) | static_cast<uint64_t>(next);
}
int64_t claims_total(uint64_t claims) { return static_cast<int64_t>((claims >> 16) & 0xFFFF); }
int64_t claims_next(uint64_t claims) { return static_cast<int64_t>(claims & 0xFFFF); }

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    const std::lock_guard lock(mutex_);
    stopping_.store(true);
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run_chunk(int64_t chunk) {
  const int64_t chunk_size = chunk_size_.load(std::memory_order_relaxed);
  const int64_t begin = chunk * chunk_size;
  const int64_t end = std::min(job_size_.load(std::memory_order_relaxed), begin + chunk_size);
  try {
    (*body_.load(std::memory_order_relaxed))(begin, end);
  } catch (...) {
    const std::lock_guard lock(mutex_);
    if (!first_error_) first_error_ = std::current_exception();
  }
  // The last chunk done wakes a caller that stopped spinning (under the mutex: no lost wake-up).
  const uint64_t claims = claims_.load(std::memory_order_acquire);
  if (chunks_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == claims_total(claims)) {
    const std::lock_guard lock(mutex_);
    work_done_.notify_one();
  }
}

void ThreadPool::run_chunks() {
  uint64_t claims = claims_.load(std::memory_order_acquire);
  while (claims_next(claims) < claims_total(claims)) {
    // Success means the job was still open, so the fields read in run_chunk are its own.
    if (claims_.compare_exchange_weak(claims, claims + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      run_chunk(claims_next(claims));
      claims = claims_.load(std::memory_order_acquire);
    }
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen_job = 0;
  const auto has_news = [&] { return stopping_.load() || job_.load(std::memory_order_acquire) != seen_job; };
  for (;;) {
    for (int spin = 0; spin < kSpinIterations && !has_news(); ++spin) cpu_relax();
    if (!has_news()) {
      std::unique_lock lock(mutex_);
      sleepers_.fetch_add(1);
      work_ready_.wait(lock, has_news);
      sleepers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen_job = job_.load(std::memory_order_acquire);
    run_chunks();
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
    first_error_ = nullptr;
  }
  if (serial) {
    body(0, n);
    return;
  }
  // A few chunks per thread balance uneven work.
  int64_t num_chunks = std::min({max_chunks, static_cast<int64_t>(num_threads_) * 4, kMaxChunks});
  const int64_t chunk_size = (n + num_chunks - 1) / num_chunks;
  num_chunks = (n + chunk_size - 1) / chunk_size;
  body_.store(&body, std::memory_order_relaxed);
  job_size_.store(n, std::memory_order_relaxed);
  chunk_size_.store(chunk_size, std::memory_order_relaxed);
  chunks_done_.store(0, std::memory_order_relaxed);
  const uint32_t job = job_.load(std::memory_order_relaxed) + 1;
  claims_.store(pack_claims(job, num_chunks, 0), std::memory_order_release);
  {
    // A worker counts itself as a sleeper under the mutex before it checks for news, so one
    // not counted here sees the new job without being woken.
    const std::lock_guard lock(mutex_);
    job_.store(job, std::memory_order_release);
  }
  if (sleepers_.load() > 0) work_ready_.notify_all();
  run_chunks();
  const auto all_done = [&] { return chunks_done_.load(std::memory_order_acquire) == num_chunks; };
  for (int spin = 0; spin < kSpinIterations && !all_done(); ++spin) cpu_relax();
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    work_done_.wait(lock, all_done);
    in_parallel_ = false;
    error = first_error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace anvil
