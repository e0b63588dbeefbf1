// Unit tests of `recforge data prepare` (src/data/prepare.cc) on small hand-built
// datasets whose every output row is computed by hand in the comments.
#include "recforge/data/prepare.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "recforge/core/error.h"
#include "recforge/core/random.h"
#include "testlib/testlib.h"

namespace recforge::data {
namespace {

using testing::MakeDataset;
using testing::Row;

// One output row with its original ids: (user, item, rating, time).
using IdRow = std::tuple<std::string, std::string, float, std::int64_t>;

std::vector<IdRow> IdRows(const PreparedDataset& prepared, const Interactions& part) {
  std::vector<IdRow> rows;
  for (std::size_t k = 0; k < part.size(); ++k) {
    rows.emplace_back(prepared.users.id(part.users[k]), prepared.items.id(part.items[k]),
                      part.ratings[k], part.times[k]);
  }
  return rows;
}

// All parts together, in part order (train, val, test).
std::vector<IdRow> AllRows(const PreparedDataset& prepared) {
  std::vector<IdRow> rows = IdRows(prepared, prepared.train);
  if (prepared.val) {
    auto val = IdRows(prepared, *prepared.val);
    rows.insert(rows.end(), val.begin(), val.end());
  }
  auto test = IdRows(prepared, prepared.test);
  rows.insert(rows.end(), test.begin(), test.end());
  std::sort(rows.begin(), rows.end());
  return rows;
}

// (user, item) pairs of a part, as original ids, in stored order.
using PairList = std::vector<std::pair<std::string, std::string>>;

PairList Pairs(const PreparedDataset& prepared, const Interactions& part) {
  PairList pairs;
  for (const auto& [user, item, rating, time] : IdRows(prepared, part))
    pairs.emplace_back(user, item);
  return pairs;
}

Context Threads(int threads) {
  Context ctx;
  ctx.threads = threads;
  return ctx;
}

// Runs fn and returns the InvalidArgument message ("" when nothing was thrown).
template <typename Fn>
std::string InvalidArgumentMessage(Fn&& fn) {
  try {
    fn();
  } catch (const InvalidArgument& error) {
    return error.what();
  }
  return "";
}

std::uint64_t StageRows(const PreparedDataset& prepared, const std::string& stage) {
  for (const auto& entry : prepared.meta["stages"]) {
    if (entry["stage"] == stage) return entry["rows"].get<std::uint64_t>();
  }
  ADD_FAILURE() << "no stage " << stage;
  return 0;
}

// ---------------------------------------------------------------------------
// Options.

TEST(PrepareOptionsTest, ParsesNamesAndAliases) {
  EXPECT_EQ(ParseDedupPolicy("last"), DedupPolicy::kLast);
  EXPECT_EQ(ParseDedupPolicy("first"), DedupPolicy::kFirst);
  EXPECT_EQ(ParseDedupPolicy("max"), DedupPolicy::kMax);
  EXPECT_EQ(ParseDedupPolicy("mean"), DedupPolicy::kMean);
  EXPECT_EQ(ParseDedupPolicy("sum"), DedupPolicy::kSum);
  EXPECT_EQ(ParseSplitStrategy("temporal"), SplitStrategy::kTemporal);
  EXPECT_EQ(ParseSplitStrategy("last-n"), SplitStrategy::kLastN);
  EXPECT_EQ(ParseSplitStrategy("last_n"), SplitStrategy::kLastN);
  EXPECT_EQ(ParseSplitStrategy("leave-one-out"), SplitStrategy::kLeaveOneOut);
  EXPECT_EQ(ParseSplitStrategy("loo"), SplitStrategy::kLeaveOneOut);
  EXPECT_EQ(ParseSplitStrategy("ratio"), SplitStrategy::kRatio);
  EXPECT_EQ(ParseSplitStrategy("random"), SplitStrategy::kRandom);
  EXPECT_EQ(ParseColdPolicy("keep"), ColdPolicy::kKeep);
  EXPECT_EQ(ParseColdPolicy("drop"), ColdPolicy::kDrop);
  EXPECT_EQ(Name(SplitStrategy::kLeaveOneOut), "leave-one-out");
  EXPECT_EQ(Name(DedupPolicy::kMean), "mean");
  EXPECT_EQ(Name(ColdPolicy::kDrop), "drop");
}

TEST(PrepareOptionsTest, UnknownNamesListAllowedValues) {
  EXPECT_EQ(InvalidArgumentMessage([] { ParseDedupPolicy("median"); }),
            "dedup: unknown policy 'median' (allowed: last, first, max, mean, sum)");
  EXPECT_EQ(
      InvalidArgumentMessage([] { ParseSplitStrategy("kfold"); }),
      "split: unknown strategy 'kfold' (allowed: temporal, last-n, leave-one-out, ratio, random)");
  EXPECT_EQ(InvalidArgumentMessage([] { ParseColdPolicy("ignore"); }),
            "cold: unknown policy 'ignore' (allowed: keep, drop)");
}

TEST(PrepareOptionsTest, ValidateNamesTheOption) {
  struct Case {
    std::function<void(PrepareOptions&)> set;
    std::string expected;  // a substring of the message
  };
  const std::vector<Case> cases = {
      {[](PrepareOptions& o) { o.test_ratio = 0; }, "test_ratio must be in (0, 1), got 0"},
      {[](PrepareOptions& o) { o.test_ratio = 1.5; }, "test_ratio must be in (0, 1), got 1.5"},
      {[](PrepareOptions& o) { o.test_ratio = std::nan(""); }, "test_ratio must be in (0, 1)"},
      {[](PrepareOptions& o) { o.val_ratio = -0.1; }, "val_ratio must be in [0, 1), got -0.1"},
      {[](PrepareOptions& o) { o.test_ratio = 0.5, o.val_ratio = 0.5; },
       "test_ratio + val_ratio must be < 1"},
      {[](PrepareOptions& o) { o.split = SplitStrategy::kLastN, o.last_n = 0; },
       "last_n must be >= 1"},
      {[](PrepareOptions& o) { o.split = SplitStrategy::kLastN, o.val_ratio = 0.1; },
       "val_ratio applies to the temporal, ratio and random splits, not to split=last-n (use "
       "val_n)"},
      {[](PrepareOptions& o) { o.split = SplitStrategy::kRatio, o.val_n = 2; },
       "val_n applies to the last-n split only, not to split=ratio (use val_ratio)"},
      {[](PrepareOptions& o) { o.min_rating = std::numeric_limits<float>::quiet_NaN(); },
       "min_rating must be a finite number"},
      {[](PrepareOptions& o) { o.implicit_threshold = std::numeric_limits<float>::infinity(); },
       "implicit_threshold must be a finite number"},
  };
  for (const auto& c : cases) {
    PrepareOptions options;
    c.set(options);
    std::string message = InvalidArgumentMessage([&] { options.Validate(); });
    EXPECT_NE(message.find(c.expected), std::string::npos)
        << "expected '" << c.expected << "' in '" << message << "'";
  }
  PrepareOptions valid;
  EXPECT_NO_THROW(valid.Validate());
  // Prepare validates too.
  PrepareOptions bad;
  bad.test_ratio = 2;
  Dataset dataset = MakeDataset({{"u", "a", 1, 1}});
  EXPECT_THROW(Prepare(dataset, bad, Threads(1)), InvalidArgument);
}

TEST(PrepareOptionsTest, ToJsonRecordsEveryFieldCanonically) {
  PrepareOptions options;
  options.split = ParseSplitStrategy("loo");
  options.min_rating = 0.1f;
  nlohmann::json j = options.ToJson();
  EXPECT_EQ(j["split"], "leave-one-out");
  EXPECT_EQ(j["dedup"], "last");
  EXPECT_EQ(j["cold"], "keep");
  // The float 0.1f is recorded as its shortest decimal, not 0.10000000149011612.
  EXPECT_EQ(j["min_rating"].dump(), "0.1");
  EXPECT_TRUE(j["implicit_threshold"].is_null());
  for (const char* key :
       {"min_user", "min_item", "test_ratio", "val_ratio", "last_n", "val_n", "seed"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 12u);
}

// ---------------------------------------------------------------------------
// Dedup.

// User u rates a four times and d twice; v rates a once (never merged with u's).
//   a: (3, t10) (5, t30) (4, t30) (1, t5)    in input order
//   d: (2, t4) (3, t4)                        same time
//   c: (5, t7) (5, t3)                        same rating
std::vector<Row> DedupRows() {
  return {{"u", "a", 3, 10}, {"u", "a", 5, 30}, {"u", "b", 2, 20}, {"u", "a", 4, 30},
          {"u", "d", 2, 4},  {"u", "a", 1, 5},  {"u", "c", 5, 7},  {"u", "d", 3, 4},
          {"u", "c", 5, 3},  {"v", "a", 9, 1}};
}

std::vector<IdRow> DedupWith(DedupPolicy policy) {
  PrepareOptions options;
  options.dedup = policy;
  options.split = SplitStrategy::kLastN;
  options.last_n = 1;
  PreparedDataset prepared = Prepare(MakeDataset(DedupRows()), options, Threads(1));
  EXPECT_EQ(StageRows(prepared, "input"), 10u);
  EXPECT_EQ(StageRows(prepared, "dedup"), 5u);
  return AllRows(prepared);
}

TEST(PrepareDedupTest, LastKeepsLatestTimeThenLaterRow) {
  // a: t30 twice -> the later row (rating 4); d: t4 twice -> the later row (3).
  std::vector<IdRow> expected = {
      {"u", "a", 4, 30}, {"u", "b", 2, 20}, {"u", "c", 5, 7}, {"u", "d", 3, 4}, {"v", "a", 9, 1}};
  EXPECT_EQ(DedupWith(DedupPolicy::kLast), expected);
}

TEST(PrepareDedupTest, FirstKeepsEarliestTimeThenEarlierRow) {
  std::vector<IdRow> expected = {
      {"u", "a", 1, 5}, {"u", "b", 2, 20}, {"u", "c", 5, 3}, {"u", "d", 2, 4}, {"v", "a", 9, 1}};
  EXPECT_EQ(DedupWith(DedupPolicy::kFirst), expected);
}

TEST(PrepareDedupTest, MaxKeepsHighestRatingTiesLikeLast) {
  // a: 5 at t30; c: both 5 -> the later time (t7); d: 3 at t4.
  std::vector<IdRow> expected = {
      {"u", "a", 5, 30}, {"u", "b", 2, 20}, {"u", "c", 5, 7}, {"u", "d", 3, 4}, {"v", "a", 9, 1}};
  EXPECT_EQ(DedupWith(DedupPolicy::kMax), expected);
}

TEST(PrepareDedupTest, MeanAveragesAtLatestTime) {
  // a: (3 + 5 + 4 + 1) / 4 = 3.25 at t30; c: 5 at t7; d: 2.5 at t4.
  std::vector<IdRow> expected = {{"u", "a", 3.25f, 30},
                                 {"u", "b", 2, 20},
                                 {"u", "c", 5, 7},
                                 {"u", "d", 2.5f, 4},
                                 {"v", "a", 9, 1}};
  EXPECT_EQ(DedupWith(DedupPolicy::kMean), expected);
}

TEST(PrepareDedupTest, SumAddsAtLatestTime) {
  std::vector<IdRow> expected = {
      {"u", "a", 13, 30}, {"u", "b", 2, 20}, {"u", "c", 10, 7}, {"u", "d", 5, 4}, {"v", "a", 9, 1}};
  EXPECT_EQ(DedupWith(DedupPolicy::kSum), expected);
}

// ---------------------------------------------------------------------------
// Rating filter.

std::vector<Row> RatedRows() {
  return {{"u", "a", 1, 1}, {"u", "b", 2, 2},    {"u", "c", 3, 3},   {"u", "d", 4, 4},
          {"u", "e", 5, 5}, {"v", "a", 4.5f, 1}, {"v", "b", 3.5f, 2}};
}

TEST(PrepareFilterTest, MinRatingKeepsRatings) {
  PrepareOptions options;
  options.split = SplitStrategy::kLastN;
  options.min_rating = 3.5f;
  PreparedDataset prepared = Prepare(MakeDataset(RatedRows()), options, Threads(1));
  std::vector<IdRow> expected = {
      {"u", "d", 4, 4}, {"u", "e", 5, 5}, {"v", "a", 4.5f, 1}, {"v", "b", 3.5f, 2}};
  EXPECT_EQ(AllRows(prepared), expected);
  EXPECT_EQ(StageRows(prepared, "rating_filter"), 4u);
  // Items a, b, c (no row left) are gone from the compacted map; d, e kept in order.
  EXPECT_EQ(prepared.items.ids(), (std::vector<std::string>{"a", "b", "d", "e"}));
}

TEST(PrepareFilterTest, ImplicitThresholdBinarises) {
  PrepareOptions options;
  options.split = SplitStrategy::kLastN;
  options.implicit_threshold = 4;
  PreparedDataset prepared = Prepare(MakeDataset(RatedRows()), options, Threads(1));
  std::vector<IdRow> expected = {{"u", "d", 1, 4}, {"u", "e", 1, 5}, {"v", "a", 1, 1}};
  EXPECT_EQ(AllRows(prepared), expected);
}

TEST(PrepareFilterTest, BothBoundsApplyThenBinarise) {
  PrepareOptions options;
  options.split = SplitStrategy::kLastN;
  options.min_rating = 4.5f;
  options.implicit_threshold = 2;
  PreparedDataset prepared = Prepare(MakeDataset(RatedRows()), options, Threads(1));
  std::vector<IdRow> expected = {{"u", "e", 1, 5}, {"v", "a", 1, 1}};
  EXPECT_EQ(AllRows(prepared), expected);
}

TEST(PrepareFilterTest, FilterRunsAfterDedup) {
  // last keeps the rating 2 of t2, which the filter then drops; filtering first would
  // have kept the 5.
  PrepareOptions options;
  options.split = SplitStrategy::kLastN;
  options.min_rating = 3;
  Dataset dataset = MakeDataset({{"u", "a", 5, 1}, {"u", "a", 2, 2}, {"u", "b", 4, 3}});
  PreparedDataset prepared = Prepare(dataset, options, Threads(1));
  EXPECT_EQ(AllRows(prepared), (std::vector<IdRow>{{"u", "b", 4, 3}}));
}

TEST(PrepareFilterTest, NothingLeftIsAnError) {
  PrepareOptions options;
  options.min_rating = 10;
  std::string message =
      InvalidArgumentMessage([&] { Prepare(MakeDataset(RatedRows()), options, Threads(1)); });
  EXPECT_NE(message.find("no interactions left after the rating filter (min_rating=10)"),
            std::string::npos)
      << message;
  EXPECT_NE(InvalidArgumentMessage([] { Prepare(Dataset(), PrepareOptions(), Threads(1)); }), "");
}

// ---------------------------------------------------------------------------
// K-core.

// min_user = min_item = 2 needs three rounds of single passes:
//   round 1 drops u4 (1 row); i3 still has 2 rows (u3, u4) when counted;
//   round 2 drops i3 (now 1 row); round 3 drops u3 (only i2 left).
// The fixed point is {u1, u2} x {i1, i2}; u5 stays out (one row).
std::vector<Row> ChainRows() {
  return {{"u1", "i1", 1, 1}, {"u1", "i2", 1, 2}, {"u2", "i1", 1, 3}, {"u2", "i2", 1, 4},
          {"u3", "i2", 1, 5}, {"u3", "i3", 1, 6}, {"u4", "i3", 1, 7}, {"u5", "i1", 1, 8}};
}

TEST(PrepareKCoreTest, MaskReachesFixedPoint) {
  Dataset dataset = MakeDataset(ChainRows());
  std::vector<bool> mask =
      KCoreMask(dataset.interactions, dataset.n_users(), dataset.n_items(), 2, 2, 1);
  EXPECT_EQ(mask, (std::vector<bool>{true, true, true, true, false, false, false, false}));
  // One threshold at a time is a single pass.
  EXPECT_EQ(KCoreMask(dataset.interactions, dataset.n_users(), dataset.n_items(), 2, 0, 1),
            (std::vector<bool>{true, true, true, true, true, true, false, false}));
  EXPECT_EQ(KCoreMask(dataset.interactions, dataset.n_users(), dataset.n_items(), 0, 3, 1),
            (std::vector<bool>{true, true, true, true, true, false, false, true}));
  EXPECT_EQ(KCoreMask(dataset.interactions, dataset.n_users(), dataset.n_items(), 1, 1, 1),
            std::vector<bool>(8, true));
}

TEST(PrepareKCoreTest, MaskCountsRepeatedRows) {
  Dataset dataset = MakeDataset({{"u", "a", 1, 1}, {"u", "a", 1, 2}, {"v", "a", 1, 3}});
  EXPECT_EQ(KCoreMask(dataset.interactions, dataset.n_users(), dataset.n_items(), 2, 2, 2),
            (std::vector<bool>{true, true, false}));
}

TEST(PrepareKCoreTest, MaskRejectsOutOfRangeIndices) {
  Dataset dataset = MakeDataset(ChainRows());
  EXPECT_THROW(KCoreMask(dataset.interactions, 2, dataset.n_items(), 2, 2, 1), FormatError);
}

TEST(PrepareKCoreTest, PrepareKeepsOnlyTheCore) {
  PrepareOptions options;
  options.min_user = 2;
  options.min_item = 2;
  options.split = SplitStrategy::kLeaveOneOut;
  PreparedDataset prepared = Prepare(MakeDataset(ChainRows()), options, Threads(2));
  EXPECT_EQ(prepared.users.ids(), (std::vector<std::string>{"u1", "u2"}));
  EXPECT_EQ(prepared.items.ids(), (std::vector<std::string>{"i1", "i2"}));
  EXPECT_EQ(StageRows(prepared, "kcore"), 4u);
  const auto& kcore = prepared.meta["stages"][3];
  EXPECT_EQ(kcore["stage"], "kcore");
  EXPECT_EQ(kcore["users"], 2);
  EXPECT_EQ(kcore["items"], 2);
  // Leave-one-out of two-row users: last row to test, no val row.
  EXPECT_EQ(Pairs(prepared, prepared.test), (PairList{{"u1", "i2"}, {"u2", "i2"}}));
  EXPECT_EQ(Pairs(prepared, prepared.train), (PairList{{"u1", "i1"}, {"u2", "i1"}}));
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_TRUE(prepared.val->empty());
}

TEST(PrepareKCoreTest, EmptyCoreIsAnError) {
  PrepareOptions options;
  options.min_user = 3;
  options.min_item = 3;
  std::string message =
      InvalidArgumentMessage([&] { Prepare(MakeDataset(ChainRows()), options, Threads(1)); });
  EXPECT_NE(message.find("no interactions left after the k-core filter (min_user=3, min_item=3)"),
            std::string::npos)
      << message;
}

// ---------------------------------------------------------------------------
// Splits. Items are indexed a..f in that order (first appearance), so ties in time
// go to the earlier letter first.
//   u1: a10 b20 c20 d30 e40   (b, c tie)
//   u2: d10 a50 b50 c50       (given out of order; a, b, c tie)
//   u3: f5
//   u4: a60 b70
std::vector<Row> SplitRows() {
  return {{"u1", "a", 1, 10}, {"u1", "b", 1, 20}, {"u1", "c", 1, 20}, {"u1", "d", 1, 30},
          {"u1", "e", 1, 40}, {"u2", "c", 2, 50}, {"u2", "a", 2, 50}, {"u2", "b", 2, 50},
          {"u2", "d", 2, 10}, {"u3", "f", 3, 5},  {"u4", "a", 4, 60}, {"u4", "b", 4, 70}};
}

PreparedDataset SplitWith(const PrepareOptions& options, int threads = 1) {
  return Prepare(MakeDataset(SplitRows()), options, Threads(threads));
}

TEST(PrepareSplitTest, RatioFollowsProtocol) {
  PrepareOptions options;
  options.split = SplitStrategy::kRatio;
  options.test_ratio = 0.2;
  PreparedDataset prepared = SplitWith(options);
  // max(1, floor(0.2 n)) = 1 for every user (n = 5 gives exactly 1).
  EXPECT_EQ(IdRows(prepared, prepared.test),
            (std::vector<IdRow>{
                {"u1", "e", 1, 40}, {"u2", "c", 2, 50}, {"u3", "f", 3, 5}, {"u4", "b", 4, 70}}));
  EXPECT_EQ(IdRows(prepared, prepared.train), (std::vector<IdRow>{{"u1", "a", 1, 10},
                                                                  {"u1", "b", 1, 20},
                                                                  {"u1", "c", 1, 20},
                                                                  {"u1", "d", 1, 30},
                                                                  {"u2", "d", 2, 10},
                                                                  {"u2", "a", 2, 50},
                                                                  {"u2", "b", 2, 50},
                                                                  {"u4", "a", 4, 60}}));
  EXPECT_FALSE(prepared.val.has_value());
  EXPECT_TRUE(prepared.part_meta[1].is_null());
  EXPECT_EQ(prepared.part_meta[2]["rows"], 4);
  EXPECT_EQ(prepared.part_meta[2]["users"], 4);
  EXPECT_EQ(prepared.part_meta[2]["items"], 4);
  EXPECT_EQ(prepared.part_meta[0]["users"], 3);
  EXPECT_EQ(prepared.part_meta[0]["items"], 4);
}

TEST(PrepareSplitTest, RatioWithValidation) {
  PrepareOptions options;
  options.split = SplitStrategy::kRatio;
  options.test_ratio = 0.4;
  options.val_ratio = 0.2;
  PreparedDataset prepared = SplitWith(options);
  // u1 (5): test floor(2.0) = 2 -> d, e; val max(1, floor(1.0)) = 1 -> c.
  // u2 (4): test floor(1.6) = 1 -> c; val 1 -> b.
  // u3 (1): test 1 -> f; no val room.  u4 (2): test b; val would empty train -> none.
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_EQ(Pairs(prepared, prepared.test),
            (PairList{{"u1", "d"}, {"u1", "e"}, {"u2", "c"}, {"u3", "f"}, {"u4", "b"}}));
  EXPECT_EQ(Pairs(prepared, *prepared.val), (PairList{{"u1", "c"}, {"u2", "b"}}));
  EXPECT_EQ(Pairs(prepared, prepared.train),
            (PairList{{"u1", "a"}, {"u1", "b"}, {"u2", "d"}, {"u2", "a"}, {"u4", "a"}}));
}

TEST(PrepareSplitTest, LastN) {
  PrepareOptions options;
  options.split = SplitStrategy::kLastN;
  options.last_n = 2;
  options.val_n = 1;
  PreparedDataset prepared = SplitWith(options);
  // u1: test d, e; val c. u2: test b, c; val a. u3: one row stays in train.
  // u4: test min(2, 1) = b; no row left for val.
  EXPECT_EQ(Pairs(prepared, prepared.test),
            (PairList{{"u1", "d"}, {"u1", "e"}, {"u2", "b"}, {"u2", "c"}, {"u4", "b"}}));
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_EQ(Pairs(prepared, *prepared.val), (PairList{{"u1", "c"}, {"u2", "a"}}));
  EXPECT_EQ(Pairs(prepared, prepared.train),
            (PairList{{"u1", "a"}, {"u1", "b"}, {"u2", "d"}, {"u3", "f"}, {"u4", "a"}}));
  options.val_n = 0;
  EXPECT_FALSE(SplitWith(options).val.has_value());
}

TEST(PrepareSplitTest, LeaveOneOut) {
  PrepareOptions options;
  options.split = SplitStrategy::kLeaveOneOut;
  PreparedDataset prepared = SplitWith(options);
  EXPECT_EQ(Pairs(prepared, prepared.test), (PairList{{"u1", "e"}, {"u2", "c"}, {"u4", "b"}}));
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_EQ(Pairs(prepared, *prepared.val), (PairList{{"u1", "d"}, {"u2", "b"}}));
  EXPECT_EQ(Pairs(prepared, prepared.train), (PairList{{"u1", "a"},
                                                       {"u1", "b"},
                                                       {"u1", "c"},
                                                       {"u2", "d"},
                                                       {"u2", "a"},
                                                       {"u3", "f"},
                                                       {"u4", "a"}}));
  EXPECT_EQ(prepared.part_meta[1]["rows"], 2);
}

TEST(PrepareSplitTest, TemporalCutoffSendsTiesToTest) {
  // Sorted times: 5 10 10 20 20 30 40 50 50 50 60 70 (n = 12).
  // test_ratio 0.3: floor(3.6) = 3 -> cutoff at rank 9 = 50; all three 50s go to test.
  // val_ratio 0.25: floor(3) = 3 -> val cutoff at rank 6 = 40 -> val is [40, 50).
  PrepareOptions options;
  options.split = SplitStrategy::kTemporal;
  options.test_ratio = 0.3;
  options.val_ratio = 0.25;
  PreparedDataset prepared = SplitWith(options, 2);
  EXPECT_EQ(Pairs(prepared, prepared.test),
            (PairList{{"u2", "a"}, {"u2", "b"}, {"u2", "c"}, {"u4", "a"}, {"u4", "b"}}));
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_EQ(Pairs(prepared, *prepared.val), (PairList{{"u1", "e"}}));
  EXPECT_EQ(prepared.train.size(), 6u);
  EXPECT_EQ(prepared.meta["split"]["test_cutoff_time"], 50);
  EXPECT_EQ(prepared.meta["split"]["val_cutoff_time"], 40);
  // u4 has nothing before t60: a cold test user; items a, b are in train.
  EXPECT_EQ(prepared.meta["cold"]["test"]["users_not_in_train"], 1);
  EXPECT_EQ(prepared.meta["cold"]["test"]["items_not_in_train"], 0);
  EXPECT_EQ(prepared.meta["cold"]["test"]["rows_with_cold_user_or_item"], 2);
}

TEST(PrepareSplitTest, TemporalDefaultRatio) {
  PrepareOptions options;  // temporal, 0.2: floor(2.4) = 2 -> cutoff rank 10 = 60
  PreparedDataset prepared = SplitWith(options);
  EXPECT_EQ(Pairs(prepared, prepared.test), (PairList{{"u4", "a"}, {"u4", "b"}}));
  EXPECT_EQ(prepared.train.size(), 10u);
  EXPECT_FALSE(prepared.val.has_value());
}

TEST(PrepareSplitTest, TemporalHandlesExtremeTimes) {
  // The selection works on the full int64 range (negative and huge times).
  std::vector<Row> rows;
  const std::int64_t times[] = {std::numeric_limits<std::int64_t>::min(), -5, 0, 7,
                                std::numeric_limits<std::int64_t>::max()};
  for (int k = 0; k < 5; ++k)
    rows.push_back({"u", std::string(1, static_cast<char>('a' + k)), 1, times[k]});
  PrepareOptions options;
  options.test_ratio = 0.4;  // 2 rows: cutoff 7
  PreparedDataset prepared = Prepare(MakeDataset(rows), options, Threads(1));
  EXPECT_EQ(Pairs(prepared, prepared.test), (PairList{{"u", "d"}, {"u", "e"}}));
  EXPECT_EQ(prepared.meta["split"]["test_cutoff_time"], 7);
}

TEST(PrepareSplitTest, RandomTakesExactCounts) {
  PrepareOptions options;
  options.split = SplitStrategy::kRandom;
  options.test_ratio = 0.25;
  options.val_ratio = 0.25;
  PreparedDataset prepared = SplitWith(options);
  EXPECT_EQ(prepared.test.size(), 3u);
  ASSERT_TRUE(prepared.val.has_value());
  EXPECT_EQ(prepared.val->size(), 3u);
  EXPECT_EQ(prepared.train.size(), 6u);
  // Same seed, same draw; the draw depends on the seed.
  EXPECT_EQ(AllRows(SplitWith(options, 2)), AllRows(prepared));
  PreparedDataset again = SplitWith(options, 2);
  EXPECT_EQ(Pairs(again, again.test), Pairs(prepared, prepared.test));
  bool any_differs = false;
  for (std::uint64_t seed = 1; seed < 10 && !any_differs; ++seed) {
    options.seed = seed;
    PreparedDataset other = SplitWith(options);
    any_differs = Pairs(other, other.test) != Pairs(prepared, prepared.test);
  }
  EXPECT_TRUE(any_differs);
}

// ---------------------------------------------------------------------------
// Cold start.

TEST(PrepareColdTest, KeepCountsColdRows) {
  PrepareOptions options;
  options.split = SplitStrategy::kRatio;
  PreparedDataset prepared = SplitWith(options);
  // Test rows u1:e, u2:c, u3:f, u4:b. u3 has no train row; items e and f none either.
  const auto& cold = prepared.meta["cold"];
  EXPECT_EQ(cold["policy"], "keep");
  EXPECT_EQ(cold["test"]["users_not_in_train"], 1);
  EXPECT_EQ(cold["test"]["items_not_in_train"], 2);
  EXPECT_EQ(cold["test"]["rows_with_cold_user_or_item"], 2);
  EXPECT_EQ(cold["rows_dropped"], 0);
  EXPECT_FALSE(cold.contains("val"));
  EXPECT_EQ(prepared.users.size(), 4u);
  EXPECT_EQ(prepared.items.ids(), (std::vector<std::string>{"a", "b", "c", "d", "e", "f"}));
}

TEST(PrepareColdTest, DropRemovesColdRowsAndCompactsIds) {
  PrepareOptions options;
  options.split = SplitStrategy::kRatio;
  options.cold = ColdPolicy::kDrop;
  PreparedDataset prepared = SplitWith(options);
  EXPECT_EQ(Pairs(prepared, prepared.test), (PairList{{"u2", "c"}, {"u4", "b"}}));
  EXPECT_EQ(prepared.train.size(), 8u);
  EXPECT_EQ(prepared.meta["cold"]["rows_dropped"], 2);
  // Counted before dropping.
  EXPECT_EQ(prepared.meta["cold"]["test"]["users_not_in_train"], 1);
  EXPECT_EQ(prepared.users.ids(), (std::vector<std::string>{"u1", "u2", "u4"}));
  EXPECT_EQ(prepared.items.ids(), (std::vector<std::string>{"a", "b", "c", "d"}));
  // Indices are compacted: u4 is now index 2, item d index 3.
  EXPECT_EQ(prepared.test.users[1], 2u);
  const auto& output = prepared.meta["stages"].back();
  EXPECT_EQ(output["stage"], "output");
  EXPECT_EQ(output["rows"], 10);
  EXPECT_EQ(output["users"], 3);
  EXPECT_EQ(output["items"], 4);
}

TEST(PrepareColdTest, DropCountsValSeparately) {
  PrepareOptions options;
  options.split = SplitStrategy::kLeaveOneOut;
  options.cold = ColdPolicy::kDrop;
  // u: a1 b2 c3 -> train a, val b, test c: items b and c only outside train.
  PreparedDataset prepared = Prepare(MakeDataset({{"u", "a", 1, 1},
                                                  {"u", "b", 1, 2},
                                                  {"u", "c", 1, 3},
                                                  {"v", "b", 1, 1},
                                                  {"v", "a", 1, 2}}),
                                     options, Threads(1));
  // v: train b, test a. So b is in train (v), c is not.
  const auto& cold = prepared.meta["cold"];
  EXPECT_EQ(cold["val"]["items_not_in_train"], 0);
  EXPECT_EQ(cold["test"]["items_not_in_train"], 1);
  EXPECT_EQ(cold["rows_dropped"], 1);
  EXPECT_EQ(Pairs(prepared, prepared.test), (PairList{{"v", "a"}}));
  EXPECT_EQ(Pairs(prepared, *prepared.val), (PairList{{"u", "b"}}));
  EXPECT_EQ(prepared.items.ids(), (std::vector<std::string>{"a", "b"}));
}

// ---------------------------------------------------------------------------
// Invariants on a larger random dataset (with repeated pairs and time ties), big
// enough to take the multi-threaded paths.

Dataset RandomDataset(std::uint32_t n_users, std::uint32_t n_items, std::size_t rows,
                      std::uint64_t seed) {
  Dataset dataset;
  std::vector<std::string> ids;
  for (std::uint32_t user = 0; user < n_users; ++user) ids.push_back(fmt::format("u{}", user));
  dataset.users = IdMap(ids);
  ids.clear();
  for (std::uint32_t item = 0; item < n_items; ++item) ids.push_back(fmt::format("i{}", item));
  dataset.items = IdMap(ids);
  Rng rng(seed);
  for (std::size_t row = 0; row < rows; ++row) {
    // Skewed users and items, coarse times (many ties), ratings 1..5.
    auto user = static_cast<UserIndex>(rng.Below(rng.Below(n_users) + 1));
    auto item = static_cast<ItemIndex>(rng.Below(rng.Below(n_items) + 1));
    dataset.interactions.Append(user, item, static_cast<float>(1 + rng.Below(5)),
                                static_cast<Timestamp>(rng.Below(1000)));
  }
  return dataset;
}

void ExpectSame(const Interactions& a, const Interactions& b) {
  EXPECT_EQ(a.users, b.users);
  EXPECT_EQ(a.items, b.items);
  EXPECT_EQ(a.ratings, b.ratings);
  EXPECT_EQ(a.times, b.times);
}

void ExpectSame(const PreparedDataset& a, const PreparedDataset& b) {
  EXPECT_EQ(a.users.ids(), b.users.ids());
  EXPECT_EQ(a.items.ids(), b.items.ids());
  ExpectSame(a.train, b.train);
  ASSERT_EQ(a.val.has_value(), b.val.has_value());
  if (a.val) ExpectSame(*a.val, *b.val);
  ExpectSame(a.test, b.test);
  EXPECT_EQ(a.meta.dump(), b.meta.dump());
  for (int k = 0; k < 3; ++k) EXPECT_EQ(a.part_meta[k].dump(), b.part_meta[k].dump());
}

std::vector<PrepareOptions> AllStrategies() {
  std::vector<PrepareOptions> all;
  for (SplitStrategy split :
       {SplitStrategy::kTemporal, SplitStrategy::kLastN, SplitStrategy::kLeaveOneOut,
        SplitStrategy::kRatio, SplitStrategy::kRandom}) {
    PrepareOptions options;
    options.split = split;
    options.min_user = 3;
    options.min_item = 3;
    if (split == SplitStrategy::kLastN) options.val_n = 2;
    if (split != SplitStrategy::kLastN && split != SplitStrategy::kLeaveOneOut)
      options.val_ratio = 0.1;
    all.push_back(options);
    options.cold = ColdPolicy::kDrop;
    options.dedup = DedupPolicy::kMean;
    all.push_back(options);
  }
  return all;
}

TEST(PrepareInvariantsTest, SameOutputForOneOrTwoThreadsAndRepeatedRuns) {
  Dataset dataset = RandomDataset(3000, 800, 120'000, 7);
  for (const PrepareOptions& options : AllStrategies()) {
    SCOPED_TRACE(std::string(Name(options.split)) + " cold=" + std::string(Name(options.cold)));
    PreparedDataset one = Prepare(dataset, options, Threads(1));
    PreparedDataset two = Prepare(dataset, options, Threads(2));
    ExpectSame(one, two);
    ExpectSame(two, Prepare(dataset, options, Threads(2)));
  }
}

TEST(PrepareInvariantsTest, PartsAreSortedDisjointAndLeakFree) {
  Dataset dataset = RandomDataset(3000, 800, 120'000, 11);
  for (const PrepareOptions& options : AllStrategies()) {
    SCOPED_TRACE(std::string(Name(options.split)) + " cold=" + std::string(Name(options.cold)));
    PreparedDataset prepared = Prepare(dataset, options, Threads(2));
    const Interactions* parts[3] = {&prepared.train, prepared.val ? &*prepared.val : nullptr,
                                    &prepared.test};
    std::set<std::pair<UserIndex, ItemIndex>> seen;
    std::vector<std::tuple<Timestamp, ItemIndex>> last_train(prepared.users.size(), {-1, 0});
    std::uint64_t total = 0;
    for (int k = 0; k < 3; ++k) {
      if (parts[k] == nullptr) continue;
      const Interactions& part = *parts[k];
      total += part.size();
      EXPECT_EQ(prepared.part_meta[k]["rows"], part.size());
      for (std::size_t row = 0; row < part.size(); ++row) {
        ASSERT_LT(part.users[row], prepared.users.size());
        ASSERT_LT(part.items[row], prepared.items.size());
        EXPECT_TRUE(seen.emplace(part.users[row], part.items[row]).second) << "pair in two parts";
        if (row > 0) {
          auto before =
              std::make_tuple(part.users[row - 1], part.times[row - 1], part.items[row - 1]);
          auto now = std::make_tuple(part.users[row], part.times[row], part.items[row]);
          EXPECT_LT(before, now) << "rows not sorted by (user, time, item)";
        }
        if (k == 0) {
          auto& last = last_train[part.users[row]];
          last = std::max(last, std::make_tuple(part.times[row], part.items[row]));
        } else if (options.split != SplitStrategy::kRandom) {
          // Every val / test row comes after every train row of its user.
          EXPECT_LT(last_train[part.users[row]], std::make_tuple(part.times[row], part.items[row]));
        }
      }
    }
    EXPECT_EQ(StageRows(prepared, "output"), total);
    if (options.cold == ColdPolicy::kKeep) {
      EXPECT_EQ(StageRows(prepared, "kcore"), total);
    }
    // Every user and item of the compacted maps has a row.
    std::set<UserIndex> users;
    std::set<ItemIndex> items;
    for (const auto& [user, item] : seen) users.insert(user), items.insert(item);
    EXPECT_EQ(users.size(), prepared.users.size());
    EXPECT_EQ(items.size(), prepared.items.size());
  }
}

TEST(PrepareInvariantsTest, RandomSplitIsUniformEnough) {
  Dataset dataset = RandomDataset(3000, 800, 120'000, 3);
  PrepareOptions options;
  options.split = SplitStrategy::kRandom;
  options.test_ratio = 0.3;
  const PreparedDataset reference = Prepare(dataset, options, Threads(1));
  auto test_pairs = [&](std::uint64_t seed, double* test_mean, double* train_mean) {
    options.seed = seed;
    PreparedDataset prepared = Prepare(dataset, options, Threads(2));
    std::uint64_t total = prepared.train.size() + prepared.test.size();
    EXPECT_EQ(prepared.test.size(),
              static_cast<std::uint64_t>(std::floor(0.3 * static_cast<double>(total) + 1e-9)));
    auto mean = [](const std::vector<Timestamp>& times) {
      double sum = 0;
      for (Timestamp t : times) sum += static_cast<double>(t);
      return sum / static_cast<double>(times.size());
    };
    *test_mean = mean(prepared.test.times);
    *train_mean = mean(prepared.train.times);
    // Nothing is filtered, so every run has the same id maps and indices compare.
    EXPECT_EQ(prepared.users.ids(), reference.users.ids());
    std::set<std::pair<UserIndex, ItemIndex>> pairs;
    for (std::size_t k = 0; k < prepared.test.size(); ++k) {
      pairs.emplace(prepared.test.users[k], prepared.test.items[k]);
    }
    return pairs;
  };
  double test_mean = 0, train_mean = 0;
  auto first = test_pairs(1, &test_mean, &train_mean);
  // Test rows spread over time like train rows (dedup makes repeated, popular pairs
  // later, so a draw biased toward them would show). Standard error ~2.
  EXPECT_NEAR(test_mean, train_mean, 8);
  // Seeds differing in one bit draw unrelated sets: the overlap is ~30% by chance.
  for (std::uint64_t seed : {0ull, 3ull, 5ull}) {
    auto other = test_pairs(seed, &test_mean, &train_mean);
    EXPECT_NEAR(test_mean, train_mean, 8) << "seed " << seed;
    std::size_t common = 0;
    for (const auto& pair : other) common += first.count(pair);
    double overlap = static_cast<double>(common) / static_cast<double>(first.size());
    EXPECT_NEAR(overlap, 0.3, 0.02) << "seed " << seed;
  }
}

// ---------------------------------------------------------------------------
// Meta.

TEST(PrepareMetaTest, RecordsParentStagesAndKeepsAllItemInfo) {
  Dataset dataset = MakeDataset(SplitRows());
  dataset.meta["content_hash"] = "abc123";
  dataset.meta["parse_errors"] = {{"total", 2}};
  ItemInfo unused;
  unused.item_id = "never-rated";
  unused.title = "Metadata only";
  ItemInfo a;
  a.item_id = "a";
  dataset.item_info = {a, unused};
  PrepareOptions options;
  options.split = SplitStrategy::kRatio;
  options.cold = ColdPolicy::kDrop;
  PreparedDataset prepared = Prepare(dataset, options, Threads(1));
  EXPECT_EQ(prepared.meta["parameters"], options.ToJson());
  EXPECT_EQ(prepared.meta["parent"]["content_hash"], "abc123");
  EXPECT_EQ(prepared.meta["parent"]["rows"], 12);
  EXPECT_EQ(prepared.meta["source_parse_errors"]["total"], 2);
  EXPECT_EQ(prepared.meta["split"]["strategy"], "ratio");
  EXPECT_EQ(prepared.meta["split"]["train_rows"], 8);
  EXPECT_EQ(prepared.meta["split"]["test_rows"], 2);
  std::vector<std::string> stage_names;
  for (const auto& stage : prepared.meta["stages"])
    stage_names.push_back(stage["stage"].get<std::string>());
  EXPECT_EQ(stage_names,
            (std::vector<std::string>{"input", "dedup", "rating_filter", "kcore", "output"}));
  ASSERT_EQ(prepared.item_info.size(), 2u);
  EXPECT_EQ(prepared.item_info[1].item_id, "never-rated");

  Dataset bare = MakeDataset(SplitRows());
  PreparedDataset without = Prepare(bare, options, Threads(1));
  EXPECT_FALSE(without.meta["parent"].contains("content_hash"));
  EXPECT_FALSE(without.meta.contains("source_parse_errors"));
}

TEST(PrepareMetaTest, RejectsIndicesOutsideTheIdMaps) {
  Dataset dataset = MakeDataset(SplitRows());
  dataset.interactions.items[3] = 99;
  EXPECT_THROW(Prepare(dataset, PrepareOptions(), Threads(2)), FormatError);
  dataset = MakeDataset(SplitRows());
  dataset.interactions.times.pop_back();
  EXPECT_THROW(Prepare(dataset, PrepareOptions(), Threads(1)), FormatError);
}

}  // namespace
}  // namespace recforge::data
