// The kernel's threads: one pool per process, started on first use and kept, and how many of its
// threads a call may use. Included by recurrence.cc (one translation unit, one library).
//
// Why a pool of its own: a call runs for milliseconds, so starting threads in every call (as the
// kernel once did, one per direction) costs little, but a training step makes two calls per layer
// and the threads must then be found again; a pool's threads sleep on a condition variable between
// calls and cost nothing while XLA runs the rest of the step (no spinning: the machine is shared).
//
//   pool().run(n, helpers, task)  runs task(0) .. task(n - 1) on the calling thread and up to
//                                 `helpers` pool threads, and returns when all have finished.
//
// Tasks are taken one at a time under the pool's lock; they are coarse (a block of rows over all T
// steps), so the lock is taken a few times per call. Which thread runs which task never changes a
// result: the tasks write disjoint memory, and any sum across tasks is done afterwards in a fixed
// order by the caller's next run.

#pragma once

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

// Internal linkage throughout (the unnamed namespace): two builds of the kernel loaded in one process
// (from two LSTMKIT_HOMEs, say) each keep their own pool, and the symbols stay out of the library's table.
namespace lstmkit {
namespace {

// How many threads a call uses: set from Python (LSTMKIT_THREADS, else the process's CPUs), read
// at every call; 0 until set, which means the CPUs this process may run on.
std::atomic<int> g_threads{0};

inline int cpus_allowed() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

inline int kernel_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : cpus_allowed();
}

class Pool {
 public:
  using Task = std::function<void(int64_t)>;

  explicit Pool(pid_t owner) : owner_(owner) {}
  pid_t owner() const { return owner_; }

  // How many threads this pool has started so far (they are never stopped).
  int started() {
    std::lock_guard<std::mutex> lock(mutex_);
    return started_;
  }

  void run(int64_t n, int helpers, const Task& task) {
    helpers = static_cast<int>(std::min<int64_t>(helpers, n - 1));
    // One call at a time owns the pool; a second one, concurrent (XLA may run two independent
    // custom calls at once), runs its tasks on its own thread rather than wait.
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (helpers <= 0 || !busy.owns_lock()) {
      for (int64_t i = 0; i < n; ++i) task(i);
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    while (started_ < helpers) {  // threads are started once each, the first time a call wants them
      try {
        std::thread(&Pool::serve, this, started_, generation_).detach();
        ++started_;
      } catch (const std::system_error&) {  // no more threads to be had: work with those there are
        helpers = started_;
        break;
      }
    }
    task_ = &task, n_ = n, next_ = 0, remaining_ = n, helpers_ = helpers, ++generation_;
    wake_.notify_all();
    drain(lock);
    done_.wait(lock, [&] { return remaining_ == 0; });
    task_ = nullptr, n_ = 0, next_ = 0;
  }

 private:
  // A pool thread: sleep until a new call, help with it if the call wants this many threads.
  void serve(int index, uint64_t seen) {
    pthread_setname_np(pthread_self(), "lstmkit-pool");  // as /proc/PID/task/*/comm shows it: tests count them
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index < helpers_) drain(lock);
    }
  }

  // Takes tasks until none is left, running each outside the lock; returns with the lock held.
  void drain(std::unique_lock<std::mutex>& lock) {
    while (next_ < n_) {
      const int64_t i = next_++;
      const Task* task = task_;
      lock.unlock();
      (*task)(i);
      lock.lock();
      if (--remaining_ == 0) done_.notify_all();
    }
  }

  const pid_t owner_;
  std::mutex busy_;   // held by the call that owns the pool
  std::mutex mutex_;  // guards everything below
  std::condition_variable wake_, done_;
  int started_ = 0, helpers_ = 0;
  uint64_t generation_ = 0;  // counts calls, so a thread knows a new one from the one it served
  const Task* task_ = nullptr;
  int64_t n_ = 0, next_ = 0, remaining_ = 0;
};

// The process's pool. Never freed: its threads are detached and live as long as the process. A
// child forked from a process that had one starts a fresh one (the parent's threads do not exist
// in the child, and its locks may have been held at the fork).
inline Pool& pool() {
  static std::atomic<Pool*> current{nullptr};
  Pool* p = current.load();
  if (p && p->owner() == getpid()) return *p;
  Pool* fresh = new Pool(getpid());
  if (current.compare_exchange_strong(p, fresh)) return *fresh;
  delete fresh;  // another thread installed one first
  return *p;
}

// Floats aligned to a 64-byte cache line, so that buffers of different threads share no line.
struct FreeFloats {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], FreeFloats>;

inline AlignedFloats aligned_floats(int64_t n) {
  size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
  return AlignedFloats(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

}  // namespace
}  // namespace lstmkit
