// item2vec (src/models/embedding/item2vec.h): planted sessions put co-occurring items
// nearest to each other; session scores follow the most recent items; determinism of
// the default parallel mode; min_count, scoring modes, save / load, parameter errors;
// the fused skip-gram kernel against a plain loop.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "embedding/item2vec.h"
#include "kernels.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

// kernels::SkipGramStep against the update written out one operation at a time (double
// sums; exact sigmoid, so the table's resolution sets the tolerance). 32 / 64 / 128 take
// the unrolled paths, 12 and 72 the generic loop. Target 3 repeats target 1, and the
// rows are large enough that f leaves [-6, 6] for some targets (the clamped branches).
class SkipGramStepTest : public ::testing::TestWithParam<int> {};

TEST_P(SkipGramStepTest, MatchesThePlainUpdate) {
  const std::size_t k = static_cast<std::size_t>(GetParam());
  constexpr int kTable = 1000;
  constexpr float kMaxExp = 6.0f;
  std::vector<float> sigmoid(kTable + 1), softplus(kTable + 1);
  for (int i = 0; i <= kTable; ++i) {
    const double x = (static_cast<double>(i) / kTable * 2.0 - 1.0) * kMaxExp;
    sigmoid[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
    softplus[i] = static_cast<float>(std::log1p(std::exp(x)));
  }
  const kernels::SigmoidTable table{sigmoid.data(), softplus.data(), kTable, kMaxExp};
  Rng rng(11);
  const std::size_t rows = 7;
  std::vector<float> in(k), output(rows * k);
  const float spread = 6.0f / std::sqrt(static_cast<float>(k));
  for (float& x : in) x = (rng.UniformFloat() - 0.5f) * spread;
  for (float& x : output) x = (rng.UniformFloat() - 0.5f) * spread;
  for (std::size_t x = 0; x < k; ++x) output[6 * k + x] = 4.0f * in[x];  // f far above 6
  const std::vector<std::uint32_t> targets = {2, 0, 5, 0, 6, 3};
  const float lr = 0.05f;

  std::vector<double> want_in(in.begin(), in.end()), want_out(output.begin(), output.end());
  std::vector<double> e(k, 0.0);
  double want_loss = 0;
  for (std::size_t t = 0; t < targets.size(); ++t) {
    double* out = want_out.data() + targets[t] * k;
    double f = 0;
    for (std::size_t x = 0; x < k; ++x) f += want_in[x] * out[x];
    const double label = t == 0 ? 1.0 : 0.0;
    const double s = f > kMaxExp ? 1.0 : f < -kMaxExp ? 0.0 : 1.0 / (1.0 + std::exp(-f));
    const double g = (label - s) * lr;
    const double signed_f = t == 0 ? -f : f;
    if (signed_f > kMaxExp) {
      want_loss += signed_f;
    } else if (signed_f >= -kMaxExp) {
      want_loss += std::log1p(std::exp(signed_f));
    }
    for (std::size_t x = 0; x < k; ++x) {
      e[x] += g * out[x];
      out[x] += g * want_in[x];
    }
  }
  for (std::size_t x = 0; x < k; ++x) want_in[x] += e[x];

  const float loss = kernels::SkipGramStep(in.data(), output.data(), k, targets.data(),
                                           static_cast<int>(targets.size()), lr, table);
  // The table steps by 0.012 in f and sigmoid' <= 1/4, so each g is off by at most
  // 0.003 lr = 1.5e-4; six targets times rows of |x| < 1 bound the drift well below 1e-3.
  const double tolerance = 1e-3;
  for (std::size_t x = 0; x < k; ++x) ASSERT_NEAR(in[x], want_in[x], tolerance) << "in[" << x << "]";
  for (std::size_t x = 0; x < output.size(); ++x) {
    ASSERT_NEAR(output[x], want_out[x], tolerance) << "output[" << x << "]";
  }
  EXPECT_NEAR(loss, want_loss, 0.02 * static_cast<double>(targets.size()));
  // Row 1 and 4 are not targets: untouched, bit for bit.
  for (std::size_t x = 0; x < k; ++x) {
    EXPECT_EQ(output[1 * k + x], want_out[1 * k + x]);
    EXPECT_EQ(output[4 * k + x], want_out[4 * k + x]);
  }
}

INSTANTIATE_TEST_SUITE_P(Factors, SkipGramStepTest, ::testing::Values(12, 32, 64, 72, 128));

// Planted sessions: items fall into groups of `group_size`; every user runs `sessions`
// sessions, each the whole of one random group in random order, one item per time step
// (sessions back to back, so windows sometimes cross a session boundary: noise).
// Item i is in group i / group_size. `rare` extra items appear once each (user 0).
struct PlantedSessions {
  int groups = 12;
  int group_size = 5;
  int users = 150;
  int sessions = 4;
  int rare = 0;
  std::uint64_t seed = 3;
};

data::PreparedDataset MakeSessions(const PlantedSessions& options) {
  data::PreparedDataset prepared;
  const int n_items = options.groups * options.group_size + options.rare;
  std::vector<std::string> users, items;
  for (int u = 0; u < options.users; ++u) users.push_back(fmt::format("u{}", u));
  for (int i = 0; i < n_items; ++i) items.push_back(fmt::format("i{}", i));
  prepared.users = data::IdMap(users);
  prepared.items = data::IdMap(items);
  Rng rng(options.seed);
  for (int u = 0; u < options.users; ++u) {
    Timestamp time = 1000;
    std::vector<int> used;
    for (int s = 0; s < options.sessions; ++s) {
      int group;
      do {
        group = static_cast<int>(rng.Below(options.groups));
      } while (std::find(used.begin(), used.end(), group) != used.end());
      used.push_back(group);
      std::vector<int> order(options.group_size);
      std::iota(order.begin(), order.end(), group * options.group_size);
      std::shuffle(order.begin(), order.end(), rng);
      for (int item : order) prepared.train.Append(u, static_cast<ItemIndex>(item), 1.0f, time++);
    }
  }
  for (int r = 0; r < options.rare; ++r) {
    prepared.train.Append(0, static_cast<ItemIndex>(options.groups * options.group_size + r), 1.0f, 1);
  }
  prepared.meta = {{"content_hash", "sessions"}};
  return prepared;
}

Context Threads(int threads) {
  Context ctx;
  ctx.threads = threads;
  ctx.seed = 11;
  return ctx;
}

std::unique_ptr<Recommender> Fit(const std::string& spec, const data::PreparedDataset& prepared,
                                 int threads, std::vector<double>* losses = nullptr) {
  auto model = CreateModel(spec);
  TrainingData data = TrainingData::FromPrepared(prepared, 2);
  model->Fit(data, Threads(threads), [&](const Recommender&, EpochReport& report) {
    if (losses != nullptr) losses->push_back(report.loss);
    EXPECT_GT(report.metrics.at("words_per_second"), 0.0);
  });
  return model;
}

constexpr const char* kSpec = "item2vec:factors=16,window=3,epochs=15,sample=0,min_count=1";

// The fraction of each item's top-(group_size - 1) similar items that are group mates.
double NeighbourPrecision(const Recommender& model, const PlantedSessions& options) {
  const std::size_t mates = static_cast<std::size_t>(options.group_size - 1);
  std::size_t hits = 0, total = 0;
  for (int item = 0; item < options.groups * options.group_size; ++item) {
    RankedItems similar = model.SimilarItems(static_cast<ItemIndex>(item), mates);
    EXPECT_EQ(similar.items.size(), mates);
    for (ItemIndex other : similar.items) {
      hits += static_cast<int>(other) / options.group_size == item / options.group_size ? 1 : 0;
      ++total;
    }
  }
  return static_cast<double>(hits) / static_cast<double>(total);
}

TEST(Item2Vec, CoOccurringItemsAreNearestNeighbours) {
  PlantedSessions options;
  data::PreparedDataset prepared = MakeSessions(options);
  std::vector<double> losses;
  auto model = Fit(kSpec, prepared, 2, &losses);
  EXPECT_GE(NeighbourPrecision(*model, options), 0.95);
  ASSERT_EQ(losses.size(), 15u);
  EXPECT_LT(losses.back(), 0.8 * losses.front()) << "the SGNS loss should fall";
  // Cosine: scores are in [-1, 1], best first, the item itself excluded.
  RankedItems similar = model->SimilarItems(7, 3);
  ASSERT_EQ(similar.items.size(), 3u);
  EXPECT_EQ(std::count(similar.items.begin(), similar.items.end(), 7u), 0);
  EXPECT_LE(similar.scores[0], 1.0001f);
  EXPECT_GE(similar.scores[0], similar.scores[2]);
  EXPECT_TRUE(model->SimilarItems(100000, 3).items.empty());
}

TEST(Item2Vec, HogwildAndOtherScoringModesAlsoFindTheGroups) {
  PlantedSessions options;
  data::PreparedDataset prepared = MakeSessions(options);
  EXPECT_GE(NeighbourPrecision(*Fit(std::string(kSpec) + ",hogwild=true", prepared, 2), options), 0.95);
  EXPECT_GE(NeighbourPrecision(*Fit(std::string(kSpec) + ",scoring=context", prepared, 2), options), 0.95);
  // One round per epoch (sync_words beyond a shard) still trains: the merge adds both
  // threads' steps.
  EXPECT_GE(NeighbourPrecision(*Fit(std::string(kSpec) + ",sync_words=100000", prepared, 2), options), 0.9);
}

TEST(Item2Vec, SessionScoresFollowTheMostRecentItems) {
  PlantedSessions options;
  data::PreparedDataset prepared = MakeSessions(options);
  auto model = Fit(std::string(kSpec) + ",history=2", prepared, 1);
  auto group_of = [&](ItemIndex item) { return static_cast<int>(item) / options.group_size; };
  // Oldest first: two items of group 0, then two of group 3: the last two decide.
  std::vector<ItemIndex> history = {0, 1, 15, 16};
  RecommendOptions recommend;
  recommend.k = 3;
  RankedItems ranked = model->RecommendHistory(history, {}, recommend);
  ASSERT_EQ(ranked.items.size(), 3u);
  for (ItemIndex item : ranked.items) EXPECT_EQ(group_of(item), 3) << item;
  // The same history in the other order recommends group 0.
  std::vector<ItemIndex> reversed = {15, 16, 0, 1};
  ranked = model->RecommendHistory(reversed, {}, recommend);
  for (ItemIndex item : ranked.items) EXPECT_EQ(group_of(item), 0) << item;
  // No usable item: every score is 0.
  std::vector<float> scores(model->n_items(), 1.0f);
  std::vector<ItemIndex> unknown = {100000};
  ASSERT_TRUE(model->ScoreHistory(unknown, {}, scores.data()));
  EXPECT_TRUE(std::all_of(scores.begin(), scores.end(), [](float s) { return s == 0.0f; }));
  // A trained user scores like its own last two items as a session.
  const UserIndex user = 5;
  std::vector<ItemIndex> sequence;
  for (std::size_t row = 0; row < prepared.train.size(); ++row) {
    if (prepared.train.users[row] == user) sequence.push_back(prepared.train.items[row]);
  }
  std::vector<float> from_user(model->n_items()), from_history(model->n_items());
  model->ScoreUsers(std::span<const UserIndex>(&user, 1), from_user.data());
  ASSERT_TRUE(model->ScoreHistory(sequence, {}, from_history.data()));
  for (std::size_t item = 0; item < from_user.size(); ++item) {
    EXPECT_NEAR(from_user[item], from_history[item], 1e-5f) << item;
  }
}

TEST(Item2Vec, RareItemsGetNoVectorAndScoreZero) {
  PlantedSessions options;
  options.rare = 3;
  data::PreparedDataset prepared = MakeSessions(options);
  auto model = Fit("item2vec:factors=8,epochs=3,min_count=2", prepared, 2);
  auto* item2vec = dynamic_cast<const Item2VecModel*>(model.get());
  ASSERT_NE(item2vec, nullptr);
  const ItemIndex rare = static_cast<ItemIndex>(options.groups * options.group_size);
  EXPECT_EQ(item2vec->item_counts()[rare], 1u);
  EXPECT_FALSE(item2vec->HasVector(rare));
  EXPECT_TRUE(item2vec->HasVector(0));
  std::vector<float> scores(model->n_items());
  const UserIndex user = 0;
  model->ScoreUsers(std::span<const UserIndex>(&user, 1), scores.data());
  EXPECT_EQ(scores[rare], 0.0f);
  RankedItems similar = model->SimilarItems(rare, 5);
  for (float score : similar.scores) EXPECT_EQ(score, 0.0f);
}

TEST(Item2Vec, DeterministicForSeedAndThreadsAndSequentialWithOneThread) {
  PlantedSessions options;
  data::PreparedDataset prepared = MakeSessions(options);
  const std::string spec = "item2vec:factors=8,window=3,epochs=4,sync_words=200";
  auto vectors = [&](const std::string& s, int threads) {
    auto model = Fit(s, prepared, threads);
    auto* factor = dynamic_cast<const FactorModel*>(model.get());
    return std::vector<float>(factor->item_factors().begin(), factor->item_factors().end());
  };
  EXPECT_EQ(vectors(spec, 2), vectors(spec, 2));
  // One thread: no copies and no merge, so Hogwild with one thread is the same run.
  EXPECT_EQ(vectors(spec, 1), vectors(spec + ",hogwild=true", 1));
  EXPECT_NE(vectors(spec, 1), vectors(spec, 2));  // the shards depend on the thread count
}

TEST(Item2Vec, ContextScoringRoundTripsThroughAModelFile) {
  PlantedSessions options;
  data::PreparedDataset prepared = MakeSessions(options);
  auto model = Fit(std::string(kSpec) + ",scoring=context,history=3,recency=0.5", prepared, 2);
  recforge::testing::TempDir dir;
  SaveModel(*model, dir / "model.bin");
  auto loaded = LoadModel(dir / "model.bin");
  for (ItemIndex item : {0u, 17u, 42u}) {
    RankedItems a = model->SimilarItems(item, 5), b = loaded->SimilarItems(item, 5);
    EXPECT_EQ(a.items, b.items);
    EXPECT_EQ(a.scores, b.scores);
  }
  std::vector<ItemIndex> history = {3, 20, 21};
  RecommendOptions recommend;
  EXPECT_EQ(model->RecommendHistory(history, {}, recommend).items,
            loaded->RecommendHistory(history, {}, recommend).items);
}

TEST(Item2Vec, InvalidParametersNameTheKey) {
  try {
    ParseSpec("item2vec:negatives=0");
    FAIL() << "negatives=0 accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("negatives"), std::string::npos) << error.what();
  }
  EXPECT_THROW(ParseSpec("item2vec:scoring=euclid"), ConfigError);
  EXPECT_THROW(ParseSpec("item2vec:recency=2"), ConfigError);
  // Aliases are accepted on input, main names in the canonical spec.
  EXPECT_NE(ParseSpec("item2vec:vector_size=32,alpha=0.05,iter=3").CanonicalSpec().find("factors=32"),
            std::string::npos);
}

}  // namespace
}  // namespace recforge::models
