#include "recforge/data/describe.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "recforge/core/error.h"
#include "recforge/data/text_fields.h"

namespace recforge::data {

using nlohmann::json;

namespace {

// Ratings up to this many distinct values get one histogram entry per value;
// beyond it (continuous weights, play counts) 10 equal-width bins.
constexpr std::size_t kMaxDistinctRatings = 20;
constexpr int kRatingBins = 10;

// A float as the shortest double that prints like it (3.5, 0.1), so JSON shows 0.1
// rather than 0.10000000149011612.
double FloatForJson(float value) {
  char buffer[64];
  auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
  double out = value;
  std::from_chars(buffer, end, out);
  return out;
}

// Quantile with linear interpolation between closest ranks (NumPy's default, "type 7"):
// position p * (n - 1) in the sorted values.
double Quantile(const std::vector<std::uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double position = p * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return static_cast<double>(sorted[below]) +
         fraction * (static_cast<double>(sorted[above]) - static_cast<double>(sorted[below]));
}

// Count quantiles over the entities with at least one row.
json CountSummary(const std::vector<std::uint64_t>& counts_by_index) {
  std::vector<std::uint64_t> counts;
  counts.reserve(counts_by_index.size());
  std::uint64_t total = 0;
  for (std::uint64_t count : counts_by_index) {
    if (count == 0) continue;
    counts.push_back(count);
    total += count;
  }
  std::sort(counts.begin(), counts.end());
  const double mean =
      counts.empty() ? 0.0 : static_cast<double>(total) / static_cast<double>(counts.size());
  return json{{"min", counts.empty() ? 0 : counts.front()},
              {"p25", Quantile(counts, 0.25)},
              {"p50", Quantile(counts, 0.50)},
              {"p75", Quantile(counts, 0.75)},
              {"p90", Quantile(counts, 0.90)},
              {"p99", Quantile(counts, 0.99)},
              {"max", counts.empty() ? 0 : counts.back()},
              {"mean", mean}};
}

json RatingSummary(const std::vector<float>& ratings) {
  float min_rating = std::numeric_limits<float>::infinity();
  float max_rating = -std::numeric_limits<float>::infinity();
  double sum = 0;
  std::uint64_t finite = 0;
  // Distinct values, sorted, while there are at most kMaxDistinctRatings of them.
  std::vector<std::pair<float, std::uint64_t>> distinct;
  bool few_values = true;
  for (float rating : ratings) {
    if (!std::isfinite(rating)) continue;
    ++finite;
    sum += rating;
    min_rating = std::min(min_rating, rating);
    max_rating = std::max(max_rating, rating);
    if (!few_values) continue;
    auto it = std::lower_bound(distinct.begin(), distinct.end(), rating,
                               [](const auto& entry, float value) { return entry.first < value; });
    if (it != distinct.end() && it->first == rating) {
      ++it->second;
    } else if (distinct.size() < kMaxDistinctRatings) {
      distinct.insert(it, {rating, 1});
    } else {
      few_values = false;
    }
  }
  json summary = json::object();
  if (finite == 0) {
    summary["min"] = nullptr;
    summary["max"] = nullptr;
    summary["mean"] = nullptr;
    summary["histogram"] = json::array();
    return summary;
  }
  summary["min"] = FloatForJson(min_rating);
  summary["max"] = FloatForJson(max_rating);
  summary["mean"] = sum / static_cast<double>(finite);
  if (finite < ratings.size()) summary["non_finite"] = ratings.size() - finite;
  json histogram = json::array();
  if (few_values) {
    summary["histogram_kind"] = "values";
    for (const auto& [value, count] : distinct)
      histogram.push_back({{"value", FloatForJson(value)}, {"count", count}});
  } else {
    summary["histogram_kind"] = "bins";
    const double lo = min_rating;
    const double width = (static_cast<double>(max_rating) - lo) / kRatingBins;
    std::vector<std::uint64_t> bins(kRatingBins, 0);
    for (float rating : ratings) {
      if (!std::isfinite(rating)) continue;
      // The top edge belongs to the last bin.
      const auto bin = static_cast<int>((rating - lo) / width);
      ++bins[static_cast<std::size_t>(std::clamp(bin, 0, kRatingBins - 1))];
    }
    for (int bin = 0; bin < kRatingBins; ++bin) {
      const double bin_hi =
          bin == kRatingBins - 1 ? static_cast<double>(max_rating) : lo + width * (bin + 1);
      histogram.push_back({{"lo", lo + width * bin},
                           {"hi", bin_hi},
                           {"count", bins[static_cast<std::size_t>(bin)]}});
    }
  }
  summary["histogram"] = std::move(histogram);
  return summary;
}

json TimeSummary(const std::vector<Timestamp>& times) {
  if (times.empty()) return nullptr;
  const auto [lo, hi] = std::minmax_element(times.begin(), times.end());
  return json{
      {"min", *lo}, {"max", *hi}, {"min_iso", FormatIsoTime(*lo)}, {"max_iso", FormatIsoTime(*hi)}};
}

// Total parse errors recorded in a meta.json: raw datasets store the ErrorTally under
// "parse_errors", prepared ones carry the source's under "source_parse_errors".
std::uint64_t ParseErrorTotal(const json& meta, json* reasons) {
  for (const char* key : {"parse_errors", "source_parse_errors"}) {
    if (!meta.contains(key)) continue;
    const json& value = meta[key];
    if (value.is_number_unsigned() || value.is_number_integer()) return value.get<std::uint64_t>();
    if (value.is_object()) {
      if (reasons != nullptr && value.contains("by_reason")) *reasons = value["by_reason"];
      return value.value("total", std::uint64_t{0});
    }
  }
  return 0;
}

void CopyProvenance(const json& meta, json& out) {
  if (meta.contains("source") && meta["source"].is_string()) out["source"] = meta["source"];
  if (meta.contains("parameters")) out["parameters"] = meta["parameters"];
}

// ---------------------------------------------------------------------------------
// Text rendering.

std::string Grouped(std::uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (std::size_t k = 0; k < digits.size(); ++k) {
    if (k > 0 && (digits.size() - k) % 3 == 0) out += ',';
    out += digits[k];
  }
  return out;
}

std::string SignedGrouped(bool negative, std::uint64_t magnitude) {
  std::string out = negative ? "-" : "";
  out += Grouped(magnitude);
  return out;
}

// Whole numbers with separators, others with at most 3 decimals, trailing zeros removed.
std::string Number(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_number_unsigned()) return Grouped(value.get<std::uint64_t>());
  if (value.is_number_integer()) {
    const auto v = value.get<std::int64_t>();
    return SignedGrouped(v < 0,
                         v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v));
  }
  if (value.is_number()) {
    const double v = value.get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
      return SignedGrouped(v < 0, static_cast<std::uint64_t>(std::fabs(v)));
    }
    std::string text = fmt::format("{:.3f}", v);
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
    return text;
  }
  return value.dump();
}

std::uint64_t GetCount(const json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_number()) return 0;
  return object[key].get<std::uint64_t>();
}

void RenderLine(std::string& out, const std::string& indent, std::string_view label,
                std::string_view text) {
  out += fmt::format("{}{:<15}{}\n", indent, label, text);
}

void RenderStats(std::string& out, const json& stats, const std::string& indent) {
  const std::string pad(indent.size() + 15, ' ');
  if (stats.contains("rating") && stats["rating"].is_object()) {
    const json& rating = stats["rating"];
    if (rating["histogram"].empty()) {
      RenderLine(out, indent, "ratings", "-");
    } else {
      RenderLine(out, indent, "ratings",
                 fmt::format("min {}  max {}  mean {}", Number(rating["min"]),
                             Number(rating["max"]), Number(rating["mean"])));
      std::uint64_t total = 0, largest = 0;
      std::vector<std::pair<std::string, std::uint64_t>> entries;
      std::size_t label_width = 0, count_width = 0;
      for (const auto& entry : rating["histogram"]) {
        const auto count = entry["count"].get<std::uint64_t>();
        entries.emplace_back(entry.contains("value")
                                 ? Number(entry["value"])
                                 : fmt::format("{}..{}", Number(entry["lo"]), Number(entry["hi"])),
                             count);
        total += count;
        largest = std::max(largest, count);
        label_width = std::max(label_width, entries.back().first.size());
        count_width = std::max(count_width, Grouped(count).size());
      }
      for (const auto& [label, count] : entries) {
        const auto bar =
            static_cast<std::size_t>(largest == 0 ? 0 : (30 * count + largest - 1) / largest);
        const double percent =
            total == 0 ? 0.0 : 100.0 * static_cast<double>(count) / static_cast<double>(total);
        out += fmt::format("{}{:>{}}  {:>{}}  {:5.1f}%  {}\n", pad, label, label_width,
                           Grouped(count), count_width, percent, std::string(bar, '#'));
      }
    }
  }
  for (const char* key : {"per_user", "per_item"}) {
    if (!stats.contains(key) || !stats[key].is_object()) continue;
    const json& q = stats[key];
    RenderLine(
        out, indent, key[4] == 'u' ? "per user" : "per item",
        fmt::format("min {}  p25 {}  p50 {}  p75 {}  p90 {}  p99 {}  max {}  mean {}",
                    Number(q["min"]), Number(q["p25"]), Number(q["p50"]), Number(q["p75"]),
                    Number(q["p90"]), Number(q["p99"]), Number(q["max"]), Number(q["mean"])));
  }
  if (stats.contains("time")) {
    const json& time = stats["time"];
    RenderLine(out, indent, "time",
               time.is_object() ? fmt::format("{} .. {}", time["min_iso"].get<std::string>(),
                                              time["max_iso"].get<std::string>())
                                : "-");
  }
}

void RenderCounts(std::string& out, const json& stats, const std::string& indent) {
  RenderLine(out, indent, "users", Grouped(GetCount(stats, "users")));
  RenderLine(out, indent, "items", Grouped(GetCount(stats, "items")));
  std::string interactions = Grouped(GetCount(stats, "interactions"));
  if (stats.contains("rows")) {
    interactions += fmt::format(" distinct pairs ({} rows)", Grouped(GetCount(stats, "rows")));
  }
  if (stats.contains("density") && stats["density"].is_number()) {
    interactions += fmt::format(", density {:.4f}%", 100.0 * stats["density"].get<double>());
  }
  RenderLine(out, indent, "interactions", interactions);
}

}  // namespace

json DescribeInteractions(const Interactions& interactions, std::size_t n_users,
                          std::size_t n_items, int threads) {
  std::vector<std::uint64_t> per_user(n_users, 0), per_item(n_items, 0);
  for (std::size_t row = 0; row < interactions.size(); ++row) {
    const UserIndex user = interactions.users[row];
    const ItemIndex item = interactions.items[row];
    // Checked before CountInteractions, which indexes by them: a corrupt column file
    // must be an error, not a crash.
    if (user >= n_users || item >= n_items) {
      throw FormatError(
          fmt::format("row {}: user index {} / item index {} outside the id maps ({} users, "
                      "{} items)",
                      row, user, item, n_users, n_items));
    }
    ++per_user[user];
    ++per_item[item];
  }
  const BasicCounts counts =
      CountInteractions(interactions, n_users, n_items, std::max(1, threads));

  json out = json::object();
  out["users"] = counts.users;
  out["items"] = counts.items;
  out["interactions"] = counts.interactions;
  out["rows"] = counts.rows;
  const double cells = static_cast<double>(counts.users) * static_cast<double>(counts.items);
  out["density"] = cells > 0 ? static_cast<double>(counts.interactions) / cells : 0.0;
  out["rating"] = RatingSummary(interactions.ratings);
  out["per_user"] = CountSummary(per_user);
  out["per_item"] = CountSummary(per_item);
  out["time"] = TimeSummary(interactions.times);
  return out;
}

json DescribeDirectory(const fs::path& dir, const Context& ctx) {
  const json meta = ReadMeta(dir);
  const std::string kind = meta.value("kind", std::string("raw"));
  const int threads = std::max(1, ctx.threads);
  json out;

  if (kind == "prepared") {
    const PreparedDataset prepared = LoadPrepared(dir);
    out = json::object();
    out["path"] = dir.string();
    out["kind"] = "prepared";
    CopyProvenance(meta, out);
    const char* names[3] = {"train", "val", "test"};
    const Interactions* parts[3] = {&prepared.train, prepared.val ? &*prepared.val : nullptr,
                                    &prepared.test};
    // Users/items present in any part: summing per-part counts would count a user
    // who is in train and test twice.
    std::vector<char> user_seen(prepared.users.size(), 0), item_seen(prepared.items.size(), 0);
    std::uint64_t interactions = 0, rows = 0;
    for (int k = 0; k < 3; ++k) {
      if (parts[k] == nullptr) continue;
      json part =
          DescribeInteractions(*parts[k], prepared.users.size(), prepared.items.size(), threads);
      part["parse_errors"] = 0;
      interactions += part["interactions"].get<std::uint64_t>();
      rows += part["rows"].get<std::uint64_t>();
      for (UserIndex user : parts[k]->users) user_seen[user] = 1;
      for (ItemIndex item : parts[k]->items) item_seen[item] = 1;
      out[names[k]] = std::move(part);
    }
    const auto users =
        static_cast<std::uint64_t>(std::count(user_seen.begin(), user_seen.end(), 1));
    const auto items =
        static_cast<std::uint64_t>(std::count(item_seen.begin(), item_seen.end(), 1));
    out["users"] = users;
    out["items"] = items;
    out["interactions"] = interactions;
    out["rows"] = rows;
    const double cells = static_cast<double>(users) * static_cast<double>(items);
    out["density"] = cells > 0 ? static_cast<double>(interactions) / cells : 0.0;
    out["id_map_users"] = prepared.users.size();
    out["id_map_items"] = prepared.items.size();
    out["items_with_metadata"] = prepared.item_info.size();
    json reasons = json::object();
    out["parse_errors"] = ParseErrorTotal(meta, &reasons);
    out["parse_error_reasons"] = reasons;
    return out;
  }

  if (kind == "part") {
    // One part of a prepared dataset (train/ val/ test/): columns only, id map sizes
    // from its meta.json.
    const auto n_users = meta.at("n_users").get<std::size_t>();
    const auto n_items = meta.at("n_items").get<std::size_t>();
    const Interactions part = LoadColumns(dir, meta.at("rows").get<std::uint64_t>());
    out = DescribeInteractions(part, n_users, n_items, threads);
    out["path"] = dir.string();
    out["kind"] = "part";
    out["part"] = meta.value("part", std::string());
    out["parse_errors"] = 0;
    out["parse_error_reasons"] = json::object();
    return out;
  }

  const Dataset dataset = LoadDataset(dir);
  out = DescribeInteractions(dataset.interactions, dataset.n_users(), dataset.n_items(), threads);
  out["path"] = dir.string();
  out["kind"] = kind;
  CopyProvenance(meta, out);
  out["id_map_users"] = dataset.n_users();
  out["id_map_items"] = dataset.n_items();
  out["items_with_metadata"] = dataset.item_info.size();
  json reasons = json::object();
  out["parse_errors"] = ParseErrorTotal(meta, &reasons);
  out["parse_error_reasons"] = reasons;
  return out;
}

std::string FormatDescription(const json& description) {
  std::string out;
  if (description.contains("path")) {
    std::string title = fmt::format("dataset {} ({}", description["path"].get<std::string>(),
                                    description.value("kind", std::string("raw")));
    if (description.contains("source") && description["source"].is_string()) {
      title += ", source ";
      title += description["source"].get<std::string>();
    }
    out += title + ")\n";
  } else {
    out += "interactions\n";  // DescribeInteractions output: no directory
  }
  RenderCounts(out, description, "  ");
  if (description.contains("parse_errors")) {
    RenderLine(out, "  ", "parse errors", Grouped(GetCount(description, "parse_errors")));
  }
  if (description.contains("parse_error_reasons") &&
      description["parse_error_reasons"].is_object()) {
    for (const auto& [reason, count] : description["parse_error_reasons"].items()) {
      RenderLine(out, "    ", reason, Number(count));
    }
  }
  if (GetCount(description, "items_with_metadata") > 0) {
    RenderLine(out, "  ", "item metadata",
               Grouped(GetCount(description, "items_with_metadata")) + " items");
  }

  const bool prepared = description.contains("train");
  if (prepared) {
    out += fmt::format("\n  {:<6} {:>12} {:>10} {:>14} {:>14} {:>10}\n", "part", "users", "items",
                       "interactions", "rows", "density");
    for (const char* name : {"train", "val", "test"}) {
      if (!description.contains(name)) continue;
      const json& part = description[name];
      out += fmt::format("  {:<6} {:>12} {:>10} {:>14} {:>14} {:>9.4f}%\n", name,
                         Grouped(GetCount(part, "users")), Grouped(GetCount(part, "items")),
                         Grouped(GetCount(part, "interactions")), Grouped(GetCount(part, "rows")),
                         100.0 * part.value("density", 0.0));
    }
    for (const char* name : {"train", "val", "test"}) {
      if (!description.contains(name)) continue;
      out += fmt::format("\n  {}\n", name);
      RenderStats(out, description[name], "    ");
    }
  } else {
    RenderStats(out, description, "  ");
  }
  if (description.contains("parameters") && !description["parameters"].is_null()) {
    out += "\n";
    RenderLine(out, "  ", "parameters", description["parameters"].dump());
  }
  return out;
}

}  // namespace recforge::data
