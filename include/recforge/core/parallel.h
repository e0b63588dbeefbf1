// The one parallel-loop wrapper over OpenMP (STYLE.md §7): explicit thread count,
// a serial fast path, exception capture (the first exception thrown by any
// iteration is rethrown on the calling thread after the loop), and a schedule.
#pragma once

#include <cstdint>
#include <exception>
#include <mutex>

namespace recforge {

enum class Schedule { kStatic, kDynamic };

// Calls fn(i) for i in [begin, end) on `threads` threads.
// kDynamic uses chunks of `chunk` iterations: use it for skewed work (per-user loops).
// fn must be safe to call concurrently for distinct i.
template <typename Index, typename Fn>
void ParallelFor(Index begin, Index end, int threads, Fn&& fn, Schedule schedule = Schedule::kStatic,
                 std::int64_t chunk = 64) {
  if (end <= begin) return;
  if (threads <= 1 || end - begin == 1) {
    for (Index i = begin; i < end; ++i) fn(i);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  const std::int64_t n = static_cast<std::int64_t>(end - begin);
  auto guarded = [&](std::int64_t k) {
    try {
      fn(static_cast<Index>(begin + k));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  if (schedule == Schedule::kDynamic) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, chunk)
    for (std::int64_t k = 0; k < n; ++k) guarded(k);
  } else {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t k = 0; k < n; ++k) guarded(k);
  }
  if (error) std::rethrow_exception(error);
}

// Runs fn(thread_index) once on each of `threads` threads (thread_index in [0, threads)).
// Useful for per-thread scratch and for splitting a range into contiguous parts.
template <typename Fn>
void ParallelRegion(int threads, Fn&& fn) {
  ParallelFor<int>(0, threads < 1 ? 1 : threads, threads, fn, Schedule::kStatic);
}

}  // namespace recforge
