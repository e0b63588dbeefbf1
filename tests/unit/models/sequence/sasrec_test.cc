// The sequence group (issue 6): `seq` (SASRec) - its hand-derived gradient against
// finite differences, training-loss decrease, determinism, that it really reads the
// order of a history (a planted "next item = previous + 1" world), ScoreHistory ==
// ScoreUsers on the user's own training sequence, and the user-facing errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "../../../../src/models/sequence/sasrec.h"
#include "recforge/core/error.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

// Training data from explicit rows; `storage` keeps the rows the data points to.
TrainingData FromRows(const data::Interactions& storage, std::size_t n_users, std::size_t n_items) {
  TrainingData data;
  data.n_users = n_users;
  data.n_items = n_items;
  data.user_items = std::make_shared<const CsrMatrix>(CsrMatrix::FromCoordinates(
      n_users, n_items, storage.users, storage.items, storage.ratings, 1));
  data.item_users = data.user_items->Transpose();
  data.train = &storage;
  data.dataset_hash = "sasrec-test";
  return data;
}

// Users walk the catalog in steps of +1 (mod n_items) from a random start: the next
// item is a function of the last one, which only an order-aware model can learn.
// Rows are written in reverse time order so that the model must sort them.
data::Interactions Walks(std::size_t n_users, std::size_t n_items, std::size_t length) {
  data::Interactions rows;
  Rng rng(5);
  for (std::size_t user = 0; user < n_users; ++user) {
    const std::size_t start = rng.Below(n_items);
    for (std::size_t step = length; step-- > 0;) {
      rows.Append(static_cast<UserIndex>(user), static_cast<ItemIndex>((start + step) % n_items), 1.0f,
                  static_cast<Timestamp>(1000 + step));
    }
  }
  return rows;
}

std::vector<float> UserVectors(const Recommender& model) {
  const auto& factors = dynamic_cast<const FactorModel&>(model);
  return {factors.user_factors().begin(), factors.user_factors().end()};
}

TEST(SasRec, GradientMatchesFiniteDifferences) {
  const std::size_t n_items = 7, d = 8;
  const SasRecModel::Layout layout = SasRecModel::Layout::Make(d, 2, 2, 6);
  std::vector<float> theta(n_items * d + layout.total);
  Rng rng(1);
  for (float& value : theta) value = static_cast<float>(rng.Uniform() - 0.5) * 0.8f;
  const std::vector<ItemIndex> inputs = {3, 1, 4, 1, 5};
  const std::vector<ItemIndex> targets = {1, 4, 1, 5, 6};
  const std::vector<ItemIndex> negatives = {2, 0, 6, 2, 3};
  for (float dropout : {0.0f, 0.3f}) {
    std::vector<float> gradient;
    SasRecWindowLossForTest(layout, theta, n_items, inputs, targets, negatives, dropout, 99, &gradient);
    ASSERT_EQ(gradient.size(), theta.size());
    std::size_t checked = 0, mismatched = 0;
    double worst = 0;
    for (std::size_t e = 0; e < theta.size(); ++e) {
      const float saved = theta[e];
      const float step = 3e-3f;
      theta[e] = saved + step;
      const double up = SasRecWindowLossForTest(layout, theta, n_items, inputs, targets, negatives,
                                                dropout, 99, nullptr);
      theta[e] = saved - step;
      const double down = SasRecWindowLossForTest(layout, theta, n_items, inputs, targets, negatives,
                                                  dropout, 99, nullptr);
      theta[e] = saved;
      const double numeric = (up - down) / (2.0 * step);
      const double error = std::abs(numeric - gradient[e]);
      worst = std::max(worst, error);
      ++checked;
      if (error > 2e-3 + 3e-2 * std::abs(numeric)) ++mismatched;
    }
    // A ReLU kink inside the step could make a coordinate disagree (none does here).
    EXPECT_LE(mismatched, checked / 200) << "dropout " << dropout << ": " << mismatched << " of "
                                         << checked << " coordinates, worst error " << worst;
  }
}

TEST(SasRec, TrainingLossDecreases) {
  data::PreparedDataset prepared = recforge::testing::PlantedCheckerboard();
  TrainingData data = TrainingData::FromPrepared(prepared, 2);
  Context ctx;
  ctx.threads = 2;
  auto model = CreateModel(FindFamily("seq").quick_spec);
  std::vector<double> losses;
  model->Fit(data, ctx, [&](const Recommender&, EpochReport& report) {
    EXPECT_TRUE(report.has_loss);
    losses.push_back(report.loss);
  });
  ASSERT_EQ(losses.size(), 20u);
  EXPECT_NEAR(losses.front(), 2 * std::log(2.0), 0.25);  // ~ untrained BCE of two logits near 0
  EXPECT_LT(losses.back(), 0.7 * losses.front()) << losses.front() << " -> " << losses.back();
}

TEST(SasRec, LearnsTheOrderOfAHistory) {
  const std::size_t n_items = 40;
  data::Interactions rows = Walks(300, n_items, 8);
  TrainingData data = FromRows(rows, 300, n_items);
  Context ctx;
  ctx.threads = 2;
  auto model = CreateModel("seq:hidden=32,blocks=1,max_len=8,epochs=30,lr=0.01,batch=32,dropout=0.1");
  model->Fit(data, ctx);
  std::size_t hits = 0, reversed_hits = 0;
  for (std::size_t start = 0; start < n_items; ++start) {
    std::vector<ItemIndex> history = {static_cast<ItemIndex>(start),
                                      static_cast<ItemIndex>((start + 1) % n_items),
                                      static_cast<ItemIndex>((start + 2) % n_items)};
    RecommendOptions options;
    options.k = 1;
    auto next = model->RecommendHistory(history, {}, options);
    ASSERT_EQ(next.items.size(), 1u);
    hits += next.items[0] == (start + 3) % n_items ? 1 : 0;
    // The same items in reverse order point the other way.
    std::reverse(history.begin(), history.end());
    auto back = model->RecommendHistory(history, {}, options);
    reversed_hits += back.items[0] == (start + 3) % n_items ? 1 : 0;
  }
  EXPECT_GE(hits, n_items * 9 / 10) << hits << " of " << n_items;
  EXPECT_LE(2 * reversed_hits, hits) << reversed_hits << " reversed vs " << hits << " in order";
}

TEST(SasRec, ScoreHistoryOfTheTrainingSequenceEqualsScoreUsers) {
  data::Interactions rows = Walks(20, 15, 6);
  TrainingData data = FromRows(rows, 20, 15);
  Context ctx;
  auto model = CreateModel("seq:hidden=8,blocks=2,heads=2,max_len=4,epochs=2");
  model->Fit(data, ctx);
  for (UserIndex user : {0u, 7u}) {
    // The user's rows in time order (they were appended newest first).
    std::vector<ItemIndex> history;
    for (std::size_t row = rows.size(); row-- > 0;) {
      if (rows.users[row] == user) history.push_back(rows.items[row]);
    }
    std::vector<float> from_user(15), from_history(15);
    model->ScoreUsers(std::span<const UserIndex>(&user, 1), from_user.data());
    ASSERT_TRUE(model->ScoreHistory(history, {}, from_history.data()));
    for (std::size_t item = 0; item < 15; ++item) {
      EXPECT_NEAR(from_user[item], from_history[item], 1e-4f) << "user " << user << " item " << item;
    }
  }
  // An empty history is the zero vector: every item scores 0.
  std::vector<float> empty(15, 1.0f);
  ASSERT_TRUE(model->ScoreHistory({}, {}, empty.data()));
  EXPECT_EQ(*std::max_element(empty.begin(), empty.end()), 0.0f);
}

TEST(SasRec, SameSeedSameThreadsSameModelAndSaveLoadKeepsIt) {
  data::PreparedDataset prepared = recforge::testing::PlantedCheckerboard();
  TrainingData data = TrainingData::FromPrepared(prepared, 2);
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 3;
  const std::string spec = "seq:hidden=8,blocks=2,heads=2,max_len=6,epochs=3,batch=8";
  auto a = CreateModel(spec);
  auto b = CreateModel(spec);
  a->Fit(data, ctx);
  b->Fit(data, ctx);
  EXPECT_EQ(UserVectors(*a), UserVectors(*b));
  ctx.seed = 4;
  auto c = CreateModel(spec);
  c->Fit(data, ctx);
  EXPECT_NE(UserVectors(*a), UserVectors(*c));

  recforge::testing::TempDir dir;
  SaveModel(*a, dir / "seq.rfm");
  auto loaded = LoadModel(dir / "seq.rfm");
  const std::vector<ItemIndex> history = {2, 5, 1};
  std::vector<float> before(data.n_items), after(data.n_items);
  ASSERT_TRUE(a->ScoreHistory(history, {}, before.data()));
  ASSERT_TRUE(loaded->ScoreHistory(history, {}, after.data()));
  EXPECT_EQ(before, after);
}

TEST(SasRec, HeadsMustDivideHidden) {
  data::PreparedDataset prepared = recforge::testing::PlantedCheckerboard();
  TrainingData data = TrainingData::FromPrepared(prepared, 1);
  auto model = CreateModel("seq:hidden=10,heads=3");
  try {
    model->Fit(data, Context{});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("hidden=10 is not divisible by heads=3"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(CreateModel("seq:windows=some"), ConfigError);
  EXPECT_EQ(ParseSpec("seq:maxlen=20,num_blocks=3,dropout_rate=0.5").Int("max_len"), 20);
}

}  // namespace
}  // namespace recforge::models
