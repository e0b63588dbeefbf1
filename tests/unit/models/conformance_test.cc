// The conformance suite (STYLE.md §10): every registry entry is fitted on a planted
// checkerboard and must recommend, exclude seen items, honour filters and candidate
// subsets, survive unknown and empty users, round-trip through a model file and its
// spec, and be deterministic for a fixed seed and thread count. Personalised models
// must also find the held-out in-block item.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

using recforge::testing::PlantedCheckerboard;
using recforge::testing::PlantedOptions;

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    prepared_ = PlantedCheckerboard(options_);
    data_ = TrainingData::FromPrepared(prepared_, 2);
    ctx_.threads = 2;
    ctx_.seed = 7;
  }
  std::unique_ptr<Recommender> Fitted() {
    const ModelFamily& family = FindFamily(GetParam());
    auto model = CreateModel(family.quick_spec);
    model->Fit(data_, ctx_);
    return model;
  }
  std::vector<UserIndex> AllUsers() const {
    std::vector<UserIndex> users(data_.n_users);
    for (std::size_t u = 0; u < users.size(); ++u) users[u] = static_cast<UserIndex>(u);
    return users;
  }

  PlantedOptions options_;
  data::PreparedDataset prepared_;
  TrainingData data_;
  Context ctx_;
};

TEST_P(Conformance, RecommendsKUnseenItemsBestFirst) {
  auto model = Fitted();
  RecommendOptions options;
  options.k = 10;
  auto users = AllUsers();
  auto lists = model->Recommend(users, options, 2);
  ASSERT_EQ(lists.size(), users.size());
  for (std::size_t u = 0; u + 1 < users.size(); ++u) {  // the last user is empty
    const auto& list = lists[u];
    std::size_t unseen = data_.n_items - data_.user_items->RowLength(u);
    ASSERT_EQ(list.items.size(), std::min<std::size_t>(10, unseen)) << "user " << u;
    ASSERT_EQ(list.scores.size(), list.items.size());
    std::set<ItemIndex> distinct(list.items.begin(), list.items.end());
    EXPECT_EQ(distinct.size(), list.items.size()) << "duplicates for user " << u;
    for (std::size_t r = 0; r < list.items.size(); ++r) {
      EXPECT_FALSE(data_.user_items->Contains(u, list.items[r])) << "seen item recommended to user " << u;
      if (r > 0) {
        bool ordered = list.scores[r - 1] > list.scores[r] ||
                       (list.scores[r - 1] == list.scores[r] && list.items[r - 1] < list.items[r]);
        EXPECT_TRUE(ordered) << "user " << u << " rank " << r;
      }
    }
  }
}

TEST_P(Conformance, FiltersAndCandidateSubsets) {
  auto model = Fitted();
  UserIndex user = 3;
  RecommendOptions base;
  base.k = 5;
  auto first = model->Recommend(std::span<const UserIndex>(&user, 1), base, 1)[0];
  ASSERT_FALSE(first.items.empty());
  RecommendOptions filtered = base;
  std::vector<ItemIndex> excluded = {first.items[0]};
  filtered.excluded = excluded;
  auto without = model->Recommend(std::span<const UserIndex>(&user, 1), filtered, 1)[0];
  EXPECT_EQ(std::count(without.items.begin(), without.items.end(), first.items[0]), 0);
  RecommendOptions subset = base;
  std::vector<ItemIndex> candidates = {1, 20, 30, 40};
  subset.candidates = candidates;
  subset.exclude_seen = false;
  auto only = model->Recommend(std::span<const UserIndex>(&user, 1), subset, 1)[0];
  EXPECT_EQ(only.items.size(), 4u);
  for (ItemIndex item : only.items) {
    EXPECT_NE(std::find(candidates.begin(), candidates.end(), item), candidates.end());
  }
  RecommendOptions include_seen = base;
  include_seen.exclude_seen = false;
  include_seen.k = data_.n_items;
  auto all = model->Recommend(std::span<const UserIndex>(&user, 1), include_seen, 1)[0];
  EXPECT_EQ(all.items.size(), data_.n_items);
}

TEST_P(Conformance, UnknownAndEmptyUsersDoNotCrash) {
  auto model = Fitted();
  std::vector<UserIndex> users = {static_cast<UserIndex>(data_.n_users - 1),  // empty user
                                  static_cast<UserIndex>(data_.n_users + 5)};  // beyond the model
  RecommendOptions options;
  auto lists = model->Recommend(users, options, 1);
  ASSERT_EQ(lists.size(), 2u);
  for (const auto& list : lists) EXPECT_LE(list.items.size(), 10u);
  EXPECT_FALSE(model->HasUser(users[0]));
  EXPECT_FALSE(model->HasUser(users[1]));
  EXPECT_TRUE(model->HasUser(0));
}

TEST_P(Conformance, SaveLoadRoundTripGivesIdenticalRecommendations) {
  auto model = Fitted();
  recforge::testing::TempDir dir;
  auto path = dir / "model.bin";
  SaveModel(*model, path);
  auto loaded = LoadModel(path);
  EXPECT_EQ(loaded->Spec(), model->Spec());
  EXPECT_EQ(loaded->n_users(), model->n_users());
  EXPECT_EQ(loaded->n_items(), model->n_items());
  EXPECT_EQ(loaded->dataset_hash(), "planted-1");
  auto users = AllUsers();
  RecommendOptions options;
  auto a = model->Recommend(users, options, 2);
  auto b = loaded->Recommend(users, options, 2);
  for (std::size_t u = 0; u < users.size(); ++u) {
    ASSERT_EQ(a[u].items, b[u].items) << "user " << u;
    ASSERT_EQ(a[u].scores, b[u].scores) << "user " << u;
  }
  // A damaged file is refused with a clear error.
  std::string bytes = ReadFileToString(path);
  bytes[bytes.size() - 1] ^= 0x5a;
  auto damaged = dir.Write("damaged.bin", bytes);
  EXPECT_THROW(LoadModel(damaged), FormatError);
}

TEST_P(Conformance, SpecRoundTrips) {
  const ModelFamily& family = FindFamily(GetParam());
  auto model = CreateModel(family.quick_spec);
  std::string canonical = model->Spec();
  EXPECT_EQ(ParseSpec(canonical).CanonicalSpec(), canonical);
  EXPECT_EQ(CreateModel(GetParam())->family(), GetParam());  // defaults alone are valid
  EXPECT_THROW(ParseSpec(GetParam() + ":no_such_key=1"), ConfigError);
}

TEST_P(Conformance, SameSeedSameThreadsSameModel) {
  auto a = Fitted();
  auto b = Fitted();
  auto users = AllUsers();
  RecommendOptions options;
  auto ra = a->Recommend(users, options, 2);
  auto rb = b->Recommend(users, options, 2);
  for (std::size_t u = 0; u < users.size(); ++u) {
    ASSERT_EQ(ra[u].items, rb[u].items) << "user " << u;
    ASSERT_EQ(ra[u].scores, rb[u].scores) << "user " << u;
  }
}

TEST_P(Conformance, PersonalisedModelsFindTheHeldOutInBlockItem) {
  if (GetParam() == "random" || GetParam() == "pop") GTEST_SKIP() << "not personalised";
  auto model = Fitted();
  std::vector<UserIndex> users;
  std::vector<ItemIndex> held_out;
  for (std::size_t row = 0; row + 1 < prepared_.test.size(); ++row) {  // skip the empty user
    users.push_back(prepared_.test.users[row]);
    held_out.push_back(prepared_.test.items[row]);
  }
  RecommendOptions options;
  auto lists = model->Recommend(users, options, 2);
  std::size_t hits = 0;
  for (std::size_t k = 0; k < users.size(); ++k) {
    hits += std::count(lists[k].items.begin(), lists[k].items.end(), held_out[k]) > 0 ? 1 : 0;
  }
  EXPECT_GE(static_cast<double>(hits) / users.size(), 0.95) << hits << " of " << users.size();
}

std::vector<std::string> FamilyNames() {
  std::vector<std::string> names;
  for (const auto& family : ModelFamilies()) names.push_back(family.name);
  return names;
}

// Test names allow only [A-Za-z0-9_]: "lda-content" runs as Conformance.X/lda_content.
INSTANTIATE_TEST_SUITE_P(EveryFamily, Conformance, ::testing::ValuesIn(FamilyNames()), [](const auto& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
});

}  // namespace
}  // namespace recforge::models
