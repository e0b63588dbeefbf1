// The access log of `recforge serve`, off the request path: a request appends its line
// to an in-memory buffer (a short lock and a copy); a background thread writes the
// buffer to the file descriptor (stderr) every `flush_interval`, or sooner when it
// holds 64 KiB. A stalled reader of stderr never blocks a request: past `max_pending`
// bytes lines are dropped and counted (dropped()). Flush() writes everything pending
// (the server calls it when it stops). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace recforge::serve {

class AccessLogWriter {
 public:
  explicit AccessLogWriter(int fd, std::chrono::milliseconds flush_interval = std::chrono::milliseconds(100),
                           std::size_t max_pending = 8u << 20);
  ~AccessLogWriter();  // flushes
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  void Append(std::string_view line);  // one whole line, with its '\n'
  void Flush();
  std::uint64_t dropped() const;

 private:
  void Run();
  void WriteAll(const std::string& text);

  int fd_;
  std::chrono::milliseconds interval_;
  std::size_t max_pending_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, flushed_;
  std::string pending_;
  std::uint64_t dropped_ = 0;
  std::uint64_t appended_ = 0, written_ = 0;  // generations, for Flush()
  bool stop_ = false;
  bool flush_requested_ = false;
  std::thread thread_;
};

}  // namespace recforge::serve
