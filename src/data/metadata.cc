#include "recforge/data/metadata.h"

#include <simdjson.h>

#include <array>

#include <fmt/format.h>

#include "recforge/core/error.h"
#include "recforge/data/text_fields.h"

namespace recforge::data {
namespace {

// u.genre order of the 19 genre flags in MovieLens 100K u.item.
constexpr std::array<const char*, 19> kMovieLens100kGenres = {
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western"};

enum class MetadataKind { kMovieLens100k, kMovieLensDat, kMovieLensCsv, kAmazonMeta, kNetflixTitles, kLastfmArtists };

std::string BaseName(const fs::path& path) {
  std::string name = path.filename().string();
  if (name.ends_with(".gz")) name.resize(name.size() - 3);
  return name;
}

MetadataKind DetectKind(const fs::path& path, std::string_view first_line) {
  std::string name = BaseName(path);
  std::string_view trimmed = Trim(first_line);
  if (!trimmed.empty() && trimmed.front() == '{') return MetadataKind::kAmazonMeta;
  if (name == "u.item" || std::count(trimmed.begin(), trimmed.end(), '|') >= 20) return MetadataKind::kMovieLens100k;
  if (trimmed.find("::") != std::string_view::npos) return MetadataKind::kMovieLensDat;
  if (trimmed.starts_with("movieId,title")) return MetadataKind::kMovieLensCsv;
  if (trimmed.starts_with("id\tname")) return MetadataKind::kLastfmArtists;
  if (name.starts_with("movie_titles")) return MetadataKind::kNetflixTitles;
  throw FormatError(fmt::format(
      "{}: unrecognised item metadata (expected u.item, movies.dat, movies.csv, meta_*.jsonl, movie_titles, "
      "artists.dat)",
      path.string()));
}

// "Toy Story (1995)" -> year 1995 in extra (the title is kept as written).
void ExtractYear(ItemInfo& item) {
  std::string_view title = Trim(item.title);
  if (title.size() >= 6 && title.back() == ')' && title[title.size() - 6] == '(') {
    if (auto year = ParseInt(title.substr(title.size() - 5, 4))) item.extra["year"] = *year;
  }
}

void AddError(ErrorTally& errors, std::map<std::string, std::uint64_t>& counts, const fs::path& path,
              std::uint64_t line, std::string_view reason, std::size_t max_examples) {
  ++errors.total;
  ++counts[std::string(reason)];
  if (errors.examples.size() < max_examples) {
    errors.examples.push_back(fmt::format("{}:{}: {}", path.string(), line, reason));
  }
}

std::vector<std::string> SplitGenres(std::string_view text) {
  std::vector<std::string> genres;
  if (text == "(no genres listed)") return genres;
  std::array<std::string_view, 32> parts;
  std::size_t count = std::min<std::size_t>(SplitSimple(text, '|', parts.data(), parts.size()), parts.size());
  for (std::size_t k = 0; k < count; ++k) {
    std::string_view genre = Trim(parts[k]);
    if (!genre.empty()) genres.emplace_back(genre);
  }
  return genres;
}

std::string JsonString(simdjson::dom::element element) {
  std::string_view text;
  if (element.get_string().get(text) == simdjson::SUCCESS) return std::string(text);
  return {};
}

nlohmann::json JsonScalar(simdjson::dom::element element) {
  double number;
  std::string_view text;
  if (element.get_double().get(number) == simdjson::SUCCESS) return number;
  if (element.get_string().get(text) == simdjson::SUCCESS) return std::string(text);
  return nullptr;
}

}  // namespace

std::vector<ItemInfo> ReadItemMetadata(const fs::path& path, ErrorTally& errors, std::size_t max_examples) {
  std::string content = ReadFileToString(path);
  std::vector<ItemInfo> items;
  std::string_view first_line;
  ForEachLine(content, 1, [&](std::string_view line, std::uint64_t) {
    if (first_line.empty() && !Trim(line).empty()) first_line = line;
  });
  if (first_line.empty()) throw FormatError(fmt::format("{}: file is empty", path.string()));
  MetadataKind kind = DetectKind(path, first_line);
  std::map<std::string, std::uint64_t> counts;
  simdjson::dom::parser json_parser;
  std::vector<std::string> fields;

  ForEachLine(content, 1, [&](std::string_view line, std::uint64_t line_number) {
    if (Trim(line).empty()) return;
    ItemInfo item;
    switch (kind) {
      case MetadataKind::kMovieLens100k: {
        std::array<std::string_view, 32> parts;
        std::size_t count = SplitSimple(line, '|', parts.data(), parts.size());
        if (count != 24) {
          AddError(errors, counts, path, line_number, "wrong_field_count", max_examples);
          return;
        }
        item.item_id = std::string(Trim(parts[0]));
        item.title = ToUtf8(Trim(parts[1]));  // u.item is Latin-1
        for (std::size_t g = 0; g < kMovieLens100kGenres.size(); ++g) {
          if (Trim(parts[5 + g]) == "1") item.categories.emplace_back(kMovieLens100kGenres[g]);
        }
        if (!Trim(parts[2]).empty()) item.extra["release_date"] = std::string(Trim(parts[2]));
        if (!Trim(parts[4]).empty()) item.extra["url"] = ToUtf8(Trim(parts[4]));
        ExtractYear(item);
        break;
      }
      case MetadataKind::kMovieLensDat: {
        std::array<std::string_view, 4> parts;
        if (SplitOn(line, "::", parts.data(), parts.size()) != 3) {
          AddError(errors, counts, path, line_number, "wrong_field_count", max_examples);
          return;
        }
        item.item_id = std::string(Trim(parts[0]));
        item.title = ToUtf8(Trim(parts[1]));  // movies.dat is Latin-1
        item.categories = SplitGenres(Trim(parts[2]));
        ExtractYear(item);
        break;
      }
      case MetadataKind::kMovieLensCsv: {
        if (line_number == 1 && Trim(line).starts_with("movieId")) return;  // header
        if (!SplitQuoted(line, ',', fields) || fields.size() != 3) {
          AddError(errors, counts, path, line_number, fields.size() != 3 ? "wrong_field_count" : "bad_quotes",
                   max_examples);
          return;
        }
        item.item_id = std::string(Trim(fields[0]));
        item.title = ToUtf8(Trim(fields[1]));
        item.categories = SplitGenres(Trim(fields[2]));
        ExtractYear(item);
        break;
      }
      case MetadataKind::kNetflixTitles: {
        // id,year,title — the title may contain commas: split on the first two only.
        std::size_t first = line.find(',');
        std::size_t second = first == std::string_view::npos ? first : line.find(',', first + 1);
        if (second == std::string_view::npos) {
          AddError(errors, counts, path, line_number, "wrong_field_count", max_examples);
          return;
        }
        item.item_id = std::string(Trim(line.substr(0, first)));
        std::string_view year = Trim(line.substr(first + 1, second - first - 1));
        item.title = ToUtf8(Trim(line.substr(second + 1)));  // Latin-1
        if (auto y = ParseInt(year)) item.extra["year"] = *y;  // "NULL" stays absent
        break;
      }
      case MetadataKind::kLastfmArtists: {
        if (line_number == 1) return;  // header
        std::array<std::string_view, 8> parts;
        std::size_t count = SplitSimple(line, '\t', parts.data(), parts.size());
        if (count < 2) {
          AddError(errors, counts, path, line_number, "wrong_field_count", max_examples);
          return;
        }
        item.item_id = std::string(Trim(parts[0]));
        item.title = ToUtf8(Trim(parts[1]));
        if (count >= 3 && !Trim(parts[2]).empty()) item.extra["url"] = ToUtf8(Trim(parts[2]));
        break;
      }
      case MetadataKind::kAmazonMeta: {
        simdjson::dom::element doc;
        if (json_parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
          AddError(errors, counts, path, line_number, "invalid_json", max_examples);
          return;
        }
        simdjson::dom::element value;
        if (doc["parent_asin"].get(value) == simdjson::SUCCESS) item.item_id = JsonString(value);
        if (item.item_id.empty() && doc["asin"].get(value) == simdjson::SUCCESS) item.item_id = JsonString(value);
        if (item.item_id.empty()) {
          AddError(errors, counts, path, line_number, "missing_field", max_examples);
          return;
        }
        if (doc["title"].get(value) == simdjson::SUCCESS) item.title = JsonString(value);
        if (doc["main_category"].get(value) == simdjson::SUCCESS) {
          std::string main = JsonString(value);
          if (!main.empty()) item.categories.push_back(main);
        }
        simdjson::dom::array categories;
        if (doc["categories"].get(categories) == simdjson::SUCCESS) {
          for (auto category : categories) {
            std::string name = JsonString(category);
            if (!name.empty() && std::find(item.categories.begin(), item.categories.end(), name) == item.categories.end()) {
              item.categories.push_back(std::move(name));
            }
          }
        }
        for (const char* key : {"store", "price", "average_rating", "rating_number"}) {
          if (doc[key].get(value) == simdjson::SUCCESS) {
            nlohmann::json scalar = JsonScalar(value);
            if (!scalar.is_null()) item.extra[key] = scalar;
          }
        }
        break;
      }
    }
    items.push_back(std::move(item));
  });
  for (auto& [reason, count] : counts) errors.by_reason.emplace_back(reason, count);
  return items;
}

std::optional<fs::path> FindMetadataFor(const fs::path& interactions_file, InputFormat format) {
  fs::path dir = interactions_file.parent_path();
  std::string name = BaseName(interactions_file);
  std::vector<fs::path> candidates;
  if (name == "u.data" || name.ends_with(".base") || name.ends_with(".test")) candidates.push_back(dir / "u.item");
  if (name == "ratings.dat") candidates.push_back(dir / "movies.dat");
  if (name == "ratings.csv") candidates.push_back(dir / "movies.csv");
  if (name == "user_artists.dat") candidates.push_back(dir / "artists.dat");
  if (format == InputFormat::kNetflix) {
    candidates.push_back(dir / "movie_titles.txt");
    candidates.push_back(dir / "movie_titles.csv");
    candidates.push_back(dir.parent_path() / "movie_titles.txt");
  }
  if (format == InputFormat::kAmazon2023 && name.ends_with(".jsonl")) {
    candidates.push_back(dir / ("meta_" + name));
    candidates.push_back(dir / ("meta_" + name + ".gz"));
  }
  for (const auto& candidate : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate;
  }
  return std::nullopt;
}

}  // namespace recforge::data
