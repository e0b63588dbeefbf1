#include "line_parsers.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "recforge/core/error.h"

namespace recforge::data {

std::string_view ReasonCode(LineError error) {
  switch (error) {
    case LineError::kWrongFieldCount: return "wrong_field_count";
    case LineError::kEmptyUser: return "empty_user";
    case LineError::kEmptyItem: return "empty_item";
    case LineError::kBadRating: return "bad_rating";
    case LineError::kBadTime: return "bad_time";
    case LineError::kInvalidJson: return "invalid_json";
    case LineError::kMissingField: return "missing_field";
    case LineError::kBadQuotes: return "bad_quotes";
    case LineError::kRowBeforeGroupHeader: return "row_before_group_header";
    case LineError::kTruncatedGzip: return "truncated_gzip";
    case LineError::kCount: break;
  }
  return "unknown";
}

std::string_view ReasonText(LineError error) {
  switch (error) {
    case LineError::kWrongFieldCount: return "wrong number of fields";
    case LineError::kEmptyUser: return "empty user id";
    case LineError::kEmptyItem: return "empty item id";
    case LineError::kBadRating: return "rating is not a number";
    case LineError::kBadTime: return "invalid timestamp/date";
    case LineError::kInvalidJson: return "invalid JSON";
    case LineError::kMissingField: return "a required JSON field is missing or has the wrong type";
    case LineError::kBadQuotes: return "malformed quoted field";
    case LineError::kRowBeforeGroupHeader: return "rating row before any 'MOVIEID:' line";
    case LineError::kTruncatedGzip: return "gzip stream truncated or corrupt (partial last line dropped)";
    case LineError::kCount: break;
  }
  return "unknown";
}

struct ParseScratch::Impl {
  simdjson::dom::parser json;
  std::vector<std::string> quoted_fields;
};

ParseScratch::ParseScratch() : impl_(std::make_unique<Impl>()) {}
ParseScratch::~ParseScratch() = default;

namespace {

constexpr std::size_t kMaxFields = 64;

LineOutcome Error(LineError error) { return LineOutcome{LineKind::kError, error, {}}; }
LineOutcome Record() { return LineOutcome{LineKind::kRecord, LineError::kCount, {}}; }
LineOutcome Skip() { return LineOutcome{}; }

bool IsBlank(std::string_view line) { return Trim(line).empty(); }

// --- Delimited text (MovieLens, generic CSV/TSV, Amazon CSVs) ---------------------

struct DelimitedLayout {
  char delimiter = ',';
  std::string separator;     // multi-character separator ("::"), overrides delimiter
  int user = 0, item = 1, rating = -1, time = -1;
  std::size_t expected_fields = 0;  // 0 = at least max(index)+1
  bool header = false;
  TimeFormat time_format = TimeFormat::kAuto;
  bool allow_quotes = true;
  std::string description;
};

class DelimitedParser final : public LineParser {
 public:
  explicit DelimitedParser(DelimitedLayout layout) : layout_(std::move(layout)) {
    needed_ = static_cast<std::size_t>(std::max({layout_.user, layout_.item, layout_.rating, layout_.time}) + 1);
  }

  LineOutcome Parse(std::string_view line, ParsedRecord& record, ParseScratch& scratch) const override {
    if (IsBlank(line)) return Skip();
    std::array<std::string_view, kMaxFields> fields;
    std::size_t count;
    if (layout_.allow_quotes && layout_.separator.empty() && line.find('"') != std::string_view::npos) {
      auto& quoted = scratch.impl().quoted_fields;
      if (!SplitQuoted(line, layout_.delimiter, quoted)) return Error(LineError::kBadQuotes);
      count = quoted.size();
      for (std::size_t k = 0; k < std::min(count, kMaxFields); ++k) fields[k] = quoted[k];
    } else if (!layout_.separator.empty()) {
      count = SplitOn(line, layout_.separator, fields.data(), kMaxFields);
    } else {
      count = SplitSimple(line, layout_.delimiter, fields.data(), kMaxFields);
    }
    if (layout_.expected_fields != 0 ? count != layout_.expected_fields : count < needed_) {
      return Error(LineError::kWrongFieldCount);
    }
    record.user = Trim(fields[layout_.user]);
    record.item = Trim(fields[layout_.item]);
    if (record.user.empty()) return Error(LineError::kEmptyUser);
    if (record.item.empty()) return Error(LineError::kEmptyItem);
    if (layout_.rating >= 0) {
      auto rating = ParseDouble(fields[layout_.rating]);
      if (!rating) return Error(LineError::kBadRating);
      record.rating = static_cast<float>(*rating);
    } else {
      record.rating = 1;
    }
    if (layout_.time >= 0) {
      auto time = ParseTime(fields[layout_.time], layout_.time_format);
      if (!time) return Error(LineError::kBadTime);
      record.time = *time;
    } else {
      record.time = 0;
    }
    return Record();
  }

  std::uint64_t header_lines() const override { return layout_.header ? 1 : 0; }
  std::string Describe() const override { return layout_.description; }

 private:
  DelimitedLayout layout_;
  std::size_t needed_;
};

// --- JSON Lines (Amazon reviews) ----------------------------------------------------

struct JsonLayout {
  std::vector<std::string> user_keys, item_keys;  // first key present wins
  std::string rating_key, time_key;
  TimeFormat time_format = TimeFormat::kUnixSeconds;
  std::string description;
};

class JsonLinesParser final : public LineParser {
 public:
  explicit JsonLinesParser(JsonLayout layout) : layout_(std::move(layout)) {}

  LineOutcome Parse(std::string_view line, ParsedRecord& record, ParseScratch& scratch) const override {
    if (IsBlank(line)) return Skip();
    auto& impl = scratch.impl();
    // The DOM parser dispatches to the widest SIMD kernel of the running CPU (the
    // On-Demand front end would be fixed at compile time to the portable baseline).
    // LineBlockReader guarantees the padding bytes after the line.
    simdjson::dom::element doc;
    if (impl.json.parse(line.data(), line.size(), false).get(doc) != simdjson::SUCCESS) {
      return Error(LineError::kInvalidJson);
    }
    simdjson::dom::object object;
    if (doc.get_object().get(object) != simdjson::SUCCESS) return Error(LineError::kInvalidJson);

    int user_rank = kAbsent, item_rank = kAbsent;
    bool have_rating = false, have_time = false;
    double rating = 0;
    Timestamp time = 0;
    bool bad_rating = false, bad_time = false;
    for (auto [key, value] : object) {
      int rank;
      if ((rank = Rank(layout_.user_keys, key)) >= 0) {
        if (rank < user_rank && ReadString(value, &record.user)) user_rank = rank;
      } else if ((rank = Rank(layout_.item_keys, key)) >= 0) {
        if (rank < item_rank && ReadString(value, &record.item)) item_rank = rank;
      } else if (key == layout_.rating_key) {
        have_rating = true;
        bad_rating = !ReadNumber(value, &rating);
      } else if (key == layout_.time_key) {
        have_time = true;
        double raw;
        if (ReadNumber(value, &raw)) {
          time = layout_.time_format == TimeFormat::kUnixMillis ? static_cast<Timestamp>(raw / 1000)
                                                                 : static_cast<Timestamp>(raw);
        } else {
          bad_time = true;
        }
      }
      // Every other field (text, images, vote as a string, ...) is ignored.
    }
    if (user_rank == kAbsent || item_rank == kAbsent || !have_rating) return Error(LineError::kMissingField);
    if (bad_rating) return Error(LineError::kBadRating);
    if (bad_time) return Error(LineError::kBadTime);
    record.user = Trim(record.user);
    record.item = Trim(record.item);
    if (record.user.empty()) return Error(LineError::kEmptyUser);
    if (record.item.empty()) return Error(LineError::kEmptyItem);
    record.rating = static_cast<float>(rating);
    record.time = have_time ? time : 0;
    return Record();
  }

  std::string Describe() const override { return layout_.description; }

 private:
  static constexpr int kAbsent = 1 << 20;

  static int Rank(const std::vector<std::string>& keys, std::string_view key) {
    for (std::size_t k = 0; k < keys.size(); ++k) {
      if (keys[k] == key) return static_cast<int>(k);
    }
    return -1;
  }
  // Accepts a JSON string or a number (ids written as numbers). The view points into
  // the parser's tape or the line and lives until the next parse.
  static bool ReadString(simdjson::dom::element value, std::string_view* out) {
    if (value.is_string()) return value.get_string().get(*out) == simdjson::SUCCESS;
    if (value.is_number()) {
      // Numbers have no stored text in the DOM: print them canonically.
      thread_local std::string buffer[2];
      thread_local int next = 0;
      std::string& text = buffer[next++ & 1];
      std::int64_t integer;
      if (value.get_int64().get(integer) == simdjson::SUCCESS) {
        text = std::to_string(integer);
      } else {
        text = fmt::format("{}", double(value));
      }
      *out = text;
      return true;
    }
    return false;  // null, object, array: treat as absent
  }
  // Accepts a number or a numeric string ("5.0", "1588687728923").
  static bool ReadNumber(simdjson::dom::element value, double* out) {
    if (value.is_number()) return value.get_double().get(*out) == simdjson::SUCCESS;
    if (value.is_string()) {
      std::string_view text;
      if (value.get_string().get(text) != simdjson::SUCCESS) return false;
      auto parsed = ParseDouble(text);
      if (!parsed) return false;
      *out = *parsed;
      return true;
    }
    return false;
  }

  JsonLayout layout_;
};

// --- Netflix Prize ----------------------------------------------------------------------

class NetflixParser final : public LineParser {
 public:
  LineOutcome Parse(std::string_view line, ParsedRecord& record, ParseScratch&) const override {
    std::string_view trimmed = Trim(line);
    if (trimmed.empty()) return Skip();
    if (trimmed.back() == ':') {
      std::string_view movie = Trim(trimmed.substr(0, trimmed.size() - 1));
      if (movie.empty()) return Error(LineError::kEmptyItem);
      return LineOutcome{LineKind::kGroup, LineError::kCount, movie};
    }
    std::array<std::string_view, 4> fields;
    std::size_t count = SplitSimple(trimmed, ',', fields.data(), fields.size());
    if (count != 3) return Error(LineError::kWrongFieldCount);
    record.user = Trim(fields[0]);
    if (record.user.empty()) return Error(LineError::kEmptyUser);
    auto rating = ParseDouble(fields[1]);
    if (!rating) return Error(LineError::kBadRating);
    auto time = ParseTime(fields[2], TimeFormat::kDate);
    if (!time) return Error(LineError::kBadTime);
    record.item = {};
    record.rating = static_cast<float>(*rating);
    record.time = *time;
    return Record();
  }
  bool grouped() const override { return true; }
  std::string Describe() const override { return "Netflix Prize (MOVIEID: + CustomerID,Rating,Date)"; }
};

// --- Column mapping for delimited text ------------------------------------------------

std::string NormaliseName(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Recognised header names by role, most specific first.
const std::vector<std::string>& UserNames() {
  static const std::vector<std::string> names = {"userid", "user", "useridx", "customerid", "reviewerid",
                                                 "visitorid", "uid", "sessionid", "session"};
  return names;
}
const std::vector<std::string>& ItemNames() {
  static const std::vector<std::string> names = {
      "itemid", "item", "parentasin", "asin", "movieid", "movie", "artistid", "artist", "productid",
      "product", "bookid", "isbn", "animeid", "trackid", "songid", "iid", "itemidx"};
  return names;
}
const std::vector<std::string>& RatingNames() {
  static const std::vector<std::string> names = {"rating", "weight", "score", "overall", "playcount",
                                                 "plays", "count", "feedback", "value", "event", "accessed"};
  return names;
}
const std::vector<std::string>& TimeNames() {
  static const std::vector<std::string> names = {"timestamp", "time", "unixreviewtime", "datetime", "date",
                                                 "eventdate", "ts"};
  return names;
}

int FindRole(const std::vector<std::string>& header, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    for (std::size_t k = 0; k < header.size(); ++k) {
      if (header[k] == name) return static_cast<int>(k);
    }
  }
  return -1;
}

std::vector<std::string> SplitHeader(std::string_view line, const DelimitedLayout& layout) {
  std::vector<std::string> fields;
  if (!layout.separator.empty()) {
    std::array<std::string_view, kMaxFields> views;
    std::size_t count = std::min(SplitOn(line, layout.separator, views.data(), kMaxFields), kMaxFields);
    for (std::size_t k = 0; k < count; ++k) fields.emplace_back(Trim(views[k]));
  } else if (!SplitQuoted(line, layout.delimiter, fields)) {
    fields.clear();
  }
  return fields;
}

// Resolves one --columns entry (header name, case-insensitive, or 0-based index).
int ResolveColumn(const std::string& spec, const std::vector<std::string>& raw_header, bool has_header,
                  std::size_t field_count, const fs::path& path, std::string_view role) {
  if (spec.empty()) return -1;
  if (auto index = ParseInt(spec); index && *index >= 0) {
    if (static_cast<std::size_t>(*index) >= field_count) {
      throw InvalidArgument(fmt::format("{}: --columns {}={} is out of range (the file has {} fields)",
                                        path.string(), role, spec, field_count));
    }
    return static_cast<int>(*index);
  }
  if (has_header) {
    for (std::size_t k = 0; k < raw_header.size(); ++k) {
      if (raw_header[k] == spec || NormaliseName(raw_header[k]) == NormaliseName(spec)) return static_cast<int>(k);
    }
  }
  throw InvalidArgument(fmt::format("{}: --columns {}={} names no column{}", path.string(), role, spec,
                                    has_header ? fmt::format(" (header: {})", fmt::join(raw_header, ", "))
                                               : " (the file has no header: use 0-based indices)"));
}

char DetectDelimiter(std::string_view line) {
  if (line.find('\t') != std::string_view::npos) return '\t';
  std::size_t commas = std::count(line.begin(), line.end(), ',');
  std::size_t semicolons = std::count(line.begin(), line.end(), ';');
  std::size_t pipes = std::count(line.begin(), line.end(), '|');
  if (commas == 0 && semicolons == 0 && pipes == 0) {
    return line.find(' ') != std::string_view::npos ? ' ' : ',';
  }
  if (commas >= semicolons && commas >= pipes) return ',';
  return semicolons >= pipes ? ';' : '|';
}

std::string DelimiterName(char delimiter) {
  switch (delimiter) {
    case '\t': return "tab";
    case ',': return "comma";
    case ';': return "semicolon";
    case '|': return "pipe";
    case ' ': return "space";
    default: return fmt::format("'{}'", delimiter);
  }
}

DelimitedLayout GenericLayout(const fs::path& path, std::string_view first_line, const IngestOptions& options,
                              TimeFormat default_time) {
  DelimitedLayout layout;
  if (options.delimiter) {
    layout.delimiter = *options.delimiter;
  } else if (first_line.find("::") != std::string_view::npos) {
    layout.separator = "::";
  } else {
    layout.delimiter = DetectDelimiter(first_line);
  }
  layout.time_format = options.time_format == TimeFormat::kAuto ? default_time : options.time_format;
  std::vector<std::string> raw_header = SplitHeader(first_line, layout);
  std::vector<std::string> header;
  for (const auto& name : raw_header) header.push_back(NormaliseName(name));

  bool recognised = FindRole(header, UserNames()) >= 0 && FindRole(header, ItemNames()) >= 0;
  bool has_header = options.has_header.value_or(recognised);
  std::size_t field_count = raw_header.size();
  if (!options.columns.empty()) {
    layout.user = ResolveColumn(options.columns.user, raw_header, has_header, field_count, path, "user");
    layout.item = ResolveColumn(options.columns.item, raw_header, has_header, field_count, path, "item");
    layout.rating = ResolveColumn(options.columns.rating, raw_header, has_header, field_count, path, "rating");
    layout.time = ResolveColumn(options.columns.time, raw_header, has_header, field_count, path, "time");
    if (layout.user < 0 || layout.item < 0) {
      throw InvalidArgument("--columns needs at least user=COL,item=COL");
    }
  } else if (has_header) {
    layout.user = FindRole(header, UserNames());
    layout.item = FindRole(header, ItemNames());
    if (layout.user < 0 || layout.item < 0) {
      throw FormatError(fmt::format(
          "{}: cannot tell the user and item columns from the header ({}); pass --columns user=COL,item=COL",
          path.string(), fmt::join(raw_header, ", ")));
    }
    layout.rating = FindRole(header, RatingNames());
    layout.time = FindRole(header, TimeNames());
  } else {
    // No header: positional user, item[, rating[, time]].
    if (field_count < 2) {
      throw FormatError(fmt::format("{}: unrecognised format (one field per line; expected user{}item...)",
                                    path.string(), DelimiterName(layout.delimiter)));
    }
    layout.user = 0;
    layout.item = 1;
    layout.rating = field_count >= 3 ? 2 : -1;
    layout.time = field_count >= 4 ? 3 : -1;
  }
  layout.header = has_header;
  layout.expected_fields = has_header ? field_count : 0;
  auto column_name = [&](int index) -> std::string {
    if (index < 0) return "-";
    if (has_header && static_cast<std::size_t>(index) < raw_header.size()) return raw_header[index];
    return fmt::format("#{}", index);
  };
  layout.description = fmt::format(
      "{}-separated{}, user={} item={} rating={} time={} ({})",
      layout.separator.empty() ? DelimiterName(layout.delimiter) : "'::'", has_header ? " with header" : "",
      column_name(layout.user), column_name(layout.item),
      layout.rating < 0 ? std::string("- (weight 1)") : column_name(layout.rating), column_name(layout.time),
      Name(layout.time_format));
  return layout;
}

}  // namespace

std::unique_ptr<LineParser> MakeLineParser(InputFormat format, const fs::path& path, std::string_view first_line,
                                           const IngestOptions& options) {
  auto time_or = [&](TimeFormat fallback) {
    return options.time_format == TimeFormat::kAuto ? fallback : options.time_format;
  };
  switch (format) {
    case InputFormat::kMovieLens: {
      DelimitedLayout layout;
      if (first_line.find("::") != std::string_view::npos) {
        layout.separator = "::";
        layout.description = "MovieLens 1M/10M ratings.dat (UserID::MovieID::Rating::Timestamp)";
      } else if (first_line.find('\t') != std::string_view::npos) {
        layout.delimiter = '\t';
        layout.description = "MovieLens 100K u.data (user TAB item TAB rating TAB timestamp)";
      } else {
        // ratings.csv of 20M/25M/latest: header userId,movieId,rating,timestamp.
        DelimitedLayout generic = GenericLayout(path, first_line, options, TimeFormat::kUnixSeconds);
        generic.description = "MovieLens ratings.csv: " + generic.description;
        return std::make_unique<DelimitedParser>(generic);
      }
      layout.user = 0;
      layout.item = 1;
      layout.rating = 2;
      layout.time = 3;
      layout.expected_fields = 4;
      layout.time_format = time_or(TimeFormat::kUnixSeconds);
      layout.allow_quotes = false;
      return std::make_unique<DelimitedParser>(layout);
    }
    case InputFormat::kAmazon2023Csv: {
      DelimitedLayout layout = GenericLayout(path, first_line, options, TimeFormat::kUnixMillis);
      layout.description = "Amazon Reviews 2023 benchmark CSV: " + layout.description;
      return std::make_unique<DelimitedParser>(layout);
    }
    case InputFormat::kAmazonRatingsCsv: {
      DelimitedLayout layout;
      layout.delimiter = ',';
      layout.item = 0;
      layout.user = 1;
      layout.rating = 2;
      layout.time = 3;
      layout.expected_fields = 4;
      layout.time_format = time_or(TimeFormat::kUnixSeconds);
      layout.description = "Amazon 2014/2018 ratings-only CSV (item,user,rating,timestamp; no header)";
      return std::make_unique<DelimitedParser>(layout);
    }
    case InputFormat::kCsv: {
      return std::make_unique<DelimitedParser>(GenericLayout(path, first_line, options, TimeFormat::kAuto));
    }
    case InputFormat::kAmazon2023: {
      JsonLayout layout;
      layout.user_keys = {"user_id"};
      layout.item_keys = {"parent_asin", "asin"};
      layout.rating_key = "rating";
      layout.time_key = "timestamp";
      layout.time_format = time_or(TimeFormat::kUnixMillis);
      layout.description = "Amazon Reviews 2023 JSON Lines (user_id, parent_asin|asin, rating, timestamp ms)";
      return std::make_unique<JsonLinesParser>(layout);
    }
    case InputFormat::kAmazon2018: {
      JsonLayout layout;
      layout.user_keys = {"reviewerID"};
      layout.item_keys = {"asin"};
      layout.rating_key = "overall";
      layout.time_key = "unixReviewTime";
      layout.time_format = time_or(TimeFormat::kUnixSeconds);
      layout.description = "Amazon 2014/2018 review JSON lines (reviewerID, asin, overall, unixReviewTime)";
      return std::make_unique<JsonLinesParser>(layout);
    }
    case InputFormat::kNetflix:
      return std::make_unique<NetflixParser>();
    case InputFormat::kAuto:
      break;
  }
  throw InvalidArgument("internal: MakeLineParser needs a concrete format");
}

}  // namespace recforge::data
