// The neighbourhood families (itemknn, userknn, assoc): similarities against an
// independent brute-force reference (exact equality, every weighting), shrinkage, top-K
// truncation, association-rule measures on a hand-computed basket case, fold-in equal
// to ScoreUsers, sensible SimilarItems, empty users, determinism and state checks.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "recforge/core/random.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

// The family classes are private to src/models; their accessors (neighbour lists,
// rules) are what these tests pin down.
#include "../../../src/models/neighbors/assoc.h"
#include "../../../src/models/neighbors/item_knn.h"
#include "../../../src/models/neighbors/user_knn.h"

namespace recforge::models {
namespace {

using Triplet = std::tuple<std::uint32_t, std::uint32_t, float>;

CsrMatrix MakeCsr(std::size_t n_rows, std::size_t n_cols, const std::vector<Triplet>& triplets) {
  std::vector<std::uint32_t> rows, cols;
  std::vector<float> values;
  for (const auto& [row, col, value] : triplets) {
    rows.push_back(row);
    cols.push_back(col);
    values.push_back(value);
  }
  return CsrMatrix::FromCoordinates(n_rows, n_cols, rows, cols, values, 1);
}

TrainingData MakeTraining(CsrMatrix user_items) {
  TrainingData data;
  data.n_users = user_items.n_rows;
  data.n_items = user_items.n_cols;
  data.item_users = user_items.Transpose();
  data.user_items = std::make_shared<const CsrMatrix>(std::move(user_items));
  data.dataset_hash = "neighbors-test";
  return data;
}

// Random ratings in {0.5, 1, ..., 5}, with a few zero and negative values (dropped when
// not binary) and some empty rows and columns.
CsrMatrix RandomRatings(std::size_t n_users, std::size_t n_items, double density,
                        std::uint64_t seed) {
  Rng rng(seed);
  std::vector<Triplet> triplets;
  for (std::uint32_t user = 0; user + 1 < n_users; ++user) {    // the last user stays empty
    for (std::uint32_t item = 0; item + 1 < n_items; ++item) {  // so does the last item
      if (rng.Uniform() >= density) continue;
      float value = 0.5f * static_cast<float>(1 + rng.Below(10));
      const double roll = rng.Uniform();
      if (roll < 0.03) value = 0.0f;
      if (roll > 0.98) value = -1.0f;
      triplets.emplace_back(user, item, value);
    }
  }
  return MakeCsr(n_users, n_items, triplets);
}

struct RefOptions {
  std::string kind = "cosine";
  bool binary = true;
  double shrink = 0;
  double k1 = 1.2;
  double b = 0.75;
};

using NeighborList = std::vector<std::pair<std::uint32_t, float>>;

// Brute force, written from the documented formulas (similarity.h), pair by pair over
// the sorted intersection of the two rows.
std::vector<NeighborList> BruteForce(const CsrMatrix& m, const RefOptions& o, std::size_t k) {
  const std::size_t n = m.n_rows;
  std::vector<std::vector<std::pair<std::uint32_t, double>>> entries(n);
  std::vector<double> length(n, 0.0);
  std::vector<double> df(m.n_cols, 0.0);
  std::size_t non_empty = 0;
  for (std::size_t r = 0; r < n; ++r) {
    for (std::uint64_t p = m.indptr[r]; p < m.indptr[r + 1]; ++p) {
      const float v = m.values[p];
      if (!o.binary && !(v > 0)) continue;
      const double value = o.binary ? 1.0 : static_cast<double>(v);
      entries[r].emplace_back(m.indices[p], value);
      length[r] += value;
      df[m.indices[p]] += 1;
    }
    if (!entries[r].empty()) ++non_empty;
  }
  double total_length = 0;
  for (double l : length) total_length += l;
  const double average = total_length / static_cast<double>(non_empty);
  std::vector<std::vector<std::pair<std::uint32_t, float>>> weights(n);
  std::vector<float> stat(n);
  for (std::size_t r = 0; r < n; ++r) {
    double squares = 0;
    for (const auto& [f, v] : entries[r]) {
      const double idf = std::log(static_cast<double>(non_empty)) - std::log1p(df[f]);
      float w = 0;
      if (o.kind == "cosine" || o.kind == "jaccard") {
        w = static_cast<float>(v);
      } else if (o.kind == "tfidf") {
        w = static_cast<float>(std::sqrt(v) * idf);
      } else {
        const double norm = (1.0 - o.b) + o.b * length[r] / average;
        w = static_cast<float>(v * (o.k1 + 1.0) / (o.k1 * norm + v) * idf);
      }
      if (!(w > 0)) continue;
      weights[r].emplace_back(f, w);
      squares += static_cast<double>(w) * static_cast<double>(w);
    }
    stat[r] = static_cast<float>(o.kind == "jaccard" ? squares : std::sqrt(squares));
  }
  std::vector<NeighborList> result(n);
  for (std::size_t r = 0; r < n; ++r) {
    std::vector<std::pair<float, std::uint32_t>> scored;
    for (std::size_t s = 0; s < n; ++s) {
      if (s == r) continue;
      double dot = 0;
      bool shared = false;
      auto a = weights[r].begin(), b = weights[s].begin();
      while (a != weights[r].end() && b != weights[s].end()) {
        if (a->first < b->first) {
          ++a;
        } else if (b->first < a->first) {
          ++b;
        } else {
          dot += static_cast<double>(a->second) * static_cast<double>(b->second);
          shared = true;
          ++a;
          ++b;
        }
      }
      if (!shared) continue;
      const double sa = stat[r], sb = stat[s];
      const float score = o.kind == "jaccard" ? static_cast<float>(dot / (sa + sb - dot + o.shrink))
                                              : static_cast<float>(dot / (sa * sb + o.shrink));
      if (score > 0) scored.emplace_back(score, static_cast<std::uint32_t>(s));
    }
    std::sort(scored.begin(), scored.end(), [](const auto& x, const auto& y) {
      return x.first > y.first || (x.first == y.first && x.second < y.second);
    });
    if (scored.size() > k) scored.resize(k);
    for (const auto& [score, s] : scored) result[r].emplace_back(s, score);
  }
  return result;
}

NeighborList Row(const CsrMatrix& m, std::size_t row) {
  NeighborList list;
  for (std::uint64_t p = m.indptr[row]; p < m.indptr[row + 1]; ++p)
    list.emplace_back(m.indices[p], m.values[p]);
  return list;
}

std::string SimilaritySpec(const std::string& family, const RefOptions& o, std::size_t k) {
  return fmt::format("{}:similarity={},binary={},shrink={},neighbors={}", family, o.kind,
                     o.binary ? "true" : "false", o.shrink, k);
}

std::vector<RefOptions> EveryWeighting() {
  std::vector<RefOptions> all;
  for (std::string kind : {"cosine", "jaccard", "bm25", "tfidf"}) {
    for (bool binary : {true, false}) {
      for (double shrink : {0.0, 2.5}) {
        RefOptions o;
        o.kind = kind;
        o.binary = binary;
        o.shrink = shrink;
        all.push_back(o);
      }
    }
  }
  RefOptions tuned_bm25;
  tuned_bm25.kind = "bm25";
  tuned_bm25.binary = false;
  tuned_bm25.k1 = 0.5;
  tuned_bm25.b = 1.0;
  all.push_back(tuned_bm25);
  return all;
}

Context Threads(int threads) {
  Context ctx;
  ctx.threads = threads;
  return ctx;
}

TEST(ItemKnn, SimilaritiesEqualBruteForceForEveryWeighting) {
  TrainingData data = MakeTraining(RandomRatings(60, 35, 0.2, 11));
  for (const RefOptions& o : EveryWeighting()) {
    std::string spec =
        SimilaritySpec("itemknn", o, 1000) + fmt::format(",bm25_k1={},bm25_b={}", o.k1, o.b);
    SCOPED_TRACE(spec);
    auto model = CreateModel(spec);
    model->Fit(data, Threads(3));
    const auto& neighbors = dynamic_cast<const ItemKnn&>(*model).neighbors();
    auto reference = BruteForce(data.item_users, o, 1000);
    std::size_t pairs = 0;
    for (std::size_t item = 0; item < data.n_items; ++item) {
      ASSERT_EQ(Row(neighbors, item), reference[item]) << "item " << item;
      pairs += reference[item].size();
    }
    EXPECT_GT(pairs, 200u);  // the case is not trivially empty
  }
}

TEST(UserKnn, SimilaritiesEqualBruteForceForEveryWeighting) {
  TrainingData data = MakeTraining(RandomRatings(45, 50, 0.15, 12));
  for (const RefOptions& o : EveryWeighting()) {
    std::string spec =
        SimilaritySpec("userknn", o, 1000) + fmt::format(",bm25_k1={},bm25_b={}", o.k1, o.b);
    SCOPED_TRACE(spec);
    auto model = CreateModel(spec);
    model->Fit(data, Threads(2));
    const auto& neighbors = dynamic_cast<const UserKnn&>(*model).neighbors();
    auto reference = BruteForce(*data.user_items, o, 1000);
    for (std::size_t user = 0; user < data.n_users; ++user) {
      ASSERT_EQ(Row(neighbors, user), reference[user]) << "user " << user;
    }
  }
}

TEST(ItemKnn, TopKTruncatesToTheBestNeighbours) {
  TrainingData data = MakeTraining(RandomRatings(60, 35, 0.3, 13));
  RefOptions o;
  auto reference = BruteForce(data.item_users, o, 1000);
  auto model = CreateModel(SimilaritySpec("itemknn", o, 3));
  model->Fit(data, Threads(2));
  for (ItemIndex item = 0; item < data.n_items; ++item) {
    NeighborList expected = reference[item];
    if (expected.size() > 3) expected.resize(3);
    RankedItems similar = model->SimilarItems(item, 100);
    ASSERT_LE(similar.items.size(), 3u);
    NeighborList got;
    for (std::size_t r = 0; r < similar.items.size(); ++r)
      got.emplace_back(similar.items[r], similar.scores[r]);
    EXPECT_EQ(got, expected) << "item " << item;
    EXPECT_LE(model->SimilarItems(item, 2).items.size(), 2u);
  }
  EXPECT_TRUE(model->SimilarItems(static_cast<ItemIndex>(data.n_items + 3), 5).items.empty());
}

TEST(ItemKnn, SameResultForEveryThreadCount) {
  TrainingData data = MakeTraining(RandomRatings(200, 80, 0.1, 14));
  for (const std::string spec :
       {"itemknn:similarity=cosine,neighbors=7", "itemknn:similarity=bm25,binary=false"}) {
    auto one = CreateModel(spec);
    auto three = CreateModel(spec);
    one->Fit(data, Threads(1));
    three->Fit(data, Threads(3));
    const auto& a = dynamic_cast<const ItemKnn&>(*one).neighbors();
    const auto& b = dynamic_cast<const ItemKnn&>(*three).neighbors();
    EXPECT_EQ(a.indptr, b.indptr) << spec;
    EXPECT_EQ(a.indices, b.indices) << spec;
    EXPECT_EQ(a.values, b.values) << spec;
  }
}

// Catalogues of at most 65536 items take a 16-bit path through the kernel; a wider one
// (the same interactions, padded with items nobody has) must give the same lists.
TEST(ItemKnn, WideCatalogueGivesTheSameNeighbours) {
  CsrMatrix narrow = RandomRatings(80, 300, 0.1, 19);
  std::vector<Triplet> triplets;
  for (std::uint32_t user = 0; user < narrow.n_rows; ++user) {
    for (std::uint64_t p = narrow.indptr[user]; p < narrow.indptr[user + 1]; ++p) {
      triplets.emplace_back(user, narrow.indices[p], narrow.values[p]);
    }
  }
  TrainingData small = MakeTraining(narrow);
  TrainingData wide = MakeTraining(MakeCsr(80, 70000, triplets));
  for (const std::string spec : {"itemknn:similarity=cosine,binary=true,neighbors=15",
                                 "itemknn:similarity=bm25,binary=false,neighbors=15"}) {
    auto a = CreateModel(spec);
    auto b = CreateModel(spec);
    a->Fit(small, Threads(2));
    b->Fit(wide, Threads(2));
    const auto& na = dynamic_cast<const ItemKnn&>(*a).neighbors();
    const auto& nb = dynamic_cast<const ItemKnn&>(*b).neighbors();
    for (std::size_t item = 0; item < 300; ++item) {
      ASSERT_EQ(Row(na, item), Row(nb, item)) << spec << " item " << item;
    }
    EXPECT_EQ(na.nnz(), nb.nnz()) << spec;
  }
}

// Item 0 (A) is in users 0-19; B (item 1) only in users 0 and 1; C (item 2) in users
// 10-109. cos(A, B) = 2 / sqrt(20 * 2) = 0.316 beats cos(A, C) = 10 / sqrt(20 * 100) =
// 0.224, but B rests on two users: shrink=50 gives 2 / (6.32 + 50) = 0.036 against
// 10 / (44.7 + 50) = 0.106, so C moves first.
TEST(ItemKnn, ShrinkageFavoursWellSupportedPairs) {
  std::vector<Triplet> triplets;
  for (std::uint32_t user = 0; user < 20; ++user) triplets.emplace_back(user, 0, 1.0f);
  for (std::uint32_t user = 0; user < 2; ++user) triplets.emplace_back(user, 1, 1.0f);
  for (std::uint32_t user = 10; user < 110; ++user) triplets.emplace_back(user, 2, 1.0f);
  TrainingData data = MakeTraining(MakeCsr(110, 3, triplets));

  auto plain = CreateModel("itemknn:similarity=cosine,binary=true");
  plain->Fit(data, Threads(1));
  RankedItems without = plain->SimilarItems(0, 5);
  ASSERT_EQ(without.items, (std::vector<ItemIndex>{1, 2}));
  EXPECT_FLOAT_EQ(without.scores[0], static_cast<float>(2 / std::sqrt(40.0)));
  EXPECT_FLOAT_EQ(without.scores[1], static_cast<float>(10 / std::sqrt(2000.0)));

  auto shrunk = CreateModel("itemknn:similarity=cosine,binary=true,shrink=50");
  shrunk->Fit(data, Threads(1));
  RankedItems with = shrunk->SimilarItems(0, 5);
  ASSERT_EQ(with.items, (std::vector<ItemIndex>{2, 1}));
  EXPECT_FLOAT_EQ(with.scores[0], static_cast<float>(10 / (std::sqrt(2000.0) + 50)));
  EXPECT_FLOAT_EQ(with.scores[1], static_cast<float>(2 / (std::sqrt(40.0) + 50)));
}

// Five baskets over four items:
//   u0 {0,1,2}  u1 {0,1}  u2 {0,2}  u3 {1,2,3}  u4 {0,1,3}
// c(0)=4 c(1)=4 c(2)=3 c(3)=2, N=5; c(0,1)=3 c(0,2)=2 c(0,3)=1 c(1,2)=2 c(1,3)=2 c(2,3)=1.
class AssocBaskets : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<Triplet> triplets;
    const std::vector<std::vector<std::uint32_t>> baskets = {
        {0, 1, 2}, {0, 1}, {0, 2}, {1, 2, 3}, {0, 1, 3}};
    for (std::uint32_t user = 0; user < baskets.size(); ++user) {
      // Ratings differ on purpose: rules count baskets, never rating values.
      for (std::uint32_t item : baskets[user])
        triplets.emplace_back(user, item, 1.0f + static_cast<float>(item));
    }
    data_ = MakeTraining(MakeCsr(6, 4, triplets));  // user 5 has no basket
  }
  std::unique_ptr<Recommender> Fit(const std::string& spec) {
    auto model = CreateModel(spec);
    model->Fit(data_, Threads(2));
    return model;
  }
  TrainingData data_;
};

TEST_F(AssocBaskets, SupportConfidenceAndLiftMatchHandComputedValues) {
  auto support = Fit("assoc:metric=support,min_support=1");
  RankedItems rules = support->SimilarItems(0, 10);
  ASSERT_EQ(rules.items, (std::vector<ItemIndex>{1, 2, 3}));
  EXPECT_FLOAT_EQ(rules.scores[0], 3.0f / 5);
  EXPECT_FLOAT_EQ(rules.scores[1], 2.0f / 5);
  EXPECT_FLOAT_EQ(rules.scores[2], 1.0f / 5);

  auto confidence = Fit("assoc:metric=confidence,min_support=1");
  rules = confidence->SimilarItems(
      3, 10);  // 3 -> 1: 2/2, then 3 -> 0 and 3 -> 2: 1/2 (tie: smaller item)
  ASSERT_EQ(rules.items, (std::vector<ItemIndex>{1, 0, 2}));
  EXPECT_FLOAT_EQ(rules.scores[0], 1.0f);
  EXPECT_FLOAT_EQ(rules.scores[1], 0.5f);
  EXPECT_FLOAT_EQ(rules.scores[2], 0.5f);
  rules = confidence->SimilarItems(0, 10);
  ASSERT_EQ(rules.items, (std::vector<ItemIndex>{1, 2, 3}));
  EXPECT_FLOAT_EQ(rules.scores[0], 0.75f);
  EXPECT_FLOAT_EQ(rules.scores[1], 0.5f);
  EXPECT_FLOAT_EQ(rules.scores[2], 0.25f);

  auto lift = Fit("assoc:metric=lift,min_support=1");
  rules = lift->SimilarItems(3, 10);  // 3 -> 1: 2*5/(2*4) = 1.25; 3 -> 2: 5/6; 3 -> 0: 5/8
  ASSERT_EQ(rules.items, (std::vector<ItemIndex>{1, 2, 0}));
  EXPECT_FLOAT_EQ(rules.scores[0], 1.25f);
  EXPECT_FLOAT_EQ(rules.scores[1], 5.0f / 6);
  EXPECT_FLOAT_EQ(rules.scores[2], 0.625f);
}

TEST_F(AssocBaskets, MinSupportAndRuleLimit) {
  auto model = Fit("assoc:metric=confidence,min_support=2");
  EXPECT_EQ(model->SimilarItems(0, 10).items,
            (std::vector<ItemIndex>{1, 2}));  // 0 -> 3 has one basket
  EXPECT_EQ(model->SimilarItems(3, 10).items, (std::vector<ItemIndex>{1}));
  auto limited = Fit("assoc:metric=confidence,min_support=1,rules=1");
  for (ItemIndex item = 0; item < 4; ++item)
    EXPECT_EQ(limited->SimilarItems(item, 10).items.size(), 1u);
}

TEST_F(AssocBaskets, ScoresAggregateRulesBySumOrMax) {
  std::vector<ItemIndex> history = {0, 3};
  std::vector<float> scores(4);
  auto summed = Fit("assoc:metric=confidence,min_support=1,aggregate=sum");
  ASSERT_TRUE(summed->ScoreHistory(history, {}, scores.data()));
  EXPECT_FLOAT_EQ(scores[1], 0.75f + 1.0f);  // 0 -> 1 and 3 -> 1
  EXPECT_FLOAT_EQ(scores[2], 0.5f + 0.5f);   // 0 -> 2 and 3 -> 2
  auto strongest = Fit("assoc:metric=confidence,min_support=1,aggregate=max");
  ASSERT_TRUE(strongest->ScoreHistory(history, {}, scores.data()));
  EXPECT_FLOAT_EQ(scores[1], 1.0f);
  EXPECT_FLOAT_EQ(scores[2], 0.5f);
  // The user with no basket scores zeros.
  UserIndex empty = 5;
  strongest->ScoreUsers(std::span<const UserIndex>(&empty, 1), scores.data());
  EXPECT_EQ(scores, std::vector<float>(4, 0.0f));
}

TEST(NeighborFamilies, FoldInEqualsScoreUsersForTheSameHistory) {
  TrainingData data = MakeTraining(RandomRatings(70, 40, 0.15, 15));
  for (const std::string spec :
       {"itemknn", "itemknn:neighborhood=target", "itemknn:similarity=cosine,binary=true",
        "itemknn:similarity=jaccard,binary=false,neighborhood=target,neighbors=5",
        "assoc:min_support=1", "assoc:aggregate=sum,metric=lift,min_support=2"}) {
    SCOPED_TRACE(spec);
    auto model = CreateModel(spec);
    model->Fit(data, Threads(2));
    std::vector<float> direct(data.n_items), folded(data.n_items);
    for (UserIndex user = 0; user < data.n_users; ++user) {
      model->ScoreUsers(std::span<const UserIndex>(&user, 1), direct.data());
      ASSERT_TRUE(model->ScoreHistory(data.user_items->RowIndices(user),
                                      data.user_items->RowValues(user), folded.data()));
      ASSERT_EQ(direct, folded) << "user " << user;
    }
  }
}

// A user is never its own neighbour, so userknn fold-in of user u's history is checked
// against a model trained without u's rows (cosine and jaccard norms of the other
// users do not depend on u).
TEST(UserKnn, FoldInEqualsScoreUsersOfAModelWithoutThatUser) {
  CsrMatrix full = RandomRatings(70, 40, 0.2, 16);
  TrainingData with_all = MakeTraining(full);
  for (const std::string spec : {"userknn:neighbors=10", "userknn:similarity=jaccard,neighbors=5",
                                 "userknn:similarity=cosine,binary=false,neighbors=8,shrink=1"}) {
    SCOPED_TRACE(spec);
    auto reference = CreateModel(spec);
    reference->Fit(with_all, Threads(2));
    for (UserIndex user : {0u, 7u, 33u}) {
      std::vector<Triplet> others;
      for (std::uint32_t u = 0; u < full.n_rows; ++u) {
        if (u == user) continue;
        for (std::uint64_t p = full.indptr[u]; p < full.indptr[u + 1]; ++p) {
          others.emplace_back(u, full.indices[p], full.values[p]);
        }
      }
      auto without = CreateModel(spec);
      without->Fit(MakeTraining(MakeCsr(full.n_rows, full.n_cols, others)), Threads(2));
      std::vector<float> direct(full.n_cols), folded(full.n_cols);
      reference->ScoreUsers(std::span<const UserIndex>(&user, 1), direct.data());
      ASSERT_TRUE(
          without->ScoreHistory(full.RowIndices(user), full.RowValues(user), folded.data()));
      EXPECT_EQ(direct, folded) << "user " << user;
      EXPECT_GT(*std::max_element(direct.begin(), direct.end()), 0.0f);
    }
  }
}

TEST(UserKnn, FoldInSurvivesSaveAndLoad) {
  TrainingData data = MakeTraining(RandomRatings(50, 30, 0.2, 17));
  auto model = CreateModel("userknn:similarity=bm25,binary=false,neighbors=6");
  model->Fit(data, Threads(2));
  recforge::testing::TempDir dir;
  SaveModel(*model, dir / "userknn.bin");
  auto loaded = LoadModel(dir / "userknn.bin");
  std::vector<ItemIndex> history = {1, 4, 9, 20};
  std::vector<float> values = {5, 3, 4, 1};
  std::vector<float> a(data.n_items), b(data.n_items);
  ASSERT_TRUE(model->ScoreHistory(history, values, a.data()));
  ASSERT_TRUE(loaded->ScoreHistory(history, values, b.data()));
  EXPECT_EQ(a, b);
}

TEST(NeighborFamilies, SimilarItemsStayInTheirPlantedBlock) {
  recforge::testing::PlantedOptions options;
  data::PreparedDataset prepared = recforge::testing::PlantedCheckerboard(options);
  TrainingData data = TrainingData::FromPrepared(prepared, 2);
  for (const std::string spec : {"itemknn", "itemknn:similarity=jaccard", "assoc:min_support=1"}) {
    SCOPED_TRACE(spec);
    auto model = CreateModel(spec);
    model->Fit(data, Threads(2));
    for (ItemIndex item = 0; item < data.n_items; ++item) {
      RankedItems similar = model->SimilarItems(item, 5);
      ASSERT_EQ(similar.items.size(), 5u) << "item " << item;
      for (std::size_t r = 0; r < similar.items.size(); ++r) {
        EXPECT_NE(similar.items[r], item);
        EXPECT_EQ(recforge::testing::PlantedItemBlock(options, similar.items[r]),
                  recforge::testing::PlantedItemBlock(options, item));
        EXPECT_GT(similar.scores[r], 0.0f);
        if (r > 0) {
          EXPECT_GE(similar.scores[r - 1], similar.scores[r]);
        }
      }
    }
  }
}

TEST(NeighborFamilies, UnknownAndEmptyUsersScoreZeros) {
  TrainingData data = MakeTraining(RandomRatings(30, 20, 0.3, 18));  // the last user is empty
  for (const std::string spec : {"itemknn", "userknn", "assoc:min_support=1"}) {
    auto model = CreateModel(spec);
    model->Fit(data, Threads(2));
    std::vector<UserIndex> users = {static_cast<UserIndex>(data.n_users - 1),
                                    static_cast<UserIndex>(data.n_users),
                                    static_cast<UserIndex>(data.n_users + 100)};
    std::vector<float> scores(users.size() * data.n_items, 1.0f);
    model->ScoreUsers(users, scores.data());
    EXPECT_EQ(scores, std::vector<float>(scores.size(), 0.0f)) << spec;
    std::vector<float> folded(data.n_items, 1.0f);
    ASSERT_TRUE(model->ScoreHistory({}, {}, folded.data()));
    EXPECT_EQ(folded, std::vector<float>(data.n_items, 0.0f)) << spec;
  }
}

TEST(NeighborFamilies, LoadStateRejectsListsOfAnotherShape) {
  ModelWriter writer;
  CsrMatrix wrong = MakeCsr(3, 3, {{0, 1, 0.5f}});
  writer.WriteCsr(wrong);
  for (const std::string family : {"itemknn", "userknn", "assoc"}) {
    auto model = CreateModel(family);
    model->SetShape(5, 5, "hash");
    ModelReader reader(writer.bytes(), "model.bin");
    try {
      model->LoadState(reader);
      ADD_FAILURE() << family << ": no error";
    } catch (const FormatError& error) {
      EXPECT_NE(std::string(error.what()).find("model.bin"), std::string::npos) << error.what();
    }
  }
}

TEST(NeighborFamilies, InvalidParamsAreRejectedWithTheValidValues) {
  try {
    ParseSpec("itemknn:similarity=pearson");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("bm25"), std::string::npos) << error.what();
  }
  EXPECT_THROW(ParseSpec("userknn:neighbors=0"), ConfigError);
  EXPECT_THROW(ParseSpec("assoc:metric=chi2"), ConfigError);
  EXPECT_THROW(ParseSpec("itemknn:bm25_b=1.5"), ConfigError);
  // Aliases are accepted and printed under the main name.
  EXPECT_EQ(ParseSpec("itemknn:k=7,sim=jaccard,implicit=true").Int("neighbors"), 7);
  EXPECT_EQ(
      ParseSpec("itemknn:k=7,sim=jaccard").CanonicalSpec(),
      "itemknn:binary=false,bm25_b=0.75,bm25_k1=1.2,neighborhood=history,neighbors=7,shrink=0,"
      "similarity=jaccard");
}

}  // namespace
}  // namespace recforge::models
