#include "event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "recforge/core/error.h"

namespace recforge::serve {
namespace {

[[noreturn]] void ThrowIo(const std::filesystem::path& path, const char* what) {
  throw IoError(fmt::format("event log {}: {} failed: {}", path.string(), what, std::strerror(errno)));
}

void WriteAll(int fd, const std::string& data, const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowIo(path, "write");
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

EventLog::EventLog(std::filesystem::path path) : path_(std::move(path)) {
  std::error_code ec;
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path(), ec);
  const bool existed = std::filesystem::exists(path_, ec);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) ThrowIo(path_, "open");
  struct stat st {};
  if (::fstat(fd_, &st) != 0) ThrowIo(path_, "stat");
  std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  // Cut a torn last line (a crash in the middle of an append that was never
  // acknowledged), so the next append does not glue onto it.
  std::uint64_t keep = size;
  while (keep > 0) {
    char c = 0;
    if (::pread(fd_, &c, 1, static_cast<off_t>(keep - 1)) != 1) ThrowIo(path_, "read");
    if (c == '\n') break;
    --keep;
  }
  if (keep != size) {
    if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) ThrowIo(path_, "truncate");
    if (::fdatasync(fd_) != 0) ThrowIo(path_, "fsync");
  }
  bytes_ = keep;
  if (::lseek(fd_, static_cast<off_t>(bytes_), SEEK_SET) < 0) ThrowIo(path_, "seek");
  if (!existed) {
    // Make the new directory entry durable too.
    const auto dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
    int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }
}

EventLog::~EventLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::string EventLog::ToLine(const StoredEvent& event) {
  nlohmann::json line{{"user_id", event.user_id},
                      {"item_id", event.item_id},
                      {"rating", event.rating},
                      {"timestamp", event.timestamp}};
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void EventLog::Append(std::span<const StoredEvent> events) {
  if (events.empty()) return;
  std::string data;
  for (const auto& event : events) data += ToLine(event);
  std::lock_guard lock(mutex_);
  try {
    WriteAll(fd_, data, path_);
    if (::fdatasync(fd_) != 0) ThrowIo(path_, "fsync");
  } catch (...) {
    // Roll back to the last complete line so the file stays a sequence of whole,
    // acknowledged events.
    if (::ftruncate(fd_, static_cast<off_t>(bytes_)) == 0) ::lseek(fd_, static_cast<off_t>(bytes_), SEEK_SET);
    throw;
  }
  bytes_ += data.size();
  appended_ += events.size();
}

std::vector<StoredEvent> EventLog::ReadFrom(std::uint64_t from, std::uint64_t* end, std::uint64_t* skipped) const {
  std::uint64_t limit = 0;
  {
    std::lock_guard lock(mutex_);
    limit = bytes_;
  }
  if (end) *end = limit;
  if (skipped) *skipped = 0;
  std::vector<StoredEvent> events;
  if (from >= limit) return events;
  std::string data(limit - from, '\0');
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pread(fd_, data.data() + done, data.size() - done, static_cast<off_t>(from + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ThrowIo(path_, "read");
    done += static_cast<std::size_t>(n);
  }
  std::size_t begin = 0;
  while (begin < data.size()) {
    std::size_t stop = data.find('\n', begin);
    if (stop == std::string::npos) stop = data.size();
    std::string_view line(data.data() + begin, stop - begin);
    begin = stop + 1;
    if (line.empty()) continue;
    try {
      auto json = nlohmann::json::parse(line);
      StoredEvent event;
      event.user_id = json.at("user_id").get<std::string>();
      event.item_id = json.at("item_id").get<std::string>();
      event.rating = json.value("rating", 1.0f);
      event.timestamp = json.value("timestamp", std::int64_t{0});
      events.push_back(std::move(event));
    } catch (const std::exception&) {
      if (skipped) ++*skipped;
    }
  }
  return events;
}

std::uint64_t EventLog::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

std::uint64_t EventLog::events_appended() const {
  std::lock_guard lock(mutex_);
  return appended_;
}

}  // namespace recforge::serve
