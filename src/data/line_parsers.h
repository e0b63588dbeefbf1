// Per-format line parsers used by ingest (private to the data module).
//
// A parser turns one line (without its terminator) into a record, a skip (blank
// line), a group header (Netflix "123:" lines) or an error with a stable reason
// code. Parsers are immutable after construction and shared by all threads; the
// per-thread mutable state lives in ParseScratch.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/core/types.h"
#include "recforge/data/ingest.h"
#include "recforge/data/text_fields.h"

namespace recforge::data {

// Stable reason codes for malformed lines (they appear in meta.json and messages).
enum class LineError : int {
  kWrongFieldCount = 0,
  kEmptyUser,
  kEmptyItem,
  kBadRating,
  kBadTime,
  kInvalidJson,
  kMissingField,
  kBadQuotes,
  kRowBeforeGroupHeader,
  kTruncatedGzip,
  kCount
};
std::string_view ReasonCode(LineError error);
std::string_view ReasonText(LineError error);

struct ParsedRecord {
  std::string_view user;
  std::string_view item;  // empty for grouped formats (the item is the current group)
  float rating = 1;
  Timestamp time = 0;
};

enum class LineKind { kRecord, kSkip, kGroup, kError };

struct LineOutcome {
  LineKind kind = LineKind::kSkip;
  LineError error = LineError::kCount;  // when kind == kError
  std::string_view group;                // when kind == kGroup
};

// Per-thread scratch (JSON parser state, split buffers). Opaque outside the .cc.
class ParseScratch {
 public:
  ParseScratch();
  ~ParseScratch();
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class LineParser {
 public:
  virtual ~LineParser() = default;
  // `line` has no terminator; `padded` guarantees LineBlockReader::kPadding readable
  // bytes after it. Views in `record` stay valid until the next call on `scratch`.
  virtual LineOutcome Parse(std::string_view line, ParsedRecord& record, ParseScratch& scratch) const = 0;
  // True when records take their item from the last group line (Netflix).
  virtual bool grouped() const { return false; }
  // Lines at the top of the file that are a header (skipped by line number).
  virtual std::uint64_t header_lines() const { return 0; }
  // One-line description for logs and meta.json.
  virtual std::string Describe() const = 0;
};

// Builds the parser for a file given its (detected or forced) format and its first
// line. Throws FormatError / InvalidArgument naming the file when the columns cannot
// be mapped.
std::unique_ptr<LineParser> MakeLineParser(InputFormat format, const fs::path& path,
                                           std::string_view first_line, const IngestOptions& options);

}  // namespace recforge::data
