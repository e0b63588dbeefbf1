#include "recforge/data/dataset.h"

#include <algorithm>
#include <future>
#include <numeric>
#include <thread>

#include <fmt/format.h>

#include "recforge/core/error.h"
#include "recforge/core/memory.h"
#include "recforge/core/parallel.h"

namespace recforge::data {

using nlohmann::json;

void Interactions::Reserve(std::size_t n) {
  ReserveHugePages(users, n);
  ReserveHugePages(items, n);
  ReserveHugePages(ratings, n);
  ReserveHugePages(times, n);
}

void Interactions::Resize(std::size_t n) {
  users.resize(n);
  items.resize(n);
  ratings.resize(n);
  times.resize(n);
}

void Interactions::Clear() {
  users.clear();
  items.clear();
  ratings.clear();
  times.clear();
}

Interactions Interactions::Gather(const std::vector<RowIndex>& rows) const {
  Interactions out;
  out.Resize(rows.size());
  for (std::size_t k = 0; k < rows.size(); ++k) {
    RowIndex row = rows[k];
    out.users[k] = users[row];
    out.items[k] = items[row];
    out.ratings[k] = ratings[row];
    out.times[k] = times[row];
  }
  return out;
}

std::uint32_t IdMap::Add(std::string id) {
  auto index = static_cast<std::uint32_t>(ids_.size());
  ids_.push_back(std::move(id));
  index_.clear();
  return index;
}

void IdMap::BuildIndex() const {
  if (!index_.empty() || ids_.empty()) return;
  index_.reserve(ids_.size());
  for (std::uint32_t k = 0; k < ids_.size(); ++k) index_.emplace(ids_[k], k);
}

std::optional<std::uint32_t> IdMap::Find(std::string_view id) const {
  BuildIndex();
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

json ErrorTally::ToJson() const {
  json by = json::object();
  for (const auto& [reason, count] : by_reason) by[reason] = count;
  return json{{"total", total}, {"by_reason", by}, {"examples", examples}};
}

ErrorTally ErrorTally::FromJson(const json& j) {
  ErrorTally tally;
  if (!j.is_object()) return tally;
  tally.total = j.value("total", std::uint64_t{0});
  if (j.contains("by_reason")) {
    for (const auto& [reason, count] : j["by_reason"].items()) {
      tally.by_reason.emplace_back(reason, count.get<std::uint64_t>());
    }
  }
  if (j.contains("examples")) tally.examples = j["examples"].get<std::vector<std::string>>();
  return tally;
}

BasicCounts CountInteractions(const Interactions& interactions, std::size_t n_users,
                              std::size_t n_items, int threads) {
  BasicCounts counts;
  counts.rows = interactions.size();
  // Bucket items by user (counting sort), then sort each user's items to count
  // distinct pairs. Memory: one u32 per row plus the offsets.
  std::vector<std::uint64_t> offsets(n_users + 1, 0);
  for (UserIndex user : interactions.users) ++offsets[user + 1];
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  std::vector<ItemIndex> bucketed(interactions.size());
  {
    std::vector<std::uint64_t> cursor(offsets.begin(), offsets.end() - 1);
    for (std::size_t row = 0; row < interactions.size(); ++row) {
      bucketed[cursor[interactions.users[row]]++] = interactions.items[row];
    }
  }
  std::vector<std::uint64_t> distinct_per_user(n_users, 0);
  ParallelFor<std::size_t>(
      0, n_users, threads,
      [&](std::size_t user) {
        auto begin = bucketed.begin() + static_cast<std::ptrdiff_t>(offsets[user]);
        auto end = bucketed.begin() + static_cast<std::ptrdiff_t>(offsets[user + 1]);
        std::sort(begin, end);
        distinct_per_user[user] = static_cast<std::uint64_t>(std::unique(begin, end) - begin);
      },
      Schedule::kDynamic, 256);
  std::vector<char> item_seen(n_items, 0);
  for (ItemIndex item : interactions.items) item_seen[item] = 1;
  for (std::size_t user = 0; user < n_users; ++user) {
    counts.interactions += distinct_per_user[user];
    counts.users += offsets[user + 1] > offsets[user] ? 1 : 0;
  }
  counts.items = static_cast<std::uint64_t>(std::count(item_seen.begin(), item_seen.end(), 1));
  return counts;
}

std::string ContentHash(const Interactions& interactions, const IdMap& users, const IdMap& items) {
  Sha256 hasher;
  std::string header = fmt::format("recforge-dataset v{} rows={} users={} items={}\n",
                                   kDatasetSchemaVersion, interactions.size(), users.size(), items.size());
  hasher.Update(header);
  hasher.Update(interactions.users.data(), interactions.users.size() * sizeof(UserIndex));
  hasher.Update(interactions.items.data(), interactions.items.size() * sizeof(ItemIndex));
  hasher.Update(interactions.ratings.data(), interactions.ratings.size() * sizeof(float));
  hasher.Update(interactions.times.data(), interactions.times.size() * sizeof(Timestamp));
  for (const auto& id : users.ids()) {
    hasher.Update(id);
    hasher.Update("\n", 1);
  }
  hasher.Update("--\n", 3);
  for (const auto& id : items.ids()) {
    hasher.Update(id);
    hasher.Update("\n", 1);
  }
  return hasher.HexDigest();
}

bool IsPreparedDir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir / "train", ec) && fs::exists(dir / "train" / "meta.json", ec);
}

namespace {

void EnsureDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create directory: {}", dir.string(), ec.message()));
}

void WriteJson(const fs::path& path, const json& j) { WriteFileAtomic(path, j.dump(2) + "\n"); }

}  // namespace

nlohmann::json ReadMeta(const fs::path& dir) {
  fs::path path = dir / "meta.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw FormatError(fmt::format("{}: not a recforge dataset (no meta.json)", dir.string()));
  }
  std::string text = ReadFileToString(path);
  json meta = json::parse(text, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) {
    throw FormatError(fmt::format("{}: invalid JSON", path.string()));
  }
  if (meta.value("format", std::string()) != "recforge-dataset") {
    throw FormatError(fmt::format("{}: not a recforge dataset (format field is missing)", path.string()));
  }
  int version = meta.value("schema_version", 0);
  if (version != kDatasetSchemaVersion) {
    throw FormatError(fmt::format("{}: schema_version {} is not supported (this build reads {})",
                                  path.string(), version, kDatasetSchemaVersion));
  }
  return meta;
}

void SaveColumns(const Interactions& interactions, const fs::path& dir) {
  EnsureDir(dir);
  // The four files are written at once: copying into the page cache is CPU work.
  const int threads = static_cast<int>(std::min(4u, std::max(1u, std::thread::hardware_concurrency())));
  ParallelFor<int>(0, 4, threads, [&](int column) {
    switch (column) {
      case 0: WriteColumn<UserIndex>(dir / "users.u32", interactions.users); break;
      case 1: WriteColumn<ItemIndex>(dir / "items.u32", interactions.items); break;
      case 2: WriteColumn<float>(dir / "ratings.f32", interactions.ratings); break;
      default: WriteColumn<Timestamp>(dir / "times.i64", interactions.times); break;
    }
  });
}

Interactions LoadColumns(const fs::path& dir, std::uint64_t rows) {
  Interactions interactions;
  interactions.users = ReadColumn<UserIndex>(dir / "users.u32", rows);
  interactions.items = ReadColumn<ItemIndex>(dir / "items.u32", rows);
  interactions.ratings = ReadColumn<float>(dir / "ratings.f32", rows);
  interactions.times = ReadColumn<Timestamp>(dir / "times.i64", rows);
  return interactions;
}

void SaveIdFile(const IdMap& ids, const fs::path& path) {
  std::string content;
  std::size_t bytes = 0;
  for (const auto& id : ids.ids()) bytes += id.size() + 1;
  content.reserve(bytes);
  for (const auto& id : ids.ids()) {
    content += id;
    content += '\n';
  }
  WriteFileAtomic(path, content);
}

IdMap LoadIdFile(const fs::path& path) {
  std::string content = ReadFileToString(path);
  std::vector<std::string> ids;
  ForEachLine(content, 1, [&](std::string_view line, std::uint64_t) { ids.emplace_back(line); });
  return IdMap(std::move(ids));
}

void SaveItemInfo(const std::vector<ItemInfo>& info, const fs::path& path) {
  std::string content;
  for (const auto& item : info) {
    json j = json::object();
    j["item_id"] = item.item_id;
    if (!item.title.empty()) j["title"] = item.title;
    if (!item.categories.empty()) j["categories"] = item.categories;
    for (const auto& [key, value] : item.extra.items()) j[key] = value;
    content += j.dump(-1, ' ', false, json::error_handler_t::replace);
    content += '\n';
  }
  WriteFileAtomic(path, content);
}

std::vector<ItemInfo> LoadItemInfo(const fs::path& path) {
  std::vector<ItemInfo> info;
  std::error_code ec;
  if (!fs::exists(path, ec)) return info;
  std::string content = ReadFileToString(path);
  ForEachLine(content, 1, [&](std::string_view line, std::uint64_t line_number) {
    if (line.empty()) return;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("item_id")) {
      throw FormatError(fmt::format("{}:{}: invalid item metadata line", path.string(), line_number));
    }
    ItemInfo item;
    item.item_id = j["item_id"].get<std::string>();
    if (j.contains("title") && j["title"].is_string()) item.title = j["title"].get<std::string>();
    if (j.contains("categories") && j["categories"].is_array()) {
      for (const auto& c : j["categories"]) {
        if (c.is_string()) item.categories.push_back(c.get<std::string>());
      }
    }
    for (const auto& [key, value] : j.items()) {
      if (key != "item_id" && key != "title" && key != "categories") item.extra[key] = value;
    }
    info.push_back(std::move(item));
  });
  return info;
}

void SaveDataset(const Dataset& dataset, const fs::path& dir) {
  EnsureDir(dir);
  // A stale meta.json would make a half-written directory look complete.
  std::error_code ec;
  fs::remove(dir / "meta.json", ec);
  // Hashing runs beside the writes.
  std::future<std::string> content_hash = std::async(std::launch::async, [&] {
    return ContentHash(dataset.interactions, dataset.users, dataset.items);
  });
  SaveColumns(dataset.interactions, dir);
  SaveIdFile(dataset.users, dir / "user_ids.txt");
  SaveIdFile(dataset.items, dir / "item_ids.txt");
  if (!dataset.item_info.empty()) {
    SaveItemInfo(dataset.item_info, dir / "items.jsonl");
  } else {
    fs::remove(dir / "items.jsonl", ec);
  }
  json meta = dataset.meta;
  meta["format"] = "recforge-dataset";
  meta["schema_version"] = kDatasetSchemaVersion;
  if (!meta.contains("kind")) meta["kind"] = "raw";
  meta["rows"] = dataset.interactions.size();
  meta["n_users"] = dataset.users.size();
  meta["n_items"] = dataset.items.size();
  meta["has_item_metadata"] = !dataset.item_info.empty();
  meta["content_hash"] = content_hash.get();
  WriteJson(dir / "meta.json", meta);
}

Dataset LoadDataset(const fs::path& dir) {
  json meta = ReadMeta(dir);
  if (meta.value("kind", std::string()) == "prepared") {
    throw FormatError(fmt::format("{}: is a prepared dataset (train/test parts); expected a raw dataset",
                                  dir.string()));
  }
  Dataset dataset;
  dataset.meta = meta;
  dataset.interactions = LoadColumns(dir, meta.at("rows").get<std::uint64_t>());
  dataset.users = LoadIdFile(dir / "user_ids.txt");
  dataset.items = LoadIdFile(dir / "item_ids.txt");
  if (dataset.users.size() != meta.at("n_users").get<std::uint64_t>() ||
      dataset.items.size() != meta.at("n_items").get<std::uint64_t>()) {
    throw FormatError(fmt::format("{}: id files do not match the counts in meta.json", dir.string()));
  }
  dataset.item_info = LoadItemInfo(dir / "items.jsonl");
  return dataset;
}

void SavePrepared(const PreparedDataset& prepared, const fs::path& dir) {
  EnsureDir(dir);
  std::error_code ec;
  fs::remove(dir / "meta.json", ec);
  SaveIdFile(prepared.users, dir / "user_ids.txt");
  SaveIdFile(prepared.items, dir / "item_ids.txt");
  if (!prepared.item_info.empty()) {
    SaveItemInfo(prepared.item_info, dir / "items.jsonl");
  } else {
    fs::remove(dir / "items.jsonl", ec);
  }
  const char* names[3] = {"train", "val", "test"};
  const Interactions* parts[3] = {&prepared.train, prepared.val ? &*prepared.val : nullptr, &prepared.test};
  json part_hashes = json::object();
  for (int k = 0; k < 3; ++k) {
    fs::path part_dir = dir / names[k];
    if (parts[k] == nullptr) {
      fs::remove_all(part_dir, ec);
      continue;
    }
    std::future<std::string> content_hash = std::async(
        std::launch::async, [&] { return ContentHash(*parts[k], prepared.users, prepared.items); });
    SaveColumns(*parts[k], part_dir);
    json meta = prepared.part_meta[k].is_object() ? prepared.part_meta[k] : json::object();
    meta["format"] = "recforge-dataset";
    meta["schema_version"] = kDatasetSchemaVersion;
    meta["kind"] = "part";
    meta["part"] = names[k];
    meta["rows"] = parts[k]->size();
    meta["n_users"] = prepared.users.size();
    meta["n_items"] = prepared.items.size();
    meta["content_hash"] = content_hash.get();
    part_hashes[names[k]] = meta["content_hash"];
    WriteJson(part_dir / "meta.json", meta);
  }
  json meta = prepared.meta;
  meta["format"] = "recforge-dataset";
  meta["schema_version"] = kDatasetSchemaVersion;
  meta["kind"] = "prepared";
  meta["n_users"] = prepared.users.size();
  meta["n_items"] = prepared.items.size();
  meta["has_item_metadata"] = !prepared.item_info.empty();
  meta["part_hashes"] = part_hashes;
  // The dataset's own hash covers every part and the id maps.
  Sha256 hasher;
  hasher.Update(part_hashes.dump());
  meta["content_hash"] = hasher.HexDigest();
  WriteJson(dir / "meta.json", meta);
}

PreparedDataset LoadPrepared(const fs::path& dir) {
  json meta = ReadMeta(dir);
  if (meta.value("kind", std::string()) != "prepared") {
    throw FormatError(fmt::format("{}: is not a prepared dataset (run `recforge data prepare` first)",
                                  dir.string()));
  }
  PreparedDataset prepared;
  prepared.meta = meta;
  prepared.users = LoadIdFile(dir / "user_ids.txt");
  prepared.items = LoadIdFile(dir / "item_ids.txt");
  prepared.item_info = LoadItemInfo(dir / "items.jsonl");
  const char* names[3] = {"train", "val", "test"};
  for (int k = 0; k < 3; ++k) {
    fs::path part_dir = dir / names[k];
    std::error_code ec;
    if (!fs::exists(part_dir / "meta.json", ec)) {
      if (k == 1) continue;
      throw FormatError(fmt::format("{}: missing part '{}'", dir.string(), names[k]));
    }
    json part_meta = ReadMeta(part_dir);
    Interactions part = LoadColumns(part_dir, part_meta.at("rows").get<std::uint64_t>());
    prepared.part_meta[k] = part_meta;
    if (k == 0) prepared.train = std::move(part);
    if (k == 1) prepared.val = std::move(part);
    if (k == 2) prepared.test = std::move(part);
  }
  return prepared;
}

}  // namespace recforge::data
