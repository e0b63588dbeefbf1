#include "recforge/core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <thread>

#include <fmt/format.h>

namespace recforge {

int HardwareThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ProgressBar::ProgressBar(bool enabled)
    : active_(enabled && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Update(std::string_view stage, std::uint64_t done, std::uint64_t total) {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  bool stage_changed = stage != last_stage_;
  if (!stage_changed && now - last_draw_ < std::chrono::milliseconds(100) && done != total) return;
  last_draw_ = now;
  last_stage_ = std::string(stage);
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line;
  if (total > 0) {
    double fraction = static_cast<double>(done) / static_cast<double>(total);
    if (fraction > 1) fraction = 1;
    constexpr int kWidth = 30;
    int filled = static_cast<int>(fraction * kWidth);
    line = fmt::format("\r{:<18.18} [{}{}] {:5.1f}% {:.1f}s", stage, std::string(filled, '#'),
                       std::string(kWidth - filled, '.'), fraction * 100, elapsed);
  } else {
    line = fmt::format("\r{:<18.18} {} {:.1f}s", stage, done, elapsed);
  }
  line += "\x1b[K";
  std::fwrite(line.data(), 1, line.size(), stderr);
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (drawn_) std::fputs("\r\x1b[K", stderr);
  drawn_ = false;
}

ProgressFn ProgressBar::Callback() {
  return [this](std::string_view stage, std::uint64_t done, std::uint64_t total) {
    Update(stage, done, total);
  };
}

}  // namespace recforge
