// `recforge data prepare` on real data (ml-100k), checked against exact published
// counts (../shared/PROTOCOL.md) and against naive reference implementations written
// here. The dataset is read by a tiny local reader, not by the ingest code, so these
// tests pin prepare alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "recforge/core/file_io.h"
#include "recforge/data/dataset.h"
#include "recforge/data/prepare.h"
#include "testlib/testlib.h"

namespace recforge::data {
namespace {

namespace fs = std::filesystem;

struct RawRow {
  long user;
  long item;
  float rating;
  Timestamp time;
};

std::vector<RawRow> ReadRawUData(const fs::path& path) {
  std::ifstream in(path);
  std::vector<RawRow> rows;
  RawRow row{};
  while (in >> row.user >> row.item >> row.rating >> row.time) rows.push_back(row);
  return rows;
}

// A Dataset from u.data with ids as numeric strings and indices in increasing numeric
// id order (what ingest assigns for MovieLens).
Dataset DatasetFromRaw(const std::vector<RawRow>& raw) {
  std::map<long, std::uint32_t> user_index, item_index;
  for (const RawRow& row : raw) {
    user_index[row.user] = 0;
    item_index[row.item] = 0;
  }
  Dataset dataset;
  std::vector<std::string> ids;
  for (auto& [id, index] : user_index) {
    index = static_cast<std::uint32_t>(ids.size());
    ids.push_back(std::to_string(id));
  }
  dataset.users = IdMap(ids);
  ids.clear();
  for (auto& [id, index] : item_index) {
    index = static_cast<std::uint32_t>(ids.size());
    ids.push_back(std::to_string(id));
  }
  dataset.items = IdMap(ids);
  for (const RawRow& row : raw) {
    dataset.interactions.Append(user_index[row.user], item_index[row.item], row.rating, row.time);
  }
  dataset.meta["content_hash"] = ContentHash(dataset.interactions, dataset.users, dataset.items);
  return dataset;
}

class RealDataPrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RECFORGE_REQUIRE_DATA("ml-100k/u.data");
    raw_ = ReadRawUData(testing::RealData("ml-100k/u.data"));
    ASSERT_EQ(raw_.size(), 100'000u);
    dataset_ = DatasetFromRaw(raw_);
  }

  PreparedDataset Run(const PrepareOptions& options, int threads = 2) const {
    Context ctx;
    ctx.threads = threads;
    return Prepare(dataset_, options, ctx);
  }

  std::vector<RawRow> raw_;
  Dataset dataset_;
};

using Pair = std::pair<long, long>;  // (raw user id, raw item id)

std::set<Pair> PairsOf(const PreparedDataset& prepared, const Interactions& part) {
  std::set<Pair> pairs;
  for (std::size_t k = 0; k < part.size(); ++k) {
    pairs.emplace(std::stol(prepared.users.id(part.users[k])),
                  std::stol(prepared.items.id(part.items[k])));
  }
  return pairs;
}

std::set<Pair> AllPairs(const PreparedDataset& prepared) {
  std::set<Pair> pairs = PairsOf(prepared, prepared.train);
  if (prepared.val) {
    auto val = PairsOf(prepared, *prepared.val);
    pairs.insert(val.begin(), val.end());
  }
  auto test = PairsOf(prepared, prepared.test);
  pairs.insert(test.begin(), test.end());
  return pairs;
}

// Per user, every row of `later` comes after every row of `earlier` in (time, item).
void ExpectAfterPerUser(const Interactions& earlier, const Interactions& later) {
  std::map<UserIndex, std::tuple<Timestamp, ItemIndex>> last_earlier;
  for (std::size_t k = 0; k < earlier.size(); ++k) {
    auto key = std::make_tuple(earlier.times[k], earlier.items[k]);
    auto [it, inserted] = last_earlier.emplace(earlier.users[k], key);
    if (!inserted) it->second = std::max(it->second, key);
  }
  std::size_t violations = 0;
  for (std::size_t k = 0; k < later.size(); ++k) {
    auto it = last_earlier.find(later.users[k]);
    if (it != last_earlier.end() &&
        !(it->second < std::make_tuple(later.times[k], later.items[k]))) {
      ++violations;
    }
  }
  EXPECT_EQ(violations, 0u);
}

void ExpectDisjoint(const PreparedDataset& prepared) {
  std::size_t total =
      prepared.train.size() + prepared.test.size() + (prepared.val ? prepared.val->size() : 0);
  EXPECT_EQ(AllPairs(prepared).size(), total) << "a (user, item) pair is in two parts";
}

// ---------------------------------------------------------------------------

TEST_F(RealDataPrepareTest, ProtocolRatioSplitMatchesPublishedCounts) {
  PrepareOptions options;
  options.split = SplitStrategy::kRatio;
  options.test_ratio = 0.2;
  options.dedup = DedupPolicy::kFirst;
  PreparedDataset prepared = Run(options);
  EXPECT_EQ(prepared.train.size(), 80'367u);
  EXPECT_EQ(prepared.test.size(), 19'633u);
  EXPECT_EQ(prepared.users.size(), 943u);
  EXPECT_EQ(prepared.items.size(), 1682u);
  EXPECT_EQ(prepared.part_meta[2]["users"], 943);
  EXPECT_EQ(prepared.meta["parent"]["content_hash"], dataset_.meta["content_hash"]);

  // The exact test set of PROTOCOL.md, computed naively: per user, sort by
  // (timestamp, item id); the last max(1, (20 * n) // 100) are test.
  std::map<long, std::vector<std::pair<Timestamp, long>>> by_user;
  for (const RawRow& row : raw_) by_user[row.user].emplace_back(row.time, row.item);
  std::set<Pair> expected_test;
  for (auto& [user, rows] : by_user) {
    std::sort(rows.begin(), rows.end());
    std::size_t n_test = std::max<std::size_t>(1, (20 * rows.size()) / 100);
    for (std::size_t k = rows.size() - n_test; k < rows.size(); ++k) {
      expected_test.emplace(user, rows[k].second);
    }
  }
  EXPECT_EQ(PairsOf(prepared, prepared.test), expected_test);
  ExpectDisjoint(prepared);
  ExpectAfterPerUser(prepared.train, prepared.test);
}

TEST_F(RealDataPrepareTest, LastNGivesFiveTestRowsPerUser) {
  PrepareOptions options;
  options.split = SplitStrategy::kLastN;
  options.last_n = 5;
  PreparedDataset prepared = Run(options);
  EXPECT_EQ(prepared.test.size(), 4'715u);
  EXPECT_EQ(prepared.train.size(), 100'000u - 4'715u);
  ExpectDisjoint(prepared);
  ExpectAfterPerUser(prepared.train, prepared.test);
}

TEST_F(RealDataPrepareTest, LeaveOneOutGivesOneValAndOneTestRowPerUser) {
  PrepareOptions options;
  options.split = SplitStrategy::kLeaveOneOut;
  PreparedDataset prepared = Run(options);
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_EQ(prepared.test.size(), 943u);
  EXPECT_EQ(prepared.val->size(), 943u);
  EXPECT_EQ(prepared.train.size(), 100'000u - 2 * 943u);
  ExpectDisjoint(prepared);
  ExpectAfterPerUser(prepared.train, *prepared.val);
  ExpectAfterPerUser(*prepared.val, prepared.test);
}

TEST_F(RealDataPrepareTest, TemporalSplitHasAGlobalCutoff) {
  PrepareOptions options;
  options.split = SplitStrategy::kTemporal;
  options.test_ratio = 0.2;
  options.val_ratio = 0.1;
  PreparedDataset prepared = Run(options);
  ASSERT_TRUE(prepared.val.has_value());
  ExpectDisjoint(prepared);
  Timestamp test_cut = prepared.meta["split"]["test_cutoff_time"].get<Timestamp>();
  Timestamp val_cut = prepared.meta["split"]["val_cutoff_time"].get<Timestamp>();
  auto [train_min, train_max] =
      std::minmax_element(prepared.train.times.begin(), prepared.train.times.end());
  (void)train_min;
  EXPECT_LT(*train_max, val_cut);
  for (Timestamp t : prepared.val->times) {
    ASSERT_GE(t, val_cut);
    ASSERT_LT(t, test_cut);
  }
  EXPECT_GE(*std::min_element(prepared.test.times.begin(), prepared.test.times.end()), test_cut);
  // The cutoff is the time of rank n - floor(0.2 n) in sorted order; ties go to test.
  std::vector<Timestamp> times;
  for (const RawRow& row : raw_) times.push_back(row.time);
  std::sort(times.begin(), times.end());
  EXPECT_EQ(test_cut, times[100'000 - 20'000]);
  EXPECT_EQ(val_cut, times[100'000 - 20'000 - 10'000]);
  auto at_or_after = [&](Timestamp cut) {
    return static_cast<std::size_t>(times.end() -
                                    std::lower_bound(times.begin(), times.end(), cut));
  };
  EXPECT_EQ(prepared.test.size(), at_or_after(test_cut));
  EXPECT_EQ(prepared.val->size(), at_or_after(val_cut) - at_or_after(test_cut));
}

TEST_F(RealDataPrepareTest, RandomSplitTakesExactCounts) {
  PrepareOptions options;
  options.split = SplitStrategy::kRandom;
  options.test_ratio = 0.2;
  options.val_ratio = 0.1;
  PreparedDataset prepared = Run(options);
  EXPECT_EQ(prepared.test.size(), 20'000u);
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_EQ(prepared.val->size(), 10'000u);
  EXPECT_EQ(prepared.train.size(), 70'000u);
  ExpectDisjoint(prepared);
}

// Naive k-core: repeated full passes with std::map counts until nothing changes.
std::set<Pair> NaiveKCore(const std::vector<RawRow>& raw, std::uint32_t min_user,
                          std::uint32_t min_item) {
  std::set<Pair> kept;
  for (const RawRow& row : raw) kept.emplace(row.user, row.item);
  while (true) {
    std::map<long, std::uint32_t> user_count, item_count;
    for (const auto& [user, item] : kept) {
      ++user_count[user];
      ++item_count[item];
    }
    std::set<Pair> next;
    for (const auto& [user, item] : kept) {
      if (user_count[user] >= min_user && item_count[item] >= min_item) next.emplace(user, item);
    }
    if (next.size() == kept.size()) return kept;
    kept = std::move(next);
  }
}

TEST_F(RealDataPrepareTest, KCoreMatchesNaiveReference) {
  const std::pair<std::uint32_t, std::uint32_t> thresholds[] = {
      {5, 5}, {20, 20}, {50, 50}, {10, 80}};
  for (const auto& [min_user, min_item] : thresholds) {
    SCOPED_TRACE(::testing::Message() << "min_user=" << min_user << " min_item=" << min_item);
    std::set<Pair> expected = NaiveKCore(raw_, min_user, min_item);
    ASSERT_FALSE(expected.empty());

    // KCoreMask on the raw rows.
    std::vector<bool> mask = KCoreMask(dataset_.interactions, dataset_.n_users(),
                                       dataset_.n_items(), min_user, min_item, 2);
    std::set<Pair> from_mask;
    for (std::size_t row = 0; row < raw_.size(); ++row) {
      if (mask[row]) from_mask.emplace(raw_[row].user, raw_[row].item);
    }
    EXPECT_EQ(from_mask, expected);

    // Prepare: the union of the parts is the core, and it meets both thresholds.
    PrepareOptions options;
    options.min_user = min_user;
    options.min_item = min_item;
    options.split = SplitStrategy::kRatio;
    PreparedDataset prepared = Run(options);
    std::set<Pair> all = AllPairs(prepared);
    EXPECT_EQ(all, expected);
    std::map<long, std::uint32_t> user_count, item_count;
    for (const auto& [user, item] : all) {
      ++user_count[user];
      ++item_count[item];
    }
    for (const auto& [user, count] : user_count) ASSERT_GE(count, min_user) << "user " << user;
    for (const auto& [item, count] : item_count) ASSERT_GE(count, min_item) << "item " << item;
    EXPECT_EQ(prepared.users.size(), user_count.size());
    EXPECT_EQ(prepared.items.size(), item_count.size());
    const auto& stage = prepared.meta["stages"][3];
    EXPECT_EQ(stage["stage"], "kcore");
    EXPECT_EQ(stage["rows"], expected.size());
    EXPECT_EQ(stage["users"], user_count.size());
    EXPECT_EQ(stage["items"], item_count.size());
  }
}

// Every file of `dir`, by path relative to it, with its bytes.
std::map<std::string, std::string> DirectoryFiles(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    files[fs::relative(entry.path(), dir).string()] = ReadFileToString(entry.path());
  }
  return files;
}

TEST_F(RealDataPrepareTest, SavedOutputIsByteIdenticalAcrossRunsAndThreads) {
  for (SplitStrategy split : {SplitStrategy::kTemporal, SplitStrategy::kRatio,
                              SplitStrategy::kRandom, SplitStrategy::kLeaveOneOut}) {
    SCOPED_TRACE(std::string(Name(split)));
    PrepareOptions options;
    options.split = split;
    options.min_user = 5;
    options.min_item = 5;
    options.dedup = DedupPolicy::kMean;
    testing::TempDir first, second;
    SavePrepared(Run(options, 1), first.path());
    SavePrepared(Run(options, 2), second.path());
    auto first_files = DirectoryFiles(first.path());
    auto second_files = DirectoryFiles(second.path());
    // user_ids, item_ids, meta.json, then 4 columns + meta.json per part (train, test).
    EXPECT_GE(first_files.size(), 13u);
    ASSERT_EQ(first_files.size(), second_files.size());
    for (const auto& [name, bytes] : first_files) {
      ASSERT_TRUE(second_files.count(name)) << name;
      EXPECT_TRUE(second_files[name] == bytes) << name << " differs";
    }
    // And the directory loads back to the same parts.
    PreparedDataset loaded = LoadPrepared(first.path());
    PreparedDataset again = Run(options, 2);
    EXPECT_EQ(loaded.test.items, again.test.items);
    EXPECT_EQ(loaded.train.times, again.train.times);
  }
}

}  // namespace
}  // namespace recforge::data
