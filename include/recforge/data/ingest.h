// `recforge data ingest`: raw interaction files in, a dataset directory out.
//
// Parsing streams blocks of whole lines (memory grows with the output, not with the
// input), parses the lines of each block on all threads, and interns ids into
// per-thread tables that are merged once at the end. Ids are then numbered in sorted
// order (numerically when every id is a canonical integer, else numbers first then
// bytewise), so indices do not depend on file order or thread count.
// Malformed lines are skipped and counted by reason (never dropped silently).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"
#include "recforge/data/text_fields.h"

namespace recforge::data {

enum class InputFormat {
  kAuto,
  kMovieLens,         // u.data (tab), ratings.dat (::), ratings.csv (header)
  kAmazon2023,        // review JSONL (.gz): user_id, parent_asin|asin, rating, timestamp (ms)
  kAmazon2023Csv,     // benchmark CSV: user_id,parent_asin,rating,timestamp (ms)
  kAmazon2018,        // 2014/2018 review JSON lines: reviewerID, asin, overall, unixReviewTime
  kAmazonRatingsCsv,  // 2014/2018 ratings-only CSV, no header: item,user,rating,timestamp
  kNetflix,           // MOVIEID: lines + CustomerID,Rating,YYYY-MM-DD rows
  kCsv,               // generic delimited text
};
InputFormat ParseInputFormat(std::string_view name);  // throws InvalidArgument listing values
std::string_view Name(InputFormat format);

// Column selection for generic CSV: by header name or 0-based index; empty = absent.
struct ColumnSpec {
  std::string user, item, rating, time;
  bool empty() const { return user.empty() && item.empty() && rating.empty() && time.empty(); }
  // Parses "user=COL,item=COL[,rating=COL][,time=COL]"; throws InvalidArgument.
  static ColumnSpec Parse(std::string_view text);
};

struct IngestOptions {
  InputFormat format = InputFormat::kAuto;
  std::optional<char> delimiter;       // generic CSV; detected from the first line otherwise
  std::optional<bool> has_header;      // generic CSV; detected otherwise
  ColumnSpec columns;                  // generic CSV
  TimeFormat time_format = TimeFormat::kAuto;
  std::vector<fs::path> metadata;      // extra item metadata files (u.item, movies.csv, meta_*.jsonl, ...)
  bool find_metadata = true;           // look for the usual metadata file beside each input
  std::uint64_t max_errors = 1000;     // abort when more lines are malformed (0 = strict)
  std::size_t max_examples = 10;       // malformed lines printed / kept in meta.json
  std::size_t block_bytes = 32u << 20; // parse unit
};

// What the ingest did to one input file.
struct SourceReport {
  fs::path path;
  InputFormat format = InputFormat::kAuto;
  std::string detail;            // e.g. "tab-separated u.data", "csv header userId,movieId,..."
  std::string sha256;            // of the raw file bytes
  std::uint64_t bytes = 0;
  std::uint64_t lines = 0;
  std::uint64_t rows = 0;        // records kept
  std::uint64_t skipped = 0;     // headers, blank lines, group lines (not errors)
  ErrorTally errors;
};

// Reads `inputs` (merged into one dataset, in order) and returns the dataset with
// its meta filled in (sources, parse_errors, counts, options). Throws IoError for an
// unreadable file, FormatError for an empty or unrecognised file or when more than
// max_errors lines are malformed.
Dataset Ingest(const std::vector<fs::path>& inputs, const IngestOptions& options, const Context& ctx);

// One directory holding a raw dataset (from `data ingest`) is loaded; otherwise the
// inputs are raw files and are ingested with `options` (no dataset is written). Lets
// `data prepare` and sweeps start from raw files in one step.
Dataset IngestOrLoad(const std::vector<fs::path>& inputs, const IngestOptions& options, const Context& ctx);

// Format detection from the file name and its first lines (exposed for tests).
struct DetectedFormat {
  InputFormat format = InputFormat::kCsv;
  std::string detail;
};
DetectedFormat DetectFormat(const fs::path& path, std::string_view head);

}  // namespace recforge::data
