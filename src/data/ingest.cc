#include "recforge/data/ingest.h"

#include <algorithm>
#include <array>
#include <future>
#include <map>

#include <fmt/format.h>

#include "line_parsers.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/version.h"
#include "recforge/data/id_interner.h"
#include "recforge/data/metadata.h"

namespace recforge::data {

InputFormat ParseInputFormat(std::string_view name) {
  if (name == "auto") return InputFormat::kAuto;
  if (name == "movielens") return InputFormat::kMovieLens;
  if (name == "amazon-2023") return InputFormat::kAmazon2023;
  if (name == "amazon-2023-csv") return InputFormat::kAmazon2023Csv;
  if (name == "amazon-2018" || name == "amazon-2014") return InputFormat::kAmazon2018;
  if (name == "amazon-ratings-csv") return InputFormat::kAmazonRatingsCsv;
  if (name == "netflix") return InputFormat::kNetflix;
  if (name == "csv" || name == "tsv") return InputFormat::kCsv;
  throw InvalidArgument(fmt::format(
      "--format '{}' is not one of: auto, movielens, amazon-2023, amazon-2023-csv, amazon-2018, "
      "amazon-ratings-csv, netflix, csv",
      name));
}

std::string_view Name(InputFormat format) {
  switch (format) {
    case InputFormat::kAuto: return "auto";
    case InputFormat::kMovieLens: return "movielens";
    case InputFormat::kAmazon2023: return "amazon-2023";
    case InputFormat::kAmazon2023Csv: return "amazon-2023-csv";
    case InputFormat::kAmazon2018: return "amazon-2018";
    case InputFormat::kAmazonRatingsCsv: return "amazon-ratings-csv";
    case InputFormat::kNetflix: return "netflix";
    case InputFormat::kCsv: return "csv";
  }
  return "auto";
}

ColumnSpec ColumnSpec::Parse(std::string_view text) {
  ColumnSpec spec;
  std::array<std::string_view, 8> parts;
  std::size_t count = SplitSimple(text, ',', parts.data(), parts.size());
  if (count > parts.size()) throw InvalidArgument("--columns: too many entries");
  for (std::size_t k = 0; k < count; ++k) {
    std::string_view part = Trim(parts[k]);
    std::size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq + 1 == part.size()) {
      throw InvalidArgument(fmt::format("--columns entry '{}' must be ROLE=COLUMN (roles: user, item, rating, time)",
                                        part));
    }
    std::string_view role = part.substr(0, eq);
    std::string column(Trim(part.substr(eq + 1)));
    if (role == "user") spec.user = column;
    else if (role == "item") spec.item = column;
    else if (role == "rating" || role == "weight") spec.rating = column;
    else if (role == "time" || role == "timestamp") spec.time = column;
    else throw InvalidArgument(fmt::format("--columns role '{}' is not one of: user, item, rating, time", role));
  }
  if (spec.user.empty() || spec.item.empty()) throw InvalidArgument("--columns needs at least user=COL,item=COL");
  return spec;
}

namespace {

std::string_view FirstLine(std::string_view head) {
  while (!head.empty()) {
    std::size_t newline = head.find('\n');
    std::string_view line = head.substr(0, newline);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!Trim(line).empty()) return line;
    if (newline == std::string_view::npos) break;
    head.remove_prefix(newline + 1);
  }
  return {};
}

bool LooksLikeAsin(std::string_view text) {
  if (text.size() != 10) return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); });
}

bool AllDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

DetectedFormat DetectFormat(const fs::path& path, std::string_view head) {
  std::string name = path.filename().string();
  if (name.size() > 3 && name.ends_with(".gz")) name.resize(name.size() - 3);
  if (head.find('\0') != std::string_view::npos) {
    throw FormatError(fmt::format("{}: unrecognised format (binary data)", path.string()));
  }
  std::string_view line = FirstLine(head);
  if (line.empty()) throw FormatError(fmt::format("{}: file is empty", path.string()));
  if (name.starts_with("meta_")) {
    throw FormatError(fmt::format("{}: is an item metadata file; pass it with --metadata", path.string()));
  }
  std::string_view trimmed = Trim(line);
  if (trimmed.front() == '{') {
    bool has_2018 = trimmed.find("\"reviewerID\"") != std::string_view::npos ||
                    trimmed.find("\"overall\"") != std::string_view::npos;
    bool has_2023 = trimmed.find("\"user_id\"") != std::string_view::npos &&
                    (trimmed.find("\"parent_asin\"") != std::string_view::npos ||
                     trimmed.find("\"asin\"") != std::string_view::npos);
    if (has_2018) return {InputFormat::kAmazon2018, "JSON lines with reviewerID/overall"};
    if (has_2023) return {InputFormat::kAmazon2023, "JSON lines with user_id/parent_asin"};
    throw FormatError(fmt::format(
        "{}: unrecognised JSON lines (expected Amazon 2023 user_id/parent_asin or 2018 reviewerID/asin)",
        path.string()));
  }
  if (trimmed.back() == ':' && AllDigits(trimmed.substr(0, trimmed.size() - 1))) {
    return {InputFormat::kNetflix, "MOVIEID: group lines"};
  }
  if (trimmed.find("::") != std::string_view::npos) return {InputFormat::kMovieLens, "'::'-separated ratings.dat"};
  std::array<std::string_view, 8> fields;
  std::size_t tabs = SplitSimple(trimmed, '\t', fields.data(), fields.size());
  bool numeric4 = tabs == 4 && AllDigits(fields[0]) && AllDigits(fields[1]) && AllDigits(fields[3]);
  if (numeric4 && (name == "u.data" || name.ends_with(".base") || name.ends_with(".test") || name.ends_with(".data"))) {
    return {InputFormat::kMovieLens, "tab-separated u.data"};
  }
  if (trimmed == "user_id,parent_asin,rating,timestamp") {
    return {InputFormat::kAmazon2023Csv, "Amazon 2023 benchmark CSV header"};
  }
  if (trimmed == "userId,movieId,rating,timestamp") return {InputFormat::kMovieLens, "MovieLens ratings.csv header"};
  std::size_t commas = SplitSimple(trimmed, ',', fields.data(), fields.size());
  if (commas == 4 && LooksLikeAsin(fields[0]) && !fields[1].empty() && fields[1][0] == 'A' && fields[1].size() >= 10 &&
      AllDigits(fields[3])) {
    return {InputFormat::kAmazonRatingsCsv, "item,user,rating,timestamp rows (ASIN first)"};
  }
  return {InputFormat::kCsv, "delimited text"};
}

namespace {

// Rows parsed from one piece of a block by one thread, with ids local to that
// thread's interners.
struct PieceOutput {
  Interactions rows;
  std::uint64_t records = 0;
  std::uint64_t skipped = 0;
  std::uint64_t pending = 0;     // grouped formats: rows before the piece's first group line
  bool saw_group = false;
  std::string last_group;        // grouped formats: the last group line's id
  std::array<std::uint64_t, static_cast<int>(LineError::kCount)> error_counts{};
  std::vector<std::pair<std::uint64_t, LineError>> first_errors;  // (line, reason)

  // Empties the piece for the next block but keeps the column buffers: fresh ones per
  // block would page-fault all over again (a third of ingest's time was kernel time).
  void Reset() {
    Interactions kept = std::move(rows);
    kept.Clear();
    *this = PieceOutput{};
    rows = std::move(kept);
  }
};

// A run of rows of the output whose ids are local to interner `thread`.
struct Segment {
  std::size_t begin, end;
  int thread;
};

class ErrorCollector {
 public:
  ErrorCollector(std::size_t max_examples, std::uint64_t max_errors, Logger& log)
      : max_examples_(max_examples), max_errors_(max_errors), log_(log) {}

  // Counts one malformed line and keeps / prints it while examples are wanted.
  void AddExample(const fs::path& path, std::uint64_t line, LineError reason) {
    AddCount(reason, 1);
    if (examples_.size() < max_examples_) {
      std::string example = line > 0 ? fmt::format("{}:{}: {}", path.string(), line, ReasonText(reason))
                                     : fmt::format("{}: {}", path.string(), ReasonText(reason));
      log_.Warn("{}", example);
      examples_.push_back(std::move(example));
    }
  }
  void AddCount(LineError reason, std::uint64_t count) {
    if (count == 0) return;
    counts_[std::string(ReasonCode(reason))] += count;
    file_counts_[std::string(ReasonCode(reason))] += count;
    total_ += count;
    file_total_ += count;
  }
  void CheckLimit(const fs::path& path) const {
    if (total_ > max_errors_) {
      throw FormatError(fmt::format(
          "{}: {} malformed lines exceed --max-errors {} (first: {}); fix the input or raise --max-errors",
          path.string(), total_, max_errors_, examples_.empty() ? std::string("-") : examples_.front()));
    }
  }
  ErrorTally FileTally() {
    ErrorTally tally;
    tally.total = file_total_;
    for (auto& [reason, count] : file_counts_) tally.by_reason.emplace_back(reason, count);
    file_counts_.clear();
    file_total_ = 0;
    return tally;
  }
  ErrorTally Total() const {
    ErrorTally tally;
    tally.total = total_;
    for (const auto& [reason, count] : counts_) tally.by_reason.emplace_back(reason, count);
    tally.examples = examples_;
    return tally;
  }

 private:
  std::size_t max_examples_;
  std::uint64_t max_errors_;
  Logger& log_;
  std::map<std::string, std::uint64_t> counts_, file_counts_;
  std::uint64_t total_ = 0, file_total_ = 0;
  std::vector<std::string> examples_;
};

void ParsePiece(const LineParser& parser, std::string_view text, std::uint64_t first_line, IdInterner& users,
                IdInterner& items, ParseScratch& scratch, std::size_t max_examples, PieceOutput& out) {
  ParsedRecord record;
  const std::uint64_t header_lines = parser.header_lines();
  const bool grouped = parser.grouped();
  std::uint32_t group_item = kInvalidIndex;
  ForEachLine(text, first_line, [&](std::string_view line, std::uint64_t line_number) {
    if (line_number <= header_lines) {
      ++out.skipped;
      return;
    }
    LineOutcome outcome = parser.Parse(line, record, scratch);
    switch (outcome.kind) {
      case LineKind::kSkip:
        ++out.skipped;
        return;
      case LineKind::kGroup:
        ++out.skipped;
        out.saw_group = true;
        out.last_group.assign(outcome.group);
        group_item = items.Intern(outcome.group);
        return;
      case LineKind::kError:
        ++out.error_counts[static_cast<int>(outcome.error)];
        if (out.first_errors.size() < max_examples) out.first_errors.emplace_back(line_number, outcome.error);
        return;
      case LineKind::kRecord:
        break;
    }
    std::uint32_t item;
    if (grouped) {
      if (group_item == kInvalidIndex) {
        // Before the first group line of this piece: resolved from the previous piece.
        ++out.pending;
        item = kInvalidIndex;
      } else {
        item = group_item;
      }
    } else {
      item = items.Intern(record.item);
    }
    out.rows.Append(users.Intern(record.user), item, record.rating, record.time);
    ++out.records;
  });
}

}  // namespace

Dataset Ingest(const std::vector<fs::path>& inputs, const IngestOptions& options, const Context& ctx) {
  if (inputs.empty()) throw InvalidArgument("no input files given");
  const int threads = std::max(1, ctx.threads);
  Logger& log = ctx.log();

  std::uint64_t total_input_bytes = 0;
  for (const auto& path : inputs) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw IoError(fmt::format("{}: no such file", path.string()));
    if (fs::is_directory(path, ec)) throw IoError(fmt::format("{}: is a directory, expected a file", path.string()));
    total_input_bytes += fs::file_size(path, ec);
  }

  std::vector<IdInterner> user_interners(static_cast<std::size_t>(threads));
  std::vector<IdInterner> item_interners(static_cast<std::size_t>(threads));
  std::vector<ParseScratch> scratches(static_cast<std::size_t>(threads));
  std::vector<PieceOutput> pieces(static_cast<std::size_t>(threads));
  Interactions rows;
  std::vector<Segment> segments;
  std::vector<SourceReport> reports;
  ErrorCollector errors(options.max_examples, options.max_errors, log);
  std::uint64_t bytes_done_before = 0;
  bool reserved = false;

  for (const auto& path : inputs) {
    SourceReport report;
    report.path = path;
    std::error_code ec;
    report.bytes = fs::file_size(path, ec);
    if (report.bytes == 0) throw FormatError(fmt::format("{}: file is empty", path.string()));

    // Small files get a small buffer (a 32 MiB block for a 2 KiB file is waste).
    std::size_t block_bytes = std::min<std::size_t>(options.block_bytes,
                                                    std::max<std::size_t>(report.bytes * 8, 1u << 20));
    LineBlockReader reader(path, block_bytes);
    reader.source().EnableHashing();
    LineBlock block;
    if (!reader.Next(block)) {
      if (reader.truncated_tail() || reader.source().truncated()) {
        throw FormatError(fmt::format("{}: gzip stream is truncated before the first complete line", path.string()));
      }
      throw FormatError(fmt::format("{}: file is empty", path.string()));
    }
    std::string_view head = block.text.substr(0, std::min<std::size_t>(block.text.size(), 1u << 16));
    InputFormat format = options.format;
    std::string detail;
    if (format == InputFormat::kAuto) {
      DetectedFormat detected = DetectFormat(path, head);
      format = detected.format;
      detail = detected.detail;
    }
    std::string_view first_line = FirstLine(head);
    if (first_line.empty()) throw FormatError(fmt::format("{}: file is empty", path.string()));
    auto parser = MakeLineParser(format, path, first_line, options);
    report.format = format;
    report.detail = parser->Describe();
    log.Info("{}: {} ({})", path.string(), Name(format), report.detail);

    std::string carried_group;  // grouped formats: last group id before the current block
    bool have_group = false;
    const std::uint64_t first_block_bytes = std::max<std::uint64_t>(reader.source().compressed_bytes_read(), 1);
    LineBlock ahead;
    bool more = true;
    while (more) {
      // The next block is read (and hashed, and inflated) on its own thread while the
      // workers parse this one; the reader keeps both blocks valid.
      std::future<bool> next = std::async(std::launch::async, [&reader, &ahead] { return reader.Next(ahead); });
      auto parts = SplitAtLines(block.text, threads);
      std::vector<std::uint64_t> first_lines(parts.size());
      std::uint64_t line = block.first_line;
      for (std::size_t k = 0; k < parts.size(); ++k) {
        first_lines[k] = line;
        line += CountNewlines(parts[k]);
      }
      ParallelFor<std::size_t>(0, parts.size(), threads, [&](std::size_t k) {
        PieceOutput& out = pieces[k];
        out.Reset();
        ParsePiece(*parser, parts[k], first_lines[k], user_interners[k], item_interners[k], scratches[k],
                   options.max_examples, out);
      });
      std::size_t block_rows = 0;
      for (std::size_t k = 0; k < parts.size(); ++k) block_rows += pieces[k].rows.size();
      if (!reserved) {
        // Reserve once from the first block's density so the columns do not double
        // (and briefly triple memory) while growing.
        double estimate = static_cast<double>(block_rows) * static_cast<double>(total_input_bytes) /
                          static_cast<double>(first_block_bytes) * 1.02;
        rows.Reserve(static_cast<std::size_t>(estimate) + 1024);
        reserved = true;
      }
      // Settle each piece's leading rows (grouped formats) and its place in the columns,
      // in file order; then copy the pieces in parallel.
      std::vector<std::size_t> from(parts.size(), 0), at(parts.size() + 1, rows.size());
      for (std::size_t k = 0; k < parts.size(); ++k) {
        PieceOutput& out = pieces[k];
        if (parser->grouped() && out.pending > 0) {
          // Rows before this piece's first group line belong to the previous group.
          if (!have_group) {
            std::uint64_t orphan_line = first_lines[k];
            errors.AddExample(path, orphan_line, LineError::kRowBeforeGroupHeader);
            errors.AddCount(LineError::kRowBeforeGroupHeader, out.pending - 1);
            out.records -= out.pending;
            from[k] = out.pending;
          } else {
            std::uint32_t item = item_interners[k].Intern(carried_group);
            for (std::size_t row = 0; row < out.rows.size() && out.rows.items[row] == kInvalidIndex; ++row) {
              out.rows.items[row] = item;
            }
          }
        }
        at[k + 1] = at[k] + (out.rows.size() - from[k]);
        if (at[k + 1] > at[k]) segments.push_back(Segment{at[k], at[k + 1], static_cast<int>(k)});
        if (out.saw_group) {
          carried_group = out.last_group;
          have_group = true;
        }
        report.rows += out.records;
        report.skipped += out.skipped;
        // The piece kept the first few errors with their lines; the rest are counted.
        for (const auto& [line_number, reason] : out.first_errors) {
          errors.AddExample(path, line_number, reason);
          --out.error_counts[static_cast<int>(reason)];
        }
        for (int reason = 0; reason < static_cast<int>(LineError::kCount); ++reason) {
          errors.AddCount(static_cast<LineError>(reason), out.error_counts[reason]);
        }
      }
      rows.Resize(at[parts.size()]);
      ParallelFor<std::size_t>(0, parts.size(), threads, [&](std::size_t k) {
        Interactions& piece = pieces[k].rows;
        const std::size_t skip = from[k];
        std::copy(piece.users.begin() + skip, piece.users.end(), rows.users.begin() + at[k]);
        std::copy(piece.items.begin() + skip, piece.items.end(), rows.items.begin() + at[k]);
        std::copy(piece.ratings.begin() + skip, piece.ratings.end(), rows.ratings.begin() + at[k]);
        std::copy(piece.times.begin() + skip, piece.times.end(), rows.times.begin() + at[k]);
        piece.Clear();
      });
      report.lines = line - 1 + (!block.text.empty() && block.text.back() != '\n' ? 1 : 0);
      more = next.get();  // rethrows the reader's errors
      ctx.ReportProgress("ingest", bytes_done_before + reader.source().compressed_bytes_read(), total_input_bytes);
      errors.CheckLimit(path);
      if (more) std::swap(block, ahead);
    }
    if (reader.truncated_tail() || reader.source().truncated()) {
      errors.AddExample(path, 0, LineError::kTruncatedGzip);
      errors.CheckLimit(path);
    }
    report.sha256 = reader.source().RawSha256Hex();
    report.errors = errors.FileTally();
    bytes_done_before += report.bytes;
    if (report.rows == 0) {
      throw FormatError(fmt::format("{}: no valid interactions ({} malformed lines; first: {})", path.string(),
                                    report.errors.total,
                                    errors.Total().examples.empty() ? "-" : errors.Total().examples.front()));
    }
    log.Info("{}: {} interactions, {} malformed lines", path.string(), report.rows, report.errors.total);
    reports.push_back(std::move(report));
  }

  // Number ids in sorted order and rewrite the columns with global indices.
  std::vector<const IdInterner*> user_ptrs, item_ptrs;
  for (int k = 0; k < threads; ++k) {
    user_ptrs.push_back(&user_interners[k]);
    item_ptrs.push_back(&item_interners[k]);
  }
  Dataset dataset;
  MergedIds merged_users = MergeInterners(user_ptrs);
  MergedIds merged_items = MergeInterners(item_ptrs);
  ParallelFor<std::size_t>(0, segments.size(), threads, [&](std::size_t s) {
    const Segment& segment = segments[s];
    const auto& user_map = merged_users.remaps[segment.thread];
    const auto& item_map = merged_items.remaps[segment.thread];
    for (std::size_t row = segment.begin; row < segment.end; ++row) {
      rows.users[row] = user_map[rows.users[row]];
      rows.items[row] = item_map[rows.items[row]];
    }
  }, Schedule::kDynamic, 1);
  dataset.interactions = std::move(rows);
  dataset.users = std::move(merged_users.ids);
  dataset.items = std::move(merged_items.ids);

  // Item metadata: explicit files first, then the usual file beside each input.
  std::vector<fs::path> metadata_files = options.metadata;
  if (options.find_metadata) {
    for (const auto& report : reports) {
      if (auto found = FindMetadataFor(report.path, report.format)) {
        if (std::find(metadata_files.begin(), metadata_files.end(), *found) == metadata_files.end()) {
          metadata_files.push_back(*found);
        }
      }
    }
  }
  nlohmann::json metadata_sources = nlohmann::json::array();
  ErrorTally metadata_errors;
  for (const auto& path : metadata_files) {
    ErrorTally file_errors;
    auto info = ReadItemMetadata(path, file_errors, options.max_examples);
    log.Info("{}: metadata for {} items", path.string(), info.size());
    metadata_sources.push_back({{"path", path.string()}, {"sha256", Sha256File(path)}, {"items", info.size()},
                                {"errors", file_errors.ToJson()}});
    for (auto& item : info) dataset.item_info.push_back(std::move(item));
  }
  if (!dataset.item_info.empty()) {
    // One record per item id: later files fill in what earlier ones lack.
    std::stable_sort(dataset.item_info.begin(), dataset.item_info.end(),
                     [](const ItemInfo& a, const ItemInfo& b) { return a.item_id < b.item_id; });
    std::vector<ItemInfo> unique;
    for (auto& item : dataset.item_info) {
      if (!unique.empty() && unique.back().item_id == item.item_id) {
        ItemInfo& kept = unique.back();
        if (kept.title.empty()) kept.title = std::move(item.title);
        if (kept.categories.empty()) kept.categories = std::move(item.categories);
        for (auto& [key, value] : item.extra.items()) {
          if (!kept.extra.contains(key)) kept.extra[key] = value;
        }
      } else {
        unique.push_back(std::move(item));
      }
    }
    dataset.item_info = std::move(unique);
  }

  BasicCounts counts = CountInteractions(dataset.interactions, dataset.n_users(), dataset.n_items(), threads);
  ErrorTally tally = errors.Total();
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& report : reports) {
    sources.push_back({{"path", report.path.string()},
                       {"file", report.path.filename().string()},
                       {"format", Name(report.format)},
                       {"detail", report.detail},
                       {"sha256", report.sha256},
                       {"bytes", report.bytes},
                       {"lines", report.lines},
                       {"rows", report.rows},
                       {"skipped_lines", report.skipped},
                       {"errors", report.errors.ToJson()}});
  }
  bool implicit = true;
  for (float rating : dataset.interactions.ratings) {
    if (rating != 1.0f) {
      implicit = false;
      break;
    }
  }
  dataset.meta = {
      {"kind", "raw"},
      {"created_by", fmt::format("recforge {} ({})", Version(), GitCommit())},
      {"sources", sources},
      {"metadata_sources", metadata_sources},
      {"parse_errors", tally.ToJson()},
      {"counts",
       {{"rows", counts.rows}, {"interactions", counts.interactions}, {"users", counts.users}, {"items", counts.items},
        {"items_with_metadata", dataset.item_info.size()}}},
      {"implicit", implicit},
      {"options",
       {{"format", Name(options.format)}, {"time_format", Name(options.time_format)},
        {"max_errors", options.max_errors}}},
  };
  return dataset;
}

Dataset IngestOrLoad(const std::vector<fs::path>& inputs, const IngestOptions& options, const Context& ctx) {
  std::error_code ec;
  if (inputs.size() == 1 && fs::is_directory(inputs[0], ec)) return LoadDataset(inputs[0]);
  for (const auto& path : inputs) {
    if (fs::is_directory(path, ec)) {
      throw InvalidArgument(fmt::format(
          "{}: is a directory; give either one dataset directory or raw interaction files", path.string()));
    }
  }
  return Ingest(inputs, options, ctx);
}

}  // namespace recforge::data
