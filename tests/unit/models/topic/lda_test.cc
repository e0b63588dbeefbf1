// The topic group (issue 6): the variational-Bayes core recovers planted topics, its
// bound rises pass by pass and its model does not depend on the thread count; `lda`
// folds in like it trains and reports through the callback; `lda-content` learns
// content topics from item metadata (cold items included), falls back to
// collaborative tokens without metadata, and refuses collaborative=never then.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "recforge/core/error.h"
#include "recforge/core/random.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"
#include "../../../../src/models/topic/lda.h"
#include "../../../../src/models/topic/lda_content.h"
#include "../../../../src/models/topic/lda_vb.h"

namespace recforge::models {
namespace {

using recforge::testing::PlantedCheckerboard;
using recforge::testing::PlantedOptions;

constexpr std::size_t kPlantedTopics = 5;
constexpr std::size_t kWordsPerTopic = 20;

// Documents drawn from kPlantedTopics topics with disjoint supports (topic t owns words
// [20t, 20t + 20), Zipf-like weights inside), each document a mixture of one or two
// topics, 80 tokens.
CsrMatrix PlantedCorpus(std::size_t n_docs, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::uint32_t> rows, cols;
  std::vector<float> values;
  for (std::size_t d = 0; d < n_docs; ++d) {
    const std::size_t first = rng.Below(kPlantedTopics);
    const std::size_t second = rng.Below(kPlantedTopics);
    const double share = rng.Uniform() < 0.5 ? 1.0 : 0.7;
    for (int token = 0; token < 80; ++token) {
      const std::size_t topic = rng.Uniform() < share ? first : second;
      // Zipf-like rank within the topic: rank r with weight 1 / (r + 1).
      double u = rng.Uniform() * 3.5977;  // H(20)
      std::size_t rank = 0;
      while (rank + 1 < kWordsPerTopic && u > 1.0 / static_cast<double>(rank + 1)) {
        u -= 1.0 / static_cast<double>(rank + 1);
        ++rank;
      }
      rows.push_back(static_cast<std::uint32_t>(d));
      cols.push_back(static_cast<std::uint32_t>(topic * kWordsPerTopic + rank));
      values.push_back(1.0f);
    }
  }
  return CsrMatrix::FromCoordinates(n_docs, kPlantedTopics * kWordsPerTopic, rows, cols, values, 1);
}

std::vector<std::uint32_t> TopWords(const topic::TopicWords& words, std::size_t topic, std::size_t n) {
  std::vector<std::uint32_t> order(words.n_words());
  for (std::uint32_t w = 0; w < order.size(); ++w) order[w] = w;
  const std::size_t k = words.topics();
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](std::uint32_t a, std::uint32_t b) {
                      return words.lambda()[a * k + topic] > words.lambda()[b * k + topic];
                    });
  order.resize(n);
  return order;
}

topic::VbOptions PlantedOptionsVb() {
  topic::VbOptions options;
  options.topics = kPlantedTopics;
  options.alpha = 0.2;
  options.eta = 0.01;
  options.passes = 40;
  return options;
}

TEST(LdaVb, RecoversPlantedTopics) {
  const CsrMatrix corpus = PlantedCorpus(300, 3);
  const topic::VbResult result = topic::FitVb(corpus, PlantedOptionsVb(), 11, 2);
  // Every learned topic's top-10 words lie in one planted topic's support, and the
  // learned topics cover every planted topic once.
  std::set<std::size_t> matched;
  for (std::size_t t = 0; t < kPlantedTopics; ++t) {
    auto top = TopWords(result.words, t, 10);
    const std::size_t planted = top[0] / kWordsPerTopic;
    for (std::uint32_t word : top) EXPECT_EQ(word / kWordsPerTopic, planted) << "topic " << t;
    matched.insert(planted);
    // The planted topic's most frequent word (rank 0) is the learned top word.
    EXPECT_EQ(top[0] % kWordsPerTopic, 0u) << "topic " << t;
  }
  EXPECT_EQ(matched.size(), kPlantedTopics);
}

TEST(LdaVb, BoundIncreasesPassByPass) {
  const CsrMatrix corpus = PlantedCorpus(200, 5);
  const topic::VbResult result = topic::FitVb(corpus, PlantedOptionsVb(), 3, 2);
  ASSERT_EQ(result.bounds.size(), 40u);
  for (std::size_t pass = 1; pass < result.bounds.size(); ++pass) {
    // Coordinate ascent on the ELBO; the E-step tolerance allows a tiny slack.
    EXPECT_GE(result.bounds[pass], result.bounds[pass - 1] - 1e-4) << "pass " << pass + 1;
  }
  EXPECT_GT(result.bounds.back(), result.bounds.front() + 0.1);
  // The per-token bound of a 100-word vocabulary is at least -log(100) once fitted.
  EXPECT_GT(result.bounds.back(), -std::log(100.0));
}

TEST(LdaVb, SameSeedSameModelForAnyThreadCount) {
  const CsrMatrix corpus = PlantedCorpus(100, 9);
  topic::VbOptions options = PlantedOptionsVb();
  options.passes = 15;
  options.restart_passes = 5;  // both E-step modes
  const topic::VbResult one = topic::FitVb(corpus, options, 21, 1);
  const topic::VbResult two = topic::FitVb(corpus, options, 21, 2);
  const topic::VbResult three = topic::FitVb(corpus, options, 21, 3);
  EXPECT_EQ(one.words.lambda(), two.words.lambda());
  EXPECT_EQ(one.gamma, two.gamma);
  EXPECT_EQ(one.words.lambda(), three.words.lambda());
  const topic::VbResult other_seed = topic::FitVb(corpus, options, 22, 2);
  EXPECT_NE(one.words.lambda(), other_seed.words.lambda());
}

// init=random (seed_topics = false): scikit-learn's start, Gamma noise alone. Still
// deterministic for any thread count and still climbing; a different start from the
// seeded one (better on long-tailed catalogs, see docs/models/topic.md).
TEST(LdaVb, UnseededStartIsDeterministicAndClimbs) {
  const CsrMatrix corpus = PlantedCorpus(200, 5);
  topic::VbOptions options = PlantedOptionsVb();
  options.passes = 20;
  options.seed_topics = false;
  const topic::VbResult one = topic::FitVb(corpus, options, 3, 1);
  const topic::VbResult two = topic::FitVb(corpus, options, 3, 2);
  EXPECT_EQ(one.words.lambda(), two.words.lambda());
  for (std::size_t pass = 1; pass < one.bounds.size(); ++pass) {
    EXPECT_GE(one.bounds[pass], one.bounds[pass - 1] - 1e-4) << "pass " << pass + 1;
  }
  options.seed_topics = true;
  EXPECT_NE(topic::FitVb(corpus, options, 3, 2).words.lambda(), one.words.lambda());
}

TEST(LdaVb, SpecialFunctions) {
  EXPECT_NEAR(topic::Digamma(1.0), -0.5772156649015329, 1e-10);
  EXPECT_NEAR(topic::Digamma(0.01), -100.56088545786867, 1e-9);
  EXPECT_NEAR(topic::Digamma(30.5), 3.401243668961661, 1e-9);
  for (double x : {1e-3, 0.05, 0.5, 1.0, 2.5, 7.0, 123.4, 1e6}) {
    EXPECT_NEAR(topic::LogGamma(x), std::lgamma(x), 1e-10 * std::max(1.0, std::fabs(std::lgamma(x)))) << x;
  }
}

TEST(LdaVb, RejectsNonPositiveCounts) {
  std::vector<std::uint32_t> rows = {0}, cols = {1};
  std::vector<float> values = {-1.0f};
  const CsrMatrix corpus = CsrMatrix::FromCoordinates(1, 2, rows, cols, values, 1);
  EXPECT_THROW(topic::FitVb(corpus, PlantedOptionsVb(), 1, 1), InvalidArgument);
}

class LdaOnPlanted : public ::testing::Test {
 protected:
  void SetUp() override {
    prepared_ = PlantedCheckerboard(options_);
    data_ = TrainingData::FromPrepared(prepared_, 2);
    ctx_.threads = 2;
    ctx_.seed = 5;
  }
  PlantedOptions options_;
  data::PreparedDataset prepared_;
  TrainingData data_;
  Context ctx_;
};

TEST_F(LdaOnPlanted, CallbackReportsARisingBoundAndFoldInMatchesTraining) {
  auto model = CreateModel("lda:topics=4,passes=25");
  std::vector<double> losses;
  model->Fit(data_, ctx_, [&](const Recommender&, EpochReport& report) {
    ASSERT_TRUE(report.has_loss);
    EXPECT_EQ(report.epochs, 25);
    EXPECT_NEAR(report.metrics.at("perplexity_bound"), std::exp(report.loss), 1e-9 * std::exp(report.loss));
    losses.push_back(report.loss);
  });
  ASSERT_EQ(losses.size(), 25u);
  EXPECT_LT(losses.back(), losses.front());
  for (std::size_t pass = 1; pass < losses.size(); ++pass) EXPECT_LE(losses[pass], losses[pass - 1] + 1e-4);

  // Fold-in of a training user's history gives (nearly) the training scores.
  const std::size_t n = data_.n_items;
  for (UserIndex user : {UserIndex{0}, UserIndex{45}, UserIndex{100}}) {
    std::vector<float> trained(n), folded(n);
    model->ScoreUsers(std::span<const UserIndex>(&user, 1), trained.data());
    auto items = data_.user_items->RowIndices(user);
    auto values = data_.user_items->RowValues(user);
    ASSERT_TRUE(model->ScoreHistory(items, values, folded.data()));
    for (std::size_t i = 0; i < n; ++i) EXPECT_NEAR(folded[i], trained[i], 2e-3) << "user " << user << " item " << i;
  }
  // p(item | user) is a distribution over items.
  std::vector<float> scores(n);
  UserIndex user = 7;
  model->ScoreUsers(std::span<const UserIndex>(&user, 1), scores.data());
  double total = 0;
  for (float s : scores) total += s;
  EXPECT_NEAR(total, 1.0, 1e-4);
  // Similar items of an item are its block's items.
  const RankedItems similar = model->SimilarItems(0, 5);
  ASSERT_EQ(similar.items.size(), 5u);
  for (ItemIndex item : similar.items) EXPECT_EQ(recforge::testing::PlantedItemBlock(options_, item), 0);
}

// The `init` parameter reaches the fit: after one pass the two starts give different
// models (on these clean blocks both reach the same fixed point a few passes later).
TEST_F(LdaOnPlanted, InitParameterSelectsTheStart) {
  auto seeded = CreateModel("lda:topics=4,passes=1,init=seeded");
  auto random = CreateModel("lda:topics=4,passes=1,init=random");
  seeded->Fit(data_, ctx_);
  random->Fit(data_, ctx_);
  std::vector<float> a(data_.n_items), b(data_.n_items);
  const UserIndex user = 3;
  seeded->ScoreUsers(std::span<const UserIndex>(&user, 1), a.data());
  random->ScoreUsers(std::span<const UserIndex>(&user, 1), b.data());
  EXPECT_NE(a, b);
  EXPECT_THROW(CreateModel("lda:init=kmeans"), ConfigError);
}

TEST_F(LdaOnPlanted, EmptyHistoryScoresThePriorMean) {
  auto model = CreateModel("lda:topics=4,passes=10");
  model->Fit(data_, ctx_);
  std::vector<float> empty(data_.n_items), empty_user(data_.n_items);
  ASSERT_TRUE(model->ScoreHistory({}, {}, empty.data()));
  UserIndex user = static_cast<UserIndex>(data_.n_users - 1);  // no training interactions
  model->ScoreUsers(std::span<const UserIndex>(&user, 1), empty_user.data());
  for (std::size_t i = 0; i < empty.size(); ++i) EXPECT_NEAR(empty[i], empty_user[i], 1e-6);
}

// The planted checkerboard plus metadata: items of block b have the category
// "Genre b" and a title with the block's word; one extra item per block has the
// metadata but no interaction (a cold item).
data::PreparedDataset PlantedWithMetadata(const PlantedOptions& options) {
  data::PreparedDataset prepared = PlantedCheckerboard(options);
  const std::size_t warm_items = prepared.items.size();
  std::vector<std::string> ids = prepared.items.ids();
  for (int block = 0; block < options.blocks; ++block) ids.push_back(fmt::format("cold{}", block));
  prepared.items = data::IdMap(ids);
  const char* words[] = {"ocean", "galaxy", "castle", "jungle", "desert", "harbor"};
  for (std::size_t item = 0; item < ids.size(); ++item) {
    const int block = item < warm_items ? recforge::testing::PlantedItemBlock(options, static_cast<std::uint32_t>(item))
                                        : static_cast<int>(item - warm_items);
    data::ItemInfo info;
    info.item_id = ids[item];
    info.title = fmt::format("The {} Story {} (199{})", words[block % 6], item, item % 10);
    info.categories = {fmt::format("Genre {}", block)};
    prepared.item_info.push_back(info);
  }
  return prepared;
}

TEST_F(LdaOnPlanted, ContentTopicsFromMetadataReachColdItems) {
  const data::PreparedDataset prepared = PlantedWithMetadata(options_);
  const TrainingData data = TrainingData::FromPrepared(prepared, 2);
  auto model = CreateModel("lda-content:topics=4,passes=30");
  model->Fit(data, ctx_);
  const auto& content = dynamic_cast<const LdaContentModel&>(*model);
  EXPECT_EQ(content.token_source(), 1);  // metadata only
  // Tokens: 4 block words + 4 genres ("story" is in every title: above max_doc_fraction;
  // item numbers and years are digits).
  EXPECT_EQ(content.vocabulary_size(), 8u);
  std::set<std::string> tops;
  for (std::size_t t = 0; t < 4; ++t) {
    auto top = content.TopTokens(t, 2);
    tops.insert(top.begin(), top.end());
  }
  EXPECT_EQ(tops.size(), 8u);  // each topic is one block's word and genre
  const std::size_t warm = data_.n_items;
  for (int block = 0; block < options_.blocks; ++block) {
    const auto cold = static_cast<ItemIndex>(warm + block);
    // The cold item's content neighbours are its block's items.
    const RankedItems similar = model->SimilarItems(cold, 5);
    ASSERT_EQ(similar.items.size(), 5u);
    for (ItemIndex item : similar.items) {
      const int item_block = item >= warm ? static_cast<int>(item - warm)
                                          : recforge::testing::PlantedItemBlock(options_, item);
      EXPECT_EQ(item_block, block);
    }
    // ... and a user of the block gets it in the top 10.
    const UserIndex user = static_cast<UserIndex>(block * options_.users_per_block + 1);
    RecommendOptions recommend;
    recommend.k = 10;
    auto list = model->Recommend(std::span<const UserIndex>(&user, 1), recommend, 1)[0];
    EXPECT_NE(std::find(list.items.begin(), list.items.end(), cold), list.items.end()) << "block " << block;
    // Fold-in of the user's history = the trained user vector.
    std::vector<float> trained(data.n_items), folded(data.n_items);
    model->ScoreUsers(std::span<const UserIndex>(&user, 1), trained.data());
    ASSERT_TRUE(model->ScoreHistory(data.user_items->RowIndices(user), data.user_items->RowValues(user),
                                    folded.data()));
    for (std::size_t i = 0; i < trained.size(); ++i) EXPECT_NEAR(folded[i], trained[i], 1e-6);
  }
}

TEST_F(LdaOnPlanted, ContentWithoutMetadataFallsBackOrFailsClearly) {
  auto fallback = CreateModel("lda-content:topics=4,passes=20");
  fallback->Fit(data_, ctx_);
  EXPECT_EQ(dynamic_cast<const LdaContentModel&>(*fallback).token_source(), 2);  // users as tokens
  auto strict = CreateModel("lda-content:collaborative=never");
  try {
    strict->Fit(data_, ctx_);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("no usable item metadata"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("collaborative=auto"), std::string::npos) << error.what();
  }
}

TEST(LdaContentTokens, TitleWords) {
  EXPECT_EQ(topic::TitleTokens("The Lord of the Rings: The Two Towers (2002)"),
            (std::vector<std::string>{"lord", "rings", "two", "towers"}));
  EXPECT_EQ(topic::TitleTokens("Amélie (2001) / 8 ½ Women"), (std::vector<std::string>{"amélie", "½", "women"}));
  EXPECT_TRUE(topic::TitleTokens("").empty());
}

}  // namespace
}  // namespace recforge::models
