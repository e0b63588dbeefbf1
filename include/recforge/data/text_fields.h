// Low-level field parsing shared by every text format: delimiter splitting (plain
// and RFC-4180 quoted), numbers and timestamps. All functions are pure and
// thread-safe; none allocates on the fast path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/core/types.h"

namespace recforge::data {

// Splits `line` on `delimiter` into at most `max_fields` views (no quote handling).
// Returns the number of fields found; a result > max_fields means "too many"
// (only the first max_fields are stored).
std::size_t SplitSimple(std::string_view line, char delimiter, std::string_view* fields,
                        std::size_t max_fields);

// Splits on a multi-character separator such as "::".
std::size_t SplitOn(std::string_view line, std::string_view separator, std::string_view* fields,
                    std::size_t max_fields);

// RFC-4180 splitting: fields may be wrapped in double quotes, with "" for a quote
// inside. Returns false on a malformed quote (unterminated, or text after the
// closing quote).
bool SplitQuoted(std::string_view line, char delimiter, std::vector<std::string>& fields);

// Strict number parsing of a whole field (surrounding spaces allowed).
std::optional<double> ParseDouble(std::string_view text);
std::optional<std::int64_t> ParseInt(std::string_view text);

// True when `text` is a canonical non-negative integer (no sign, no leading zeros
// except "0", at most 18 digits): such ids take the fast numeric path and sort
// numerically.
bool IsCanonicalUnsigned(std::string_view text, std::uint64_t* value);

enum class TimeFormat { kAuto, kUnixSeconds, kUnixMillis, kIso8601, kDate };
TimeFormat ParseTimeFormat(std::string_view name);  // unix-s|unix-ms|iso8601|YYYY-MM-DD|auto
std::string_view Name(TimeFormat format);

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t year, unsigned month, unsigned day);

// Parses a time field to Unix seconds. kAuto: an integer >= 1e11 is milliseconds,
// another integer seconds, a decimal number seconds, text with '-' an ISO date or
// date-time. ISO date-times accept 'T' or ' ', optional fractional seconds and a
// 'Z' / +hh:mm / -hh:mm offset (UTC when absent).
std::optional<Timestamp> ParseTime(std::string_view text, TimeFormat format);

// Formats Unix seconds as "YYYY-MM-DDTHH:MM:SSZ".
std::string FormatIsoTime(Timestamp seconds);

// Trims ASCII spaces and tabs.
std::string_view Trim(std::string_view text);

}  // namespace recforge::data
