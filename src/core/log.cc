#include "recforge/core/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

#include "recforge/core/error.h"

namespace recforge {
namespace {

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

void AppendJsonEscaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
}

}  // namespace

LogLevel ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  if (name == "off" || name == "quiet") return LogLevel::kOff;
  throw InvalidArgument(fmt::format("log level '{}' is not one of: debug, info, warn, error, off", name));
}

void Logger::Write(LogLevel level, std::string_view message) {
  std::string line;
  if (format_ == Format::kJsonLines) {
    auto now = std::chrono::system_clock::now();
    double seconds = std::chrono::duration<double>(now.time_since_epoch()).count();
    line = fmt::format("{{\"ts\":{:.3f},\"level\":\"{}\",\"msg\":\"", seconds, LevelName(level));
    AppendJsonEscaped(line, message);
    line += "\"}\n";
  } else {
    line = fmt::format("[{}] {}\n", LevelName(level), message);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

Logger& Logger::Null() {
  static Logger null_logger(LogLevel::kOff);
  return null_logger;
}

}  // namespace recforge
