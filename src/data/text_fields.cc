#include "recforge/data/text_fields.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "recforge/core/error.h"

namespace recforge::data {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::size_t SplitSimple(std::string_view line, char delimiter, std::string_view* fields,
                        std::size_t max_fields) {
  std::size_t count = 0;
  const char* p = line.data();
  const char* end = p + line.size();
  while (true) {
    const char* hit = static_cast<const char*>(std::memchr(p, delimiter, static_cast<std::size_t>(end - p)));
    const char* field_end = hit == nullptr ? end : hit;
    if (count < max_fields) fields[count] = std::string_view(p, static_cast<std::size_t>(field_end - p));
    ++count;
    if (hit == nullptr) break;
    p = hit + 1;
  }
  return count;
}

std::size_t SplitOn(std::string_view line, std::string_view separator, std::string_view* fields,
                    std::size_t max_fields) {
  std::size_t count = 0;
  while (true) {
    std::size_t hit = line.find(separator);
    if (count < max_fields) fields[count] = line.substr(0, hit);
    ++count;
    if (hit == std::string_view::npos) break;
    line.remove_prefix(hit + separator.size());
  }
  return count;
}

bool SplitQuoted(std::string_view line, char delimiter, std::vector<std::string>& fields) {
  fields.clear();
  std::size_t pos = 0;
  while (true) {
    std::string field;
    if (pos < line.size() && line[pos] == '"') {
      ++pos;
      while (true) {
        if (pos >= line.size()) return false;  // unterminated quote
        char c = line[pos];
        if (c == '"') {
          if (pos + 1 < line.size() && line[pos + 1] == '"') {
            field += '"';
            pos += 2;
            continue;
          }
          ++pos;
          break;
        }
        field += c;
        ++pos;
      }
      if (pos < line.size() && line[pos] != delimiter) return false;  // text after closing quote
    } else {
      std::size_t end = line.find(delimiter, pos);
      if (end == std::string_view::npos) end = line.size();
      field.assign(line.substr(pos, end - pos));
      pos = end;
    }
    fields.push_back(std::move(field));
    if (pos >= line.size()) break;
    ++pos;  // delimiter
    if (pos == line.size()) {
      fields.emplace_back();
      break;
    }
  }
  return true;
}

std::optional<double> ParseDouble(std::string_view text) {
  text = Trim(text);
  if (text.empty()) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<std::int64_t> ParseInt(std::string_view text) {
  text = Trim(text);
  if (text.empty()) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool IsCanonicalUnsigned(std::string_view text, std::uint64_t* value) {
  if (text.empty() || text.size() > 18) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *value = v;
  return true;
}

TimeFormat ParseTimeFormat(std::string_view name) {
  if (name == "auto") return TimeFormat::kAuto;
  if (name == "unix-s" || name == "unix" || name == "s") return TimeFormat::kUnixSeconds;
  if (name == "unix-ms" || name == "ms") return TimeFormat::kUnixMillis;
  if (name == "iso8601" || name == "iso") return TimeFormat::kIso8601;
  if (name == "YYYY-MM-DD" || name == "date") return TimeFormat::kDate;
  throw InvalidArgument(fmt::format(
      "--time-format '{}' is not one of: auto, unix-s, unix-ms, iso8601, YYYY-MM-DD", name));
}

std::string_view Name(TimeFormat format) {
  switch (format) {
    case TimeFormat::kAuto: return "auto";
    case TimeFormat::kUnixSeconds: return "unix-s";
    case TimeFormat::kUnixMillis: return "unix-ms";
    case TimeFormat::kIso8601: return "iso8601";
    case TimeFormat::kDate: return "YYYY-MM-DD";
  }
  return "auto";
}

std::int64_t DaysFromCivil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto yoe = static_cast<unsigned>(year - era * 400);
  const unsigned doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

namespace {

bool ParseDigits(std::string_view text, std::size_t pos, std::size_t count, unsigned* out) {
  if (pos + count > text.size()) return false;
  unsigned v = 0;
  for (std::size_t k = pos; k < pos + count; ++k) {
    char c = text[k];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  *out = v;
  return true;
}

bool ValidDate(unsigned year, unsigned month, unsigned day) {
  static constexpr unsigned kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > kDays[month - 1]) return false;
  if (month == 2 && day == 29) {
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (!leap) return false;
  }
  return true;
}

// YYYY-MM-DD, optionally followed by [T ]HH:MM[:SS[.fff]][Z|±HH:MM|±HHMM].
std::optional<Timestamp> ParseIsoTime(std::string_view text, bool date_only) {
  unsigned year, month, day;
  if (!ParseDigits(text, 0, 4, &year) || text.size() < 10 || text[4] != '-' ||
      !ParseDigits(text, 5, 2, &month) || text[7] != '-' || !ParseDigits(text, 8, 2, &day) ||
      !ValidDate(year, month, day)) {
    return std::nullopt;
  }
  Timestamp seconds = DaysFromCivil(year, month, day) * 86400;
  if (text.size() == 10) return seconds;
  if (date_only) return std::nullopt;
  if (text[10] != 'T' && text[10] != ' ') return std::nullopt;
  unsigned hour, minute, second = 0;
  if (!ParseDigits(text, 11, 2, &hour) || text.size() < 16 || text[13] != ':' ||
      !ParseDigits(text, 14, 2, &minute) || hour > 23 || minute > 59) {
    return std::nullopt;
  }
  std::size_t pos = 16;
  if (pos < text.size() && text[pos] == ':') {
    if (!ParseDigits(text, pos + 1, 2, &second) || second > 60) return std::nullopt;
    pos += 3;
    if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
      ++pos;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    }
  }
  seconds += hour * 3600 + minute * 60 + second;
  if (pos == text.size()) return seconds;
  if (text[pos] == 'Z' && pos + 1 == text.size()) return seconds;
  if (text[pos] == '+' || text[pos] == '-') {
    int sign = text[pos] == '+' ? 1 : -1;
    unsigned off_hour, off_minute = 0;
    if (!ParseDigits(text, pos + 1, 2, &off_hour)) return std::nullopt;
    std::size_t rest = pos + 3;
    if (rest < text.size() && text[rest] == ':') ++rest;
    if (rest < text.size()) {
      if (!ParseDigits(text, rest, 2, &off_minute)) return std::nullopt;
      rest += 2;
    }
    if (rest != text.size() || off_hour > 23 || off_minute > 59) return std::nullopt;
    return seconds - sign * static_cast<Timestamp>(off_hour * 3600 + off_minute * 60);
  }
  return std::nullopt;
}

}  // namespace

std::optional<Timestamp> ParseTime(std::string_view text, TimeFormat format) {
  text = Trim(text);
  if (text.empty()) return std::nullopt;
  switch (format) {
    case TimeFormat::kUnixSeconds: {
      if (auto v = ParseInt(text)) return *v;
      if (auto d = ParseDouble(text)) return static_cast<Timestamp>(std::floor(*d));
      return std::nullopt;
    }
    case TimeFormat::kUnixMillis: {
      if (auto v = ParseInt(text)) {
        // Floor division so pre-1970 millisecond times round consistently.
        Timestamp ms = *v;
        return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
      }
      return std::nullopt;
    }
    case TimeFormat::kIso8601: return ParseIsoTime(text, false);
    case TimeFormat::kDate: return ParseIsoTime(text, true);
    case TimeFormat::kAuto: {
      if (auto v = ParseInt(text)) {
        if (*v >= 100'000'000'000LL) return *v / 1000;  // milliseconds
        return *v;
      }
      if (text.find('-', 1) != std::string_view::npos) return ParseIsoTime(text, false);
      if (auto d = ParseDouble(text)) return static_cast<Timestamp>(std::floor(*d));
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string FormatIsoTime(Timestamp seconds) {
  std::int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
  std::int64_t rem = seconds - days * 86400;
  // civil_from_days (H. Hinnant).
  std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t year = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned day = doy - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  if (month <= 2) ++year;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", year, month, day, rem / 3600,
                     (rem % 3600) / 60, rem % 60);
}

}  // namespace recforge::data
