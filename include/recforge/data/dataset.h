// The in-memory dataset and its on-disk directory format (docs/formats.md).
//
// A dataset directory holds:
//   meta.json                      schema version, kind, counts, sources, errors, hashes
//   users.u32 items.u32            little-endian dense indices, one per interaction
//   ratings.f32 times.i64          rating (or weight) and Unix seconds
//   user_ids.txt item_ids.txt      original string ids, line k = index k
//   items.jsonl                    optional item metadata, one JSON object per line
// A prepared dataset keeps the id files and items.jsonl at its top level and the
// interaction columns of each part in train/, val/ (optional) and test/.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recforge/core/file_io.h"
#include "recforge/core/types.h"

namespace recforge::data {

inline constexpr int kDatasetSchemaVersion = 1;

// Interaction columns, all of the same length.
struct Interactions {
  std::vector<UserIndex> users;
  std::vector<ItemIndex> items;
  std::vector<float> ratings;
  std::vector<Timestamp> times;

  std::size_t size() const { return users.size(); }
  bool empty() const { return users.empty(); }
  void Reserve(std::size_t n);
  void Resize(std::size_t n);
  void Clear();
  void Append(UserIndex user, ItemIndex item, float rating, Timestamp time) {
    users.push_back(user);
    items.push_back(item);
    ratings.push_back(rating);
    times.push_back(time);
  }
  // Keeps the rows whose positions are listed in `rows` (in that order).
  Interactions Gather(const std::vector<RowIndex>& rows) const;
};

// Dense index <-> original id. Indices are assigned in the order ids are added.
// Lookups build a hash index on first use; not thread-safe until BuildIndex() ran.
class IdMap {
 public:
  IdMap() = default;
  explicit IdMap(std::vector<std::string> ids) : ids_(std::move(ids)) {}

  std::size_t size() const { return ids_.size(); }
  const std::string& id(std::uint32_t index) const { return ids_[index]; }
  const std::vector<std::string>& ids() const { return ids_; }
  std::vector<std::string>& mutable_ids() { index_.clear(); return ids_; }

  // Adds an id that must not be present yet; returns its index.
  std::uint32_t Add(std::string id);
  std::optional<std::uint32_t> Find(std::string_view id) const;
  void BuildIndex() const;

 private:
  std::vector<std::string> ids_;
  mutable std::unordered_map<std::string_view, std::uint32_t> index_;
};

// Metadata of one item, from u.item / movies.csv / Amazon meta / movie_titles.
struct ItemInfo {
  std::string item_id;                  // original id (matches item_ids.txt)
  std::string title;
  std::vector<std::string> categories;  // genres / categories, most general first
  nlohmann::json extra = nlohmann::json::object();  // year, store, price, ...
};

// Parse-error totals of an ingest (counted by reason; a few examples kept).
struct ErrorTally {
  std::uint64_t total = 0;
  std::vector<std::pair<std::string, std::uint64_t>> by_reason;  // sorted by reason
  std::vector<std::string> examples;  // "file:line: reason", first few
  nlohmann::json ToJson() const;
  static ErrorTally FromJson(const nlohmann::json& json);
};

// A dataset in memory: interactions + id maps + item metadata + meta.json fields.
struct Dataset {
  Interactions interactions;
  IdMap users;
  IdMap items;
  std::vector<ItemInfo> item_info;  // may be empty; may name items without interactions
  nlohmann::json meta = nlohmann::json::object();  // everything else from meta.json

  std::size_t n_users() const { return users.size(); }
  std::size_t n_items() const { return items.size(); }
};

// The parts of a prepared dataset; they share the user and item id maps.
struct PreparedDataset {
  IdMap users;
  IdMap items;
  std::vector<ItemInfo> item_info;
  Interactions train;
  std::optional<Interactions> val;
  Interactions test;
  nlohmann::json meta = nlohmann::json::object();
  nlohmann::json part_meta[3];  // train, val, test meta.json (val may be null)
};

// Counts of distinct users / items actually present and distinct (user, item) pairs.
struct BasicCounts {
  std::uint64_t rows = 0;
  std::uint64_t interactions = 0;  // distinct (user, item) pairs
  std::uint64_t users = 0;         // users with at least one row
  std::uint64_t items = 0;
};
BasicCounts CountInteractions(const Interactions& interactions, std::size_t n_users,
                              std::size_t n_items, int threads);

// Hash of the columns and id maps (lower-case hex SHA-256); stable across runs.
std::string ContentHash(const Interactions& interactions, const IdMap& users, const IdMap& items);

// True when `dir` holds a prepared dataset (train/ subfolder).
bool IsPreparedDir(const fs::path& dir);

// Save / load a raw dataset directory. Save writes meta.json last, so a directory
// with meta.json is complete. Load throws IoError/FormatError naming the file.
void SaveDataset(const Dataset& dataset, const fs::path& dir);
Dataset LoadDataset(const fs::path& dir);

void SavePrepared(const PreparedDataset& prepared, const fs::path& dir);
PreparedDataset LoadPrepared(const fs::path& dir);

// Column files of one part (used by both layouts).
void SaveColumns(const Interactions& interactions, const fs::path& dir);
Interactions LoadColumns(const fs::path& dir, std::uint64_t rows);

// Id map and metadata files.
void SaveIdFile(const IdMap& ids, const fs::path& path);
IdMap LoadIdFile(const fs::path& path);
void SaveItemInfo(const std::vector<ItemInfo>& info, const fs::path& path);
std::vector<ItemInfo> LoadItemInfo(const fs::path& path);

// Reads meta.json of a dataset directory; throws FormatError when missing/invalid.
nlohmann::json ReadMeta(const fs::path& dir);

}  // namespace recforge::data
