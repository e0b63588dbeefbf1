// The explicit execution context passed down to library code (STYLE.md §7):
// thread count, seed, logger and progress sink. Library code never reads ambient
// OpenMP settings; it uses ctx.threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "recforge/core/log.h"

namespace recforge {

// Progress of a long operation: `done` out of `total` units (total 0 = unknown).
// Called from one thread at a time, at most a few times per second by convention.
using ProgressFn = std::function<void(std::string_view stage, std::uint64_t done, std::uint64_t total)>;

struct Context {
  int threads = 1;              // worker threads for parallel loops (>= 1)
  std::uint64_t seed = 42;      // root seed; every stochastic step derives from it
  Logger* logger = &Logger::Null();
  ProgressFn progress;          // may be empty

  Logger& log() const { return *logger; }
  void ReportProgress(std::string_view stage, std::uint64_t done, std::uint64_t total) const {
    if (progress) progress(stage, done, total);
  }
};

// Number of hardware threads (at least 1).
int HardwareThreads();

}  // namespace recforge
