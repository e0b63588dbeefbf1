// A levelled logger. Library code logs through the Logger held by its Context and
// never writes to stdout. The level is checked before anything is formatted.
#pragma once

#include <fmt/format.h>

#include <mutex>
#include <string>
#include <string_view>

namespace recforge {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// Parses "debug|info|warn|error|off"; throws InvalidArgument listing the values.
LogLevel ParseLogLevel(std::string_view name);

// Thread-safe: lines from several threads never interleave.
class Logger {
 public:
  enum class Format { kText, kJsonLines };

  explicit Logger(LogLevel level = LogLevel::kInfo, Format format = Format::kText)
      : level_(level), format_(format) {}

  bool Enabled(LogLevel level) const { return level >= level_; }
  LogLevel level() const { return level_; }
  void set_level(LogLevel level) { level_ = level; }
  void set_format(Format format) { format_ = format; }

  template <typename... Args>
  void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (!Enabled(level)) return;
    Write(level, fmt::format(format, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void Debug(fmt::format_string<Args...> f, Args&&... a) { Log(LogLevel::kDebug, f, std::forward<Args>(a)...); }
  template <typename... Args>
  void Info(fmt::format_string<Args...> f, Args&&... a) { Log(LogLevel::kInfo, f, std::forward<Args>(a)...); }
  template <typename... Args>
  void Warn(fmt::format_string<Args...> f, Args&&... a) { Log(LogLevel::kWarn, f, std::forward<Args>(a)...); }
  template <typename... Args>
  void Error(fmt::format_string<Args...> f, Args&&... a) { Log(LogLevel::kError, f, std::forward<Args>(a)...); }

  // Writes one already-formatted message to stderr.
  void Write(LogLevel level, std::string_view message);

  // A logger that discards everything (for tests and library defaults).
  static Logger& Null();

 private:
  LogLevel level_;
  Format format_;
  std::mutex mutex_;
};

}  // namespace recforge
