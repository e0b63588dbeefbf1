// The durable event log of `recforge serve`: an append-only file of JSON lines, one
// event per line ({"user_id", "item_id", "rating", "timestamp"}), the input of
// `recforge data merge` later.
//
// Durability: Append writes the lines with one write() and fdatasync()s before it
// returns, so an event acknowledged with a 2xx is on disk even if the process is
// killed (-9) right after. A line torn by a crash in the middle of a write was never
// acknowledged; Open cuts it off so the next append starts on a fresh line.
//
// Thread-safety: every method may be called from many threads; appends are serialised.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace recforge::serve {

struct StoredEvent {
  std::string user_id;
  std::string item_id;
  float rating = 1;
  std::int64_t timestamp = 0;  // Unix seconds
};

class EventLog {
 public:
  // Opens (creating it and its folder if missing) the log at `path`. Throws IoError.
  explicit EventLog(std::filesystem::path path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Appends the events and makes them durable (fdatasync) before returning.
  // Throws IoError; on error nothing is acknowledged (a partial line is cut off at the
  // next open).
  void Append(std::span<const StoredEvent> events);

  // The events stored from byte `from` up to the end as of this call; `*end` receives
  // that end (pass it as `from` next time to read only what came after). Lines that do
  // not parse are skipped and counted in `*skipped` (if given).
  std::vector<StoredEvent> ReadFrom(std::uint64_t from, std::uint64_t* end,
                                    std::uint64_t* skipped = nullptr) const;

  std::uint64_t bytes() const;        // bytes in the file
  std::uint64_t events_appended() const;  // events appended by this process
  const std::filesystem::path& path() const { return path_; }

  // One event as its JSON line (with the trailing newline).
  static std::string ToLine(const StoredEvent& event);

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  mutable std::mutex mutex_;
  std::uint64_t bytes_ = 0;
  std::uint64_t appended_ = 0;
};

}  // namespace recforge::serve
