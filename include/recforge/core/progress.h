// A terminal progress bar for long work. It draws only when stderr is a terminal
// and redraws at most ~10 times per second, so it costs nothing in pipelines and CI.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "recforge/core/context.h"

namespace recforge {

class ProgressBar {
 public:
  // enabled=false (or stderr not a TTY) makes every call a no-op.
  explicit ProgressBar(bool enabled = true);
  ~ProgressBar();

  void Update(std::string_view stage, std::uint64_t done, std::uint64_t total);
  void Finish();  // clears the line

  // A ProgressFn bound to this bar, to put into a Context.
  ProgressFn Callback();

 private:
  bool active_;
  bool drawn_ = false;
  std::string last_stage_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mutex_;
};

}  // namespace recforge
