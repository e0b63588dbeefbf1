// Issue 6's evaluation additions on tiny hand-computed cases (docs/evaluation.md): the
// leave-one-out next-item protocol and --cold-items. (Listed by the sequence group's
// tests/unit/models/sequence/CMakeLists.txt, which owns these additions.)
#include <gtest/gtest.h>

#include <cmath>

#include "recforge/core/error.h"
#include "recforge/eval/evaluator.h"
#include "recforge/models/registry.h"

namespace recforge::eval {
namespace {

constexpr double kTol = 1e-9;
double InvLog2(double rank) { return 1.0 / std::log2(rank + 1.0); }

// Scores 1 for the item after the history's newest item (index + 1, mod n) and 0 for
// the rest; without a history it cannot score (ScoreUsers gives zeros). It sees the
// order of the history, so it tells a time-ordered history from a sorted one.
class NextOfLast final : public models::Recommender {
 public:
  explicit NextOfLast(bool supports_history = true)
      : Recommender(models::ParamValues("next-of-last", {})), supports_history_(supports_history) {}
  void ScoreUsers(std::span<const UserIndex> users, float* out) const override {
    std::fill(out, out + users.size() * n_items(), 0.0f);
  }
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float>, float* out) const override {
    if (!supports_history_) return false;
    std::fill(out, out + n_items(), 0.0f);
    out[(items.back() + 1) % n_items()] = 1.0f;
    return true;
  }
  void SaveState(models::ModelWriter&) const override {}
  void LoadState(models::ModelReader&) override {}

 protected:
  void FitImpl(const models::TrainingData&, const Context&, const models::TrainCallback&) override {}

 private:
  bool supports_history_;
};

// Leave-one-out shaped, 2 users x 5 items (time in brackets):
//   u0: train i3 [1], i0 [2]; val i1 [3]; test i2 [4]
//   u1: train i1 [1], i4 [2]; val i0 [3]; test i3 [4]
// History (train + val, time order): u0 i3 i0 i1, u1 i1 i4 i0; both excluded from ranking.
data::PreparedDataset LeaveOneOut() {
  data::PreparedDataset prepared;
  prepared.users = data::IdMap({"u0", "u1"});
  prepared.items = data::IdMap({"i0", "i1", "i2", "i3", "i4"});
  prepared.train.Append(0, 3, 1, 1);
  prepared.train.Append(0, 0, 1, 2);
  prepared.train.Append(1, 1, 1, 1);
  prepared.train.Append(1, 4, 1, 2);
  prepared.val.emplace();
  prepared.val->Append(0, 1, 1, 3);
  prepared.val->Append(1, 0, 1, 3);
  prepared.test.Append(0, 2, 1, 4);
  prepared.test.Append(1, 3, 1, 4);
  prepared.meta = {{"content_hash", "loo"}};
  return prepared;
}

EvalOptions NextItem() {
  EvalOptions options;
  options.protocol = Protocol::kNextItem;
  options.ks = {1, 2};
  options.bootstrap_samples = 0;
  return options;
}

TEST(NextItemProtocol, PopRanksEveryItemOutsideTrainPlusVal) {
  data::PreparedDataset prepared = LeaveOneOut();
  auto data = models::TrainingData::FromPrepared(prepared, 1);
  auto pop = models::CreateModel("pop");
  Context ctx;
  pop->Fit(data, ctx);
  EvalReport report = Evaluate(*pop, prepared, NextItem(), ctx);
  // Train popularity: i0 i1 i3 i4 once each, i2 never. pop's ScoreHistory is its
  // popularity whatever the history, which ranks: u0 (excl. i3 i0 i1) [i4, i2] -> test i2 at rank 2;
  // u1 (excl. i1 i4 i0) [i3, i2] -> test i3 at rank 1.
  EXPECT_EQ(report.protocol, "next-item");
  EXPECT_EQ(report.users_evaluated, 2u);
  ASSERT_TRUE(report.next_item.has_value());
  EXPECT_EQ(report.next_item->from_history, 2u);
  EXPECT_EQ(report.next_item->from_fitted_user, 0u);
  EXPECT_NEAR(report.metrics.at("hit_rate@1"), 0.5, kTol);
  EXPECT_NEAR(report.metrics.at("hit_rate@2"), 1.0, kTol);
  EXPECT_NEAR(report.metrics.at("ndcg@2"), (InvLog2(2) + 1.0) / 2, kTol);
  EXPECT_NEAR(report.metrics.at("mrr@2"), 0.75, kTol);
  // Only hit_rate, ndcg and mrr by default.
  EXPECT_EQ(report.metrics.count("precision@1"), 0u);
  EXPECT_EQ(report.metrics.count("coverage@1"), 0u);
  EXPECT_EQ(report.ToJson()["next_item"]["scored_from_history"], 2);

  // The full protocol on the same data excludes train only: u0 ranks [i1, i4, i2]
  // (i1 and i4 popularity 1, ties to the smaller index), so test i2 is at rank 3.
  EvalOptions full = NextItem();
  full.protocol = Protocol::kFull;
  EvalReport full_report = Evaluate(*pop, prepared, full, ctx);
  EXPECT_EQ(full_report.protocol, "full");
  EXPECT_FALSE(full_report.next_item.has_value());
  EXPECT_FALSE(full_report.ToJson().contains("next_item"));
  EXPECT_NEAR(full_report.metrics.at("hit_rate@2"), 0.5, kTol);
}

TEST(NextItemProtocol, ScoreHistoryGetsTrainThenValInTimeOrder) {
  data::PreparedDataset prepared = LeaveOneOut();
  auto data = models::TrainingData::FromPrepared(prepared, 1);
  NextOfLast model;
  Context ctx;
  ctx.threads = 2;
  model.Fit(data, ctx);
  EvalReport report = Evaluate(model, prepared, NextItem(), ctx);
  // u0's newest history item is i1 (val) -> predicts i2 = its test item, rank 1. (A
  // history sorted by item index would end in i3 and predict i4.) u1's newest is i0 ->
  // predicts i1, which is in its history; the rest tie at 0: [i2, i3] -> test i3 rank 2.
  ASSERT_TRUE(report.next_item.has_value());
  EXPECT_EQ(report.next_item->from_history, 2u);
  EXPECT_NEAR(report.metrics.at("hit_rate@1"), 0.5, kTol);
  EXPECT_NEAR(report.metrics.at("ndcg@1"), 0.5, kTol);
  EXPECT_NEAR(report.metrics.at("ndcg@2"), (1.0 + InvLog2(2)) / 2, kTol);
  EXPECT_NEAR(report.metrics.at("mrr@2"), 0.75, kTol);

  // part=val: the history is train only and val is the held-out item: u0's newest
  // train item i0 predicts i1 = its val item (rank 1); u1's i4 predicts i0 (rank 1).
  EvalOptions val = NextItem();
  val.part = "val";
  EvalReport val_report = Evaluate(model, prepared, val, ctx);
  EXPECT_NEAR(val_report.metrics.at("hit_rate@1"), 1.0, kTol);

  // A family without ScoreHistory is scored from its fitted user (all zeros here), with
  // the history still excluded: u0 [i2, i4] -> rank 1; u1 [i2, i3] -> rank 2.
  NextOfLast fitted_only(false);
  fitted_only.Fit(data, ctx);
  EvalReport fitted = Evaluate(fitted_only, prepared, NextItem(), ctx);
  EXPECT_EQ(fitted.next_item->from_history, 0u);
  EXPECT_EQ(fitted.next_item->from_fitted_user, 2u);
  EXPECT_NEAR(fitted.metrics.at("mrr@2"), 0.75, kTol);
}

TEST(NextItemProtocol, ParsesAndNotesWhatItLeavesOut) {
  EXPECT_EQ(EvalOptions::ParseProtocol("next-item").first, Protocol::kNextItem);
  try {
    EvalOptions::ParseProtocol("loo");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("next-item"), std::string::npos) << error.what();
  }
  data::PreparedDataset prepared = LeaveOneOut();
  auto data = models::TrainingData::FromPrepared(prepared, 1);
  auto pop = models::CreateModel("pop");
  pop->Fit(data, Context{});
  EvalOptions options = NextItem();
  options.metrics = {"precision", "coverage"};
  EvalReport report = Evaluate(*pop, prepared, options, Context{});
  EXPECT_TRUE(report.metrics.count("precision@1"));
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_NE(report.notes[0].find("coverage: left out"), std::string::npos) << report.notes[0];
}

// 3 users x 6 items; i3, i4, i5 have no train rows (cold).
//   train: u0 {i0, i1}  u1 {i0, i2}  u2 {i1}
//   test:  u0 {i3, i2}  u1 {i4}      u2 {i0}  (u2 has no cold test item: skipped)
// Train popularity: i0 2, i1 2, i2 1, cold items 0.
data::PreparedDataset ColdCase() {
  data::PreparedDataset prepared;
  prepared.users = data::IdMap({"u0", "u1", "u2"});
  prepared.items = data::IdMap({"i0", "i1", "i2", "i3", "i4", "i5"});
  prepared.train.Append(0, 0, 1, 1);
  prepared.train.Append(0, 1, 1, 2);
  prepared.train.Append(1, 0, 1, 1);
  prepared.train.Append(1, 2, 1, 2);
  prepared.train.Append(2, 1, 1, 1);
  prepared.test.Append(0, 3, 1, 5);
  prepared.test.Append(0, 2, 1, 6);
  prepared.test.Append(1, 4, 1, 5);
  prepared.test.Append(2, 0, 1, 5);
  prepared.meta = {{"content_hash", "cold"}};
  return prepared;
}

TEST(ColdItems, RanksOnlyColdItemsByDefaultOrEveryItem) {
  data::PreparedDataset prepared = ColdCase();
  auto data = models::TrainingData::FromPrepared(prepared, 1);
  auto pop = models::CreateModel("pop");
  Context ctx;
  pop->Fit(data, ctx);
  EvalOptions options;
  options.ks = {1, 2, 3};
  options.bootstrap_samples = 0;
  options.cold_items = true;
  // Candidates = the cold items i3 i4 i5, all scored 0 by pop: [i3, i4, i5]. u0's
  // relevant {i3} at rank 1, u1's {i4} at rank 2.
  EvalReport report = Evaluate(*pop, prepared, options, ctx);
  EXPECT_EQ(report.users_evaluated, 2u);
  EXPECT_EQ(report.users_skipped, 1u);
  ASSERT_TRUE(report.cold_items.has_value());
  EXPECT_EQ(report.cold_items->candidates, "cold");
  EXPECT_EQ(report.cold_items->catalog_cold_items, 3u);
  EXPECT_EQ(report.cold_items->relevant_cold_items, 2u);
  EXPECT_NEAR(report.metrics.at("hit_rate@1"), 0.5, kTol);
  EXPECT_NEAR(report.metrics.at("ndcg@2"), (1.0 + InvLog2(2)) / 2, kTol);
  EXPECT_NEAR(report.metrics.at("precision@1"), 0.5, kTol);
  EXPECT_EQ(report.metrics.count("coverage@1"), 0u);
  EXPECT_EQ(report.ToJson()["cold_items"]["relevant_cold_items"], 2);

  // Every unseen item: u0 (excl. i0 i1) ranks [i2, i3, i4, i5] -> i3 at rank 2
  // (i2 is relevant to u0 but warm, so not relevant here); u1 (excl. i0 i2) ranks
  // [i1, i3, i4, i5] -> i4 at rank 3.
  options.cold_candidates = ColdCandidates::kAll;
  EvalReport all = Evaluate(*pop, prepared, options, ctx);
  EXPECT_EQ(all.cold_items->candidates, "all");
  EXPECT_NEAR(all.metrics.at("hit_rate@1"), 0.0, kTol);
  EXPECT_NEAR(all.metrics.at("hit_rate@2"), 0.5, kTol);
  EXPECT_NEAR(all.metrics.at("ndcg@3"), (InvLog2(2) + InvLog2(3)) / 2, kTol);
  EXPECT_NEAR(all.metrics.at("mrr@3"), (0.5 + 1.0 / 3) / 2, kTol);

  // Without the flag nothing changes: u0's relevant set is {i2, i3} again.
  EvalOptions plain;
  plain.ks = {1};
  plain.bootstrap_samples = 0;
  EvalReport full = Evaluate(*pop, prepared, plain, ctx);
  EXPECT_EQ(full.users_evaluated, 3u);
  EXPECT_FALSE(full.cold_items.has_value());
  EXPECT_FALSE(full.ToJson().contains("cold_items"));
}

TEST(ColdItems, NeedsTheFullProtocol) {
  EvalOptions options;
  options.cold_items = true;
  options.protocol = Protocol::kNextItem;
  try {
    options.Validate();
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("--cold-items needs --protocol full"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(EvalOptions::ParseColdCandidates("warm"), InvalidArgument);
}

}  // namespace
}  // namespace recforge::eval
