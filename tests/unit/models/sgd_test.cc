// The SGD group: the deterministic block scheduler (LibMF grid), mf / nmf on a planted
// low-rank rating matrix, bpr on the planted checkerboard, determinism, fold-in and
// the user-facing errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>
#include <thread>

#include "recforge/core/error.h"
#include "recforge/core/random.h"
#include "recforge/data/synth.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

// Internal headers of the models module (the grid and the concrete families).
#include "../../../src/models/factor/block_scheduler.h"
#include "../../../src/models/factor/bpr.h"
#include "../../../src/models/factor/mf.h"
#include "../../../src/models/factor/nmf.h"

namespace recforge::models {
namespace {

// ------------------------------------------------------------------ fixtures

// Ratings r = 3 + u . v of a planted rank-3 matrix (entries of u, v uniform in
// [-0.8, 0.8]), a fraction `density` of the pairs observed, clipped to [1, 5].
TrainingData PlantedLowRank(std::size_t n_users, std::size_t n_items, double density,
                            std::uint64_t seed) {
  constexpr int kRank = 3;
  Rng rng(seed);
  std::vector<float> user_factors(n_users * kRank), item_factors(n_items * kRank);
  for (float& value : user_factors) value = static_cast<float>(rng.Uniform() * 1.6 - 0.8);
  for (float& value : item_factors) value = static_cast<float>(rng.Uniform() * 1.6 - 0.8);
  std::vector<std::uint32_t> rows, cols;
  std::vector<float> values;
  for (std::size_t user = 0; user < n_users; ++user) {
    for (std::size_t item = 0; item < n_items; ++item) {
      if (rng.Uniform() >= density) continue;
      float rating = 3.0f;
      for (int f = 0; f < kRank; ++f) {
        rating += user_factors[user * kRank + f] * item_factors[item * kRank + f];
      }
      rows.push_back(static_cast<std::uint32_t>(user));
      cols.push_back(static_cast<std::uint32_t>(item));
      values.push_back(std::clamp(rating, 1.0f, 5.0f));
    }
  }
  TrainingData data;
  data.n_users = n_users;
  data.n_items = n_items;
  data.user_items = std::make_shared<const CsrMatrix>(CsrMatrix::FromCoordinates(n_users, n_items, rows, cols, values, 1));
  data.item_users = data.user_items->Transpose();
  data.dataset_hash = "planted-low-rank";
  return data;
}

// Training data straight from the synthetic generator (no split): ~`interactions`
// rows, enough that the block scheduler really runs on several threads.
TrainingData SynthTraining(std::uint64_t interactions, std::uint32_t users, std::uint32_t items) {
  data::SynthOptions options;
  options.interactions = interactions;
  options.users = users;
  options.items = items;
  Context ctx;
  ctx.threads = 2;
  data::Dataset dataset = data::Synthesize(options, ctx);
  TrainingData data;
  data.n_users = dataset.n_users();
  data.n_items = dataset.n_items();
  const auto& rows = dataset.interactions;
  data.user_items = std::make_shared<const CsrMatrix>(CsrMatrix::FromCoordinates(data.n_users, data.n_items, rows.users, rows.items,
                                               rows.ratings, 2));
  data.item_users = data.user_items->Transpose();
  return data;
}

std::vector<double> Losses(Recommender& model, const TrainingData& data, const Context& ctx) {
  std::vector<double> losses;
  model.Fit(data, ctx, [&](const Recommender&, EpochReport& report) {
    EXPECT_TRUE(report.has_loss);
    EXPECT_EQ(report.epoch, static_cast<int>(losses.size()) + 1);
    losses.push_back(report.loss);
  });
  return losses;
}

double Correlation(const std::vector<float>& a, const std::vector<float>& b) {
  double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / a.size();
  double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / b.size();
  double cov = 0, var_a = 0, var_b = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    cov += (a[i] - mean_a) * (b[i] - mean_b);
    var_a += (a[i] - mean_a) * (a[i] - mean_a);
    var_b += (b[i] - mean_b) * (b[i] - mean_b);
  }
  return cov / std::sqrt(var_a * var_b);
}

const FactorModel& AsFactors(const Recommender& model) {
  return dynamic_cast<const FactorModel&>(model);
}

// ------------------------------------------------------------------ block grid / scheduler

TEST(BlockScheduler, EveryEpochCoversEveryBlockOnceInConflictFreeRounds) {
  for (int bins : {1, 3, 8}) {
    BlockScheduler scheduler(bins, 4, 99);
    for (int epoch = 1; epoch <= 5; ++epoch) {
      EpochPlan plan = scheduler.Plan(epoch);
      ASSERT_EQ(plan.rounds.size(), static_cast<std::size_t>(bins));
      std::vector<std::uint32_t> micro(plan.group_micro_bins);
      std::sort(micro.begin(), micro.end());
      for (std::size_t m = 0; m < micro.size(); ++m) {
        ASSERT_EQ(micro[m], m) << "micro-bins not a permutation";
      }
      std::set<std::uint32_t> ids;
      for (const auto& round : plan.rounds) {
        ASSERT_EQ(round.size(), static_cast<std::size_t>(bins));
        std::set<std::uint32_t> row_bins, col_groups;
        for (const GridBlock& block : round) {
          EXPECT_TRUE(row_bins.insert(block.row_bin).second) << "row bin twice in a round";
          EXPECT_TRUE(col_groups.insert(block.col_group).second) << "column group twice in a round";
          EXPECT_EQ(block.id, block.row_bin * bins + block.col_group);
          EXPECT_TRUE(ids.insert(block.id).second) << "block twice in an epoch";
        }
      }
      EXPECT_EQ(ids.size(), static_cast<std::size_t>(bins * bins));
    }
    // The plan is a pure function of (seed, epoch).
    EXPECT_EQ(scheduler.Plan(3).group_micro_bins,
              BlockScheduler(bins, 4, 99).Plan(3).group_micro_bins);
  }
}

TEST(BlockScheduler, RunNeverOverlapsBlocksSharingARowBinOrColumnGroup) {
  constexpr int kBins = 6;
  BlockScheduler scheduler(kBins, 2, 5);
  std::atomic<bool> row_busy[kBins], col_busy[kBins];
  for (int b = 0; b < kBins; ++b) row_busy[b] = col_busy[b] = false;
  std::atomic<int> conflicts{0}, max_concurrent{0}, running{0};
  std::vector<std::atomic<int>> visits(kBins * kBins);
  for (int epoch = 1; epoch <= 3; ++epoch) {
    for (auto& count : visits) count = 0;
    BlockScheduler::Run(scheduler.Plan(epoch), 4, [&](const GridBlock& block) {
      int now = ++running;
      int seen = max_concurrent.load();
      while (now > seen && !max_concurrent.compare_exchange_weak(seen, now)) {
      }
      if (row_busy[block.row_bin].exchange(true)) ++conflicts;
      if (col_busy[block.col_group].exchange(true)) ++conflicts;
      std::this_thread::sleep_for(std::chrono::microseconds(300));  // widen the overlap window
      row_busy[block.row_bin] = false;
      col_busy[block.col_group] = false;
      --running;
      ++visits[block.id];
    });
    for (int id = 0; id < kBins * kBins; ++id) EXPECT_EQ(visits[id].load(), 1) << "block " << id;
  }
  EXPECT_EQ(conflicts.load(), 0);
  EXPECT_GT(max_concurrent.load(), 1) << "the test did not run blocks concurrently";
}

TEST(BlockGrid, PartitionsEveryInteractionByRowBinAndMicroBin) {
  TrainingData data = PlantedLowRank(300, 120, 0.2, 3);
  BlockGrid grid = BlockGrid::Build(*data.user_items, 4, 3, 11, /*keep_values=*/true, 2);
  ASSERT_EQ(grid.col_micro_bins(), 12);
  std::size_t total = 0;
  std::vector<std::size_t> row_bin_sizes(4, 0);
  for (int row_bin = 0; row_bin < 4; ++row_bin) {
    for (int micro = 0; micro < grid.col_micro_bins(); ++micro) {
      auto entries = grid.MicroBlock(row_bin, micro);
      auto values = grid.MicroValues(row_bin, micro);
      ASSERT_EQ(values.size(), entries.size());
      for (std::size_t e = 0; e < entries.size(); ++e) {
        EXPECT_EQ(grid.RowBin(entries[e].user), static_cast<std::uint32_t>(row_bin));
        EXPECT_EQ(grid.ColMicroBin(entries[e].item), static_cast<std::uint32_t>(micro));
        ASSERT_TRUE(data.user_items->Contains(entries[e].user, entries[e].item));
        if (e > 0) {
          EXPECT_LE(entries[e - 1].user, entries[e].user) << "micro-block not grouped by user";
        }
      }
      total += entries.size();
      row_bin_sizes[row_bin] += entries.size();
    }
  }
  EXPECT_EQ(total, data.user_items->nnz());
  // Snake dealing keeps the row bins within a few percent of each other.
  auto [low, high] = std::minmax_element(row_bin_sizes.begin(), row_bin_sizes.end());
  EXPECT_LT(static_cast<double>(*high - *low), 0.05 * static_cast<double>(total));
  // The micro-bins partition the items, each list ascending.
  std::vector<int> owner(data.n_items, -1);
  for (int micro = 0; micro < grid.col_micro_bins(); ++micro) {
    auto items = grid.MicroBinItems(micro);
    EXPECT_TRUE(std::is_sorted(items.begin(), items.end()));
    for (ItemIndex item : items) {
      EXPECT_EQ(owner[item], -1);
      owner[item] = micro;
    }
  }
  EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0);
}

TEST(BlockGrid, SgdThreadsKeepsSmallDataSerial) {
  EXPECT_EQ(SgdThreads(2, 80'000, 8), 1);
  EXPECT_EQ(SgdThreads(2, 20'000'000, 8), 2);
  EXPECT_EQ(AutoBins(2, 943, 1682, 4), 8);
  EXPECT_EQ(AutoBins(16, 1'000'000, 1'000'000, 4), 32);
  EXPECT_EQ(AutoBins(2, 121, 48, 4), 1);  // tiny data: serial SGD
}

// ------------------------------------------------------------------ mf

TEST(Mf, TrainingRmseDecreasesMonotonicallyOnPlantedLowRankMatrix) {
  TrainingData data = PlantedLowRank(400, 150, 0.3, 1);
  Context ctx;
  ctx.threads = 2;
  auto model = CreateModel(
      "mf:factors=6,epochs=40,lr=0.02,reg=0.005,bias_reg=0.001,lr_decay=0.97,init_std=0.1");
  auto losses = Losses(*model, data, ctx);
  ASSERT_EQ(losses.size(), 40u);
  for (std::size_t e = 1; e < losses.size(); ++e) {
    EXPECT_LE(losses[e], losses[e - 1] + 1e-6) << "epoch " << e + 1;
  }
  EXPECT_LT(losses.back(), 0.08) << "first " << losses.front();
  EXPECT_TRUE(model->PredictsRatings());
  // The metric the loss stands for.
  RatingErrors errors = TrainingErrors(*model, *data.user_items, 2);
  EXPECT_NEAR(errors.rmse, losses.back(), 1e-9);
}

TEST(Mf, PredictionsAreClippedAndUnknownUsersGetBiases) {
  TrainingData data = PlantedLowRank(100, 60, 0.4, 2);
  Context ctx;
  auto model = CreateModel("mf:factors=4,epochs=10");
  model->Fit(data, ctx);
  const auto& factors = AsFactors(*model);
  std::vector<UserIndex> users = {0, 1, 5000};
  std::vector<ItemIndex> items = {0, 1, 2};
  std::vector<float> predicted(3);
  model->PredictPairs(users, items, predicted.data());
  for (float value : predicted) {
    EXPECT_GE(value, 1.0f);
    EXPECT_LE(value, 5.0f);
  }
  EXPECT_FLOAT_EQ(predicted[2],
                  std::clamp(factors.global_bias() + factors.item_bias()[2], 1.0f, 5.0f));
  std::vector<float> scores(data.n_items);
  UserIndex unknown = 7000;
  model->ScoreUsers(std::span<const UserIndex>(&unknown, 1), scores.data());
  for (std::size_t item = 0; item < data.n_items; ++item) {
    EXPECT_FLOAT_EQ(scores[item], factors.global_bias() + factors.item_bias()[item]);
  }
}

TEST(Mf, SameSeedSameModelForAnyThreadCount) {
  TrainingData data = SynthTraining(1'000'000, 6000, 3000);  // ~125k updates per round: parallel
  ASSERT_GT(SgdThreads(4, data.user_items->nnz(), 8), 1);
  std::vector<float> reference;
  for (int threads : {2, 2, 1, 3}) {
    Context ctx;
    ctx.threads = threads;
    ctx.seed = 17;
    auto model = CreateModel("mf:factors=8,epochs=2");
    model->Fit(data, ctx);
    std::vector<float> factors(AsFactors(*model).item_factors().begin(),
                               AsFactors(*model).item_factors().end());
    if (reference.empty()) {
      reference = factors;
    } else {
      ASSERT_EQ(factors, reference) << "threads=" << threads;
    }
  }
}

TEST(Mf, FoldInMatchesTheTrainedUser) {
  TrainingData data = PlantedLowRank(300, 100, 0.3, 4);
  Context ctx;
  // Trained to convergence, so the SGD user vector sits at the ridge optimum fold-in solves.
  auto model = CreateModel("mf:factors=4,epochs=200,lr=0.02,reg=0.02,lr_decay=0.99,init_std=0.1");
  model->Fit(data, ctx);
  for (UserIndex user : {0u, 7u, 42u}) {
    std::vector<float> trained(data.n_items), folded(data.n_items);
    model->ScoreUsers(std::span<const UserIndex>(&user, 1), trained.data());
    auto items = data.user_items->RowIndices(user);
    auto values = data.user_items->RowValues(user);
    ASSERT_TRUE(model->ScoreHistory(items, values, folded.data()));
    EXPECT_GT(Correlation(trained, folded), 0.99) << "user " << user;
  }
}

TEST(Mf, DivergenceIsAClearError) {
  TrainingData data = PlantedLowRank(50, 40, 0.5, 5);
  Context ctx;
  auto model = CreateModel("mf:factors=4,epochs=30,lr=5,lr_decay=1");
  try {
    model->Fit(data, ctx);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("diverged"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("lr"), std::string::npos) << error.what();
  }
}

// ------------------------------------------------------------------ nmf

TEST(Nmf, FactorsStayNonNegativeAndTrainingRmseDecreases) {
  TrainingData data = PlantedLowRank(300, 100, 0.3, 6);
  Context ctx;
  ctx.threads = 2;
  auto model = CreateModel("nmf:factors=6,epochs=40,reg_user=0.01,reg_item=0.01");
  auto losses = Losses(*model, data, ctx);
  for (std::size_t e = 1; e < losses.size(); ++e) {
    EXPECT_LE(losses[e], losses[e - 1] + 1e-6) << "epoch " << e + 1;
  }
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  const auto& factors = AsFactors(*model);
  EXPECT_GE(*std::min_element(factors.user_factors().begin(), factors.user_factors().end()), 0.0f);
  EXPECT_GE(*std::min_element(factors.item_factors().begin(), factors.item_factors().end()), 0.0f);
  // Fold-in is non-negative too, and ranks like the trained user.
  UserIndex user = 3;
  std::vector<float> trained(data.n_items), folded(data.n_items);
  model->ScoreUsers(std::span<const UserIndex>(&user, 1), trained.data());
  ASSERT_TRUE(model->ScoreHistory(data.user_items->RowIndices(user), data.user_items->RowValues(user),
                                  folded.data()));
  EXPECT_GT(Correlation(trained, folded), 0.99);
  EXPECT_GE(*std::min_element(folded.begin(), folded.end()), 0.0f);
}

TEST(Nmf, NegativeRatingsAreRejected) {
  TrainingData data;
  data.n_users = 2;
  data.n_items = 2;
  std::vector<std::uint32_t> rows = {0, 1}, cols = {0, 1};
  std::vector<float> values = {1.0f, -2.0f};
  data.user_items = std::make_shared<const CsrMatrix>(CsrMatrix::FromCoordinates(2, 2, rows, cols, values, 1));
  data.item_users = data.user_items->Transpose();
  auto model = CreateModel("nmf");
  try {
    model->Fit(data, Context());
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("non-negative"), std::string::npos) << error.what();
  }
}

// ------------------------------------------------------------------ bpr

class BprPlanted : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::PlantedOptions options;
    options.users_per_block = 60;
    options.items_per_block = 25;
    prepared_ = testing::PlantedCheckerboard(options);
    data_ = TrainingData::FromPrepared(prepared_, 2);
    ctx_.threads = 2;
    ctx_.seed = 3;
  }
  data::PreparedDataset prepared_;
  TrainingData data_;
  Context ctx_;
};

TEST_F(BprPlanted, LossDecreases) {
  auto model = CreateModel("bpr:factors=16,epochs=30,lr=0.05");
  auto losses = Losses(*model, data_, ctx_);
  ASSERT_EQ(losses.size(), 30u);
  EXPECT_NEAR(losses.front(), std::log(2.0), 0.1) << "starts at chance";
  // SGD noise allows small bumps; averages over 5 epochs must fall.
  for (std::size_t e = 5; e + 5 <= losses.size(); e += 5) {
    double before = std::accumulate(losses.begin() + e - 5, losses.begin() + e, 0.0);
    double after = std::accumulate(losses.begin() + e, losses.begin() + e + 5, 0.0);
    EXPECT_LT(after, before) << "epochs " << e + 1 << ".." << e + 5;
  }
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST_F(BprPlanted, PopularityNegativesAndHogwildAlsoLearn) {
  for (const char* spec :
       {"bpr:factors=16,epochs=30,negatives=popularity,pop_exponent=1",
        "bpr:factors=16,epochs=30,mode=hogwild", "bpr:factors=16,epochs=30,item_bias=false"}) {
    auto model = CreateModel(spec);
    auto losses = Losses(*model, data_, ctx_);
    EXPECT_LT(losses.back(), 0.6 * losses.front()) << spec;
  }
}

TEST_F(BprPlanted, SimilarItemsComeFromTheSameBlock) {
  auto model = CreateModel("bpr:factors=16,epochs=40");
  model->Fit(data_, ctx_);
  testing::PlantedOptions options;
  options.users_per_block = 60;
  options.items_per_block = 25;
  for (ItemIndex item : {0u, 30u, 77u}) {
    RankedItems similar = model->SimilarItems(item, 5);
    ASSERT_EQ(similar.items.size(), 5u);
    for (ItemIndex other : similar.items) {
      EXPECT_NE(other, item);
      EXPECT_EQ(testing::PlantedItemBlock(options, other),
                testing::PlantedItemBlock(options, item));
    }
  }
}

TEST_F(BprPlanted, FoldInMatchesTheTrainedUser) {
  auto model = CreateModel("bpr:factors=16,epochs=60");
  model->Fit(data_, ctx_);
  for (UserIndex user : {0u, 70u, 200u}) {
    std::vector<float> trained(data_.n_items), folded(data_.n_items);
    model->ScoreUsers(std::span<const UserIndex>(&user, 1), trained.data());
    ASSERT_TRUE(model->ScoreHistory(data_.user_items->RowIndices(user), {}, folded.data()));
    EXPECT_GT(Correlation(trained, folded), 0.99) << "user " << user;
  }
  // An empty history scores the item biases alone (the unknown-user behaviour).
  std::vector<float> empty(data_.n_items);
  ASSERT_TRUE(model->ScoreHistory({}, {}, empty.data()));
  const auto& factors = AsFactors(*model);
  for (std::size_t item = 0; item < data_.n_items; ++item) {
    EXPECT_FLOAT_EQ(empty[item], factors.item_bias()[item]);
  }
}

TEST(Bpr, BlockModeIsDeterministicForAnyThreadCount) {
  TrainingData data = SynthTraining(1'000'000, 6000, 3000);
  std::vector<float> reference;
  for (int threads : {2, 2, 1, 3}) {
    Context ctx;
    ctx.threads = threads;
    ctx.seed = 23;
    auto model = CreateModel("bpr:factors=8,epochs=2");
    std::vector<double> losses = Losses(*model, data, ctx);
    std::vector<float> factors(AsFactors(*model).user_factors().begin(),
                               AsFactors(*model).user_factors().end());
    if (reference.empty()) {
      reference = factors;
    } else {
      ASSERT_EQ(factors, reference) << "threads=" << threads;
    }
  }
}

TEST(Bpr, UnknownSpecValuesListTheChoices) {
  try {
    CreateModel("bpr:mode=locks");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("block, hogwild"), std::string::npos) << error.what();
  }
  EXPECT_THROW(CreateModel("bpr:negatives=hard"), ConfigError);
  EXPECT_THROW(CreateModel("mf:lr_decay=1.5"), ConfigError);
  EXPECT_EQ(ParseSpec("bpr:k=8,iterations=3").Int("factors"), 8);  // aliases
}

}  // namespace
}  // namespace recforge::models
