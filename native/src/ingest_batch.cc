#include "ingest_batch.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "ingest.h"

#ifndef VLA_BAND_SPIN_US
#define VLA_BAND_SPIN_US 100
#endif

namespace vla {
namespace {

// How long a band thread keeps polling for the next batch after one ends (see BandPool::Work).
constexpr std::chrono::microseconds kSpin{VLA_BAND_SPIN_US};

// Persistent threads waiting for a batch. Created on first use and never destroyed (a blocked
// thread does not keep the process alive; joining at exit would only add shutdown work).
class BandPool {
 public:
  explicit BandPool(size_t workers) {
    for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
  }

  size_t Threads() const { return threads_.size() + 1; }

  void Run(size_t count, void (*task)(void*, size_t), void* context) {
    std::lock_guard<std::mutex> batch(batch_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = task;
      context_ = context;
      count_ = count;
      next_.store(0, std::memory_order_relaxed);
      done_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (count > 1) wake_.notify_all();
    Drain(task, context, count);
    {
      // Close the batch to threads that have not joined it yet: one that joined after the wait
      // below would hold this batch's context (on the caller's stack) once Run returns, and could
      // take a ticket of the next batch and run it with this batch's task.
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = nullptr;
    }
    // Wait for the bands taken by other threads, and for every thread that joined to leave. A
    // thread joins under mutex_, so every one that did is counted in active_ by now.
    while (done_.load(std::memory_order_acquire) < count ||
           active_.load(std::memory_order_acquire) > 0) {
      std::this_thread::yield();
    }
  }

 private:
  void Drain(void (*task)(void*, size_t), void* context, size_t count) {
    for (;;) {
      const size_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= count) return;
      task(context, i);
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void Work() {
    uint64_t seen = 0;
    for (;;) {
      void (*task)(void*, size_t);
      void* context;
      size_t count;
      // A thread asleep on the condition variable starts tens of microseconds after the notify
      // on this VM: poll for the next batch a little while first (yielding, so that any other
      // runnable thread on this core goes first), and sleep only when none comes.
      const auto until = std::chrono::steady_clock::now() + kSpin;
      while (generation_.load(std::memory_order_acquire) == seen &&
             std::chrono::steady_clock::now() < until) {
        std::this_thread::yield();
      }
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_relaxed);
        // The batch this thread woke for has ended (its caller closed it): wait for the next.
        if (task_ == nullptr) continue;
        task = task_;
        context = context_;
        count = count_;
        active_.fetch_add(1, std::memory_order_relaxed);
      }
      Drain(task, context, count);
      active_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::mutex batch_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  void (*task_)(void*, size_t) = nullptr;
  void* context_ = nullptr;
  size_t count_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<size_t> done_{0};
  std::atomic<size_t> active_{0};
  std::vector<std::thread> threads_;
};

BandPool& Pool() {
  static BandPool* pool = [] {
    const size_t hardware = std::max(1u, std::thread::hardware_concurrency());
    return new BandPool(std::min<size_t>(hardware, 4) - 1);
  }();
  return *pool;
}

struct Band {
  size_t job;
  int r0, r1;
};

struct Batch {
  std::vector<IngestJob> jobs;
  std::vector<Band> bands;
};

void RunBand(void* context, size_t i) {
  const Batch& batch = *static_cast<const Batch*>(context);
  const Band& band = batch.bands[i];
  IngestRows(batch.jobs[band.job], band.r0, band.r1);
}

}  // namespace

void RunBands(size_t count, void (*task)(void*, size_t), void* context) {
  Pool().Run(count, task, context);
}

size_t BandThreads() { return Pool().Threads(); }

Napi::Value IngestFramesBinding(const Napi::CallbackInfo& info) {
  const Napi::Array list = info[0].As<Napi::Array>();
  Batch batch;
  const uint32_t n = list.Length();
  batch.jobs.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const Napi::Array args = list.Get(i).As<Napi::Array>();
    Napi::Value values[7];
    for (uint32_t k = 0; k < 7; ++k) values[k] = args.Get(k);
    batch.jobs.push_back(JobOf(values));
  }
  if (n == 0) return info.Env().Undefined();
  // Bands per frame so that the bands divide evenly among the threads: 3 frames on 2 threads take
  // halves (1.5 frames each), 2 or 4 frames take whole frames.
  const size_t threads = BandThreads();
  const size_t per_frame = threads / std::gcd(threads, static_cast<size_t>(n));
  for (size_t j = 0; j < n; ++j) {
    const int rows = OutputRows(batch.jobs[j]);
    const size_t parts = std::min<size_t>(per_frame, static_cast<size_t>(rows));
    for (size_t p = 0; p < parts; ++p) {
      batch.bands.push_back(Band{j, static_cast<int>(rows * p / parts),
                                 static_cast<int>(rows * (p + 1) / parts)});
    }
  }
  RunBands(batch.bands.size(), RunBand, &batch);
  return info.Env().Undefined();
}

}  // namespace vla
