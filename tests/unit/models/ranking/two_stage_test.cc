// two-stage (src/models/ranking): the label window is strictly later than the feature
// window (no leakage), the flattened sub-model spec, the score contract (non-candidates
// below every candidate), the val part, feature importance, fold-in.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "../../../../src/models/ranking/two_stage.h"
#include "recforge/core/error.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

using recforge::testing::PlantedCheckerboard;

constexpr const char* kSmall =
    "two-stage:ials=20,itemknn=10,emb=10,cooc=10,pop=10,trees=20,ials.factors=8,ials.iters=3,itemknn.neighbors=10";

// A tiny train part: user 0 has a time tie at its cut, user 1 a single time, user 2
// ordinary rows, user 3 one row.
data::Interactions TinyTrain() {
  data::Interactions rows;
  for (auto [user, item, time] : std::vector<std::tuple<UserIndex, ItemIndex, Timestamp>>{
           {0, 0, 10}, {0, 1, 20}, {0, 2, 30}, {0, 3, 40}, {0, 4, 40},  // tie at the end
           {1, 0, 50}, {1, 1, 50}, {1, 2, 50},                          // one time only
           {2, 5, 5}, {2, 6, 15}, {2, 7, 25}, {2, 8, 35}, {2, 9, 45},
           {3, 1, 60}}) {
    rows.Append(user, item, 1.0f, time);
  }
  return rows;
}

void ExpectStrictlyLater(const TimeWindows& windows, std::size_t n_users, bool global) {
  std::map<UserIndex, Timestamp> last_feature;
  Timestamp newest = std::numeric_limits<Timestamp>::min();
  for (std::size_t r = 0; r < windows.features.size(); ++r) {
    auto& last = last_feature.try_emplace(windows.features.users[r], windows.features.times[r]).first->second;
    last = std::max(last, windows.features.times[r]);
    newest = std::max(newest, windows.features.times[r]);
  }
  for (std::size_t r = 0; r < windows.labels.size(); ++r) {
    const UserIndex user = windows.labels.users[r];
    ASSERT_LT(user, n_users);
    if (global) {
      EXPECT_GT(windows.labels.times[r], newest) << "label row " << r;
    } else {
      ASSERT_TRUE(last_feature.count(user)) << "user " << user << " has labels but no features";
      EXPECT_GT(windows.labels.times[r], last_feature[user]) << "label row " << r << " of user " << user;
    }
  }
}

TEST(TwoStageWindows, PerUserLabelWindowIsStrictlyLaterThanTheFeatureWindow) {
  const data::Interactions train = TinyTrain();
  const TimeWindows windows = SplitTimeWindows(train, 4, /*global=*/false, 0.2);
  EXPECT_EQ(windows.features.size() + windows.labels.size(), train.size());
  ExpectStrictlyLater(windows, 4, false);
  std::multiset<UserIndex> label_users(windows.labels.users.begin(), windows.labels.users.end());
  // User 0: its last two rows share time 40, so both move to the label window.
  EXPECT_EQ(label_users.count(0), 2u);
  EXPECT_EQ(label_users.count(1), 0u);  // one time only: nothing strictly later
  EXPECT_EQ(label_users.count(2), 1u);  // floor(0.2 * 5) = 1: the row at time 45
  EXPECT_EQ(label_users.count(3), 0u);  // a single row stays a feature
}

TEST(TwoStageWindows, GlobalLabelWindowStartsAfterEveryFeatureRow) {
  const data::Interactions train = TinyTrain();
  const TimeWindows windows = SplitTimeWindows(train, 4, /*global=*/true, 0.3);
  EXPECT_FALSE(windows.labels.empty());
  EXPECT_FALSE(windows.features.empty());
  ExpectStrictlyLater(windows, 4, true);
}

TEST(TwoStageWindows, FitTrainsTheRankerOnALaterWindowAndReportsIt) {
  auto prepared = PlantedCheckerboard();
  auto data = TrainingData::FromPrepared(prepared, 1);
  Context ctx;
  ctx.threads = 2;
  for (const char* window : {"user", "global"}) {
    auto model = CreateModel(std::string(kSmall) + ",window=" + window);
    model->Fit(data, ctx);
    const auto& summary = dynamic_cast<const TwoStageModel&>(*model).summary();
    EXPECT_EQ(summary.window, std::string(window) == "user" ? "per-user carve" : "global carve");
    EXPECT_EQ(summary.leaking_label_rows, 0u) << window;
    EXPECT_GT(summary.label_rows, 0u);
    EXPECT_EQ(summary.feature_rows + summary.label_rows, prepared.train.size());
    EXPECT_GT(summary.ranker_users, 0u);
    EXPECT_GT(summary.candidate_recall, 0.5) << window;
  }
}

TEST(TwoStageWindows, UsesTheValPartWhenThePreparedDatasetHasOne) {
  auto prepared = PlantedCheckerboard();
  // Each user's latest train row becomes val (strictly later: planted times increase).
  std::map<UserIndex, std::size_t> latest;
  for (std::size_t r = 0; r < prepared.train.size(); ++r) {
    auto [it, inserted] = latest.try_emplace(prepared.train.users[r], r);
    if (prepared.train.times[r] > prepared.train.times[it->second]) it->second = r;
  }
  std::vector<RowIndex> keep, moved;
  std::set<std::size_t> val_rows;
  for (const auto& [user, row] : latest) val_rows.insert(row);
  for (std::size_t r = 0; r < prepared.train.size(); ++r) (val_rows.count(r) ? moved : keep).push_back(r);
  prepared.val = prepared.train.Gather(moved);
  prepared.train = prepared.train.Gather(keep);
  auto data = TrainingData::FromPrepared(prepared, 1);
  Context ctx;
  auto model = CreateModel(kSmall);
  model->Fit(data, ctx);
  const auto& summary = dynamic_cast<const TwoStageModel&>(*model).summary();
  EXPECT_EQ(summary.window, "val part");
  EXPECT_EQ(summary.label_rows, moved.size());
  EXPECT_EQ(summary.leaking_label_rows, 0u);
}

TEST(TwoStageSpec, SubModelKeysAreFlattenedValidatedAndRoundTrip) {
  auto model = CreateModel("two-stage:ials.factors=4,ials.alpha=0.5,itemknn.k=7,emb=0");
  const auto& two_stage = dynamic_cast<const TwoStageModel&>(*model);
  ASSERT_NE(two_stage.source_model("ials"), nullptr);
  EXPECT_NE(two_stage.source_model("ials")->Spec().find("factors=4"), std::string::npos);
  EXPECT_NE(two_stage.source_model("ials")->Spec().find("alpha=0.5"), std::string::npos);
  EXPECT_NE(two_stage.source_model("itemknn")->Spec().find("neighbors=7"), std::string::npos);  // alias
  EXPECT_EQ(ParseSpec(model->Spec()).CanonicalSpec(), model->Spec());
  EXPECT_NE(model->Spec().find("ials.factors=4"), std::string::npos);
  // Sub-keys are checked by the sub-family's own field table.
  EXPECT_THROW(ParseSpec("two-stage:ials.no_such_key=1"), ConfigError);
  EXPECT_THROW(ParseSpec("two-stage:ials.factors=0"), ConfigError);
  // A source with 0 candidates and no use for its features is not created.
  auto without = CreateModel("two-stage:itemknn=0");
  EXPECT_EQ(dynamic_cast<const TwoStageModel&>(*without).source_model("itemknn"), nullptr);
}

TEST(TwoStageScores, NonCandidatesScoreBelowEveryCandidate) {
  auto prepared = PlantedCheckerboard();
  auto data = TrainingData::FromPrepared(prepared, 1);
  Context ctx;
  // Only ials proposes candidates: 5 per user.
  auto model = CreateModel(
      "two-stage:ials=5,itemknn=0,emb=0,cooc=0,pop=0,trees=10,ials.factors=8,ials.iters=3");
  model->Fit(data, ctx);
  const Recommender* ials = dynamic_cast<const TwoStageModel&>(*model).source_model("ials");
  ASSERT_NE(ials, nullptr);
  std::vector<float> scores(data.n_items), ials_scores(data.n_items);
  for (UserIndex user = 0; user < 20; ++user) {
    model->ScoreUsers(std::span<const UserIndex>(&user, 1), scores.data());
    ials->ScoreUsers(std::span<const UserIndex>(&user, 1), ials_scores.data());
    // The ials top-5 unseen items are the candidates.
    std::vector<ItemIndex> unseen;
    for (ItemIndex i = 0; i < data.n_items; ++i) {
      if (!data.user_items->Contains(user, i)) unseen.push_back(i);
    }
    std::sort(unseen.begin(), unseen.end(), [&](ItemIndex a, ItemIndex b) {
      return ials_scores[a] > ials_scores[b] || (ials_scores[a] == ials_scores[b] && a < b);
    });
    const std::set<ItemIndex> candidates(unseen.begin(), unseen.begin() + 5);
    float lowest_candidate = std::numeric_limits<float>::infinity();
    float highest_other = -std::numeric_limits<float>::infinity();
    for (ItemIndex i = 0; i < data.n_items; ++i) {
      if (candidates.count(i)) {
        lowest_candidate = std::min(lowest_candidate, scores[i]);
      } else {
        highest_other = std::max(highest_other, scores[i]);
      }
    }
    EXPECT_LT(highest_other, lowest_candidate) << "user " << user;
  }
}

TEST(TwoStageModel, ReportsAndSavesFeatureImportance) {
  auto prepared = PlantedCheckerboard();
  auto data = TrainingData::FromPrepared(prepared, 1);
  Context ctx;
  auto model = CreateModel(kSmall);
  model->Fit(data, ctx);
  const auto& two_stage = dynamic_cast<const TwoStageModel&>(*model);
  ASSERT_EQ(two_stage.importance().size(), two_stage.feature_names().size());
  double total = 0;
  for (const auto& entry : two_stage.importance()) total += entry.total_gain;
  EXPECT_GT(total, 0);
  EXPECT_GE(two_stage.importance().front().total_gain, two_stage.importance().back().total_gain);
  recforge::testing::TempDir dir;
  SaveModel(*model, dir / "m.bin");
  auto loaded = LoadModel(dir / "m.bin");
  const auto& restored = dynamic_cast<const TwoStageModel&>(*loaded);
  ASSERT_EQ(restored.importance().size(), two_stage.importance().size());
  for (std::size_t k = 0; k < restored.importance().size(); ++k) {
    EXPECT_EQ(restored.importance()[k].name, two_stage.importance()[k].name);
    EXPECT_EQ(restored.importance()[k].total_gain, two_stage.importance()[k].total_gain);
  }
  EXPECT_EQ(restored.summary().ranker_rows, two_stage.summary().ranker_rows);
}

TEST(TwoStageModel, FoldInFromAHistoryMatchesTheBlock) {
  auto prepared = PlantedCheckerboard();
  auto data = TrainingData::FromPrepared(prepared, 1);
  Context ctx;
  auto model = CreateModel(kSmall);
  model->Fit(data, ctx);
  // A new user with three items of block 1 gets block-1 items first.
  recforge::testing::PlantedOptions options;
  std::vector<ItemIndex> history = {12, 13, 14};
  std::vector<float> values = {5, 4, 5};
  RecommendOptions recommend;
  recommend.k = 5;
  auto list = model->RecommendHistory(history, values, recommend);
  ASSERT_EQ(list.items.size(), 5u);
  for (ItemIndex item : list.items) {
    EXPECT_EQ(recforge::testing::PlantedItemBlock(options, item), 1) << item;
    EXPECT_EQ(std::count(history.begin(), history.end(), item), 0);
  }
}

TEST(TwoStageModel, HnswAndExactNeighbourSearchBothWork) {
  auto prepared = PlantedCheckerboard();
  auto data = TrainingData::FromPrepared(prepared, 1);
  Context ctx;
  for (const char* ann : {"exact", "hnsw"}) {
    auto model = CreateModel(std::string(kSmall) + ",ann=" + ann);
    model->Fit(data, ctx);
    EXPECT_EQ(dynamic_cast<const TwoStageModel&>(*model).summary().hnsw, std::string(ann) == "hnsw");
    RecommendOptions recommend;
    UserIndex user = 0;
    EXPECT_EQ(model->Recommend(std::span<const UserIndex>(&user, 1), recommend, 1)[0].items.size(), 10u);
  }
}

TEST(TwoStageModel, TooLittleDataIsAClearError) {
  // Every user has one interaction: no later window to learn the ranker from.
  auto dataset = recforge::testing::MakeDataset({{"a", "x", 1, 1}, {"b", "y", 1, 2}, {"c", "x", 1, 3}});
  data::PreparedDataset prepared;
  prepared.users = dataset.users;
  prepared.items = dataset.items;
  prepared.train = dataset.interactions;
  auto data = TrainingData::FromPrepared(prepared, 1);
  auto model = CreateModel("two-stage");
  try {
    model->Fit(data, Context());
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("no label window"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace recforge::models
