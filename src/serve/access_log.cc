#include "access_log.h"

#include <unistd.h>

#include <cerrno>

namespace recforge::serve {

namespace {
constexpr std::size_t kEagerFlush = 64u << 10;
}

AccessLogWriter::AccessLogWriter(int fd, std::chrono::milliseconds flush_interval, std::size_t max_pending)
    : fd_(fd), interval_(flush_interval), max_pending_(max_pending) {
  pending_.reserve(kEagerFlush * 2);
  thread_ = std::thread([this] { Run(); });
}

AccessLogWriter::~AccessLogWriter() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void AccessLogWriter::Append(std::string_view line) {
  bool eager = false;
  {
    std::lock_guard lock(mutex_);
    if (pending_.size() + line.size() > max_pending_) {
      ++dropped_;
      return;
    }
    pending_.append(line);
    ++appended_;
    eager = pending_.size() >= kEagerFlush && pending_.size() - line.size() < kEagerFlush;
  }
  if (eager) wake_.notify_one();
}

void AccessLogWriter::Flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = appended_;
  flush_requested_ = true;
  wake_.notify_one();
  flushed_.wait(lock, [&] { return written_ >= target || stop_; });
}

std::uint64_t AccessLogWriter::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void AccessLogWriter::WriteAll(const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a closed stderr: the lines are lost, the server goes on
    done += static_cast<std::size_t>(n);
  }
}

void AccessLogWriter::Run() {
  std::string batch;
  batch.reserve(kEagerFlush * 2);
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, interval_, [&] { return stop_ || flush_requested_ || pending_.size() >= kEagerFlush; });
    flush_requested_ = false;
    const bool stopping = stop_;
    const std::uint64_t generation = appended_;
    batch.swap(pending_);
    lock.unlock();
    if (!batch.empty()) WriteAll(batch);
    batch.clear();
    lock.lock();
    written_ = generation;
    flushed_.notify_all();
    if (stopping && pending_.empty()) return;
  }
}

}  // namespace recforge::serve
