// RecommendationService (issue 5) on the planted checkerboard with small trained models:
// model answers stay in the user's block, filters and exclusions hold, the fallback
// chain answers users the model cannot, events grow histories at once (fold-in for
// ials), metadata-only items are reachable through content, and concurrent requests
// survive events.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <tuple>
#include <set>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "recforge/core/error.h"
#include "recforge/models/registry.h"
#include "recforge/serve/recommendation_service.h"
#include "testlib/planted.h"

namespace recforge::serve {
namespace {

using recforge::testing::PlantedCheckerboard;
using recforge::testing::PlantedOptions;

const PlantedOptions kOptions;  // 4 blocks x 12 items, 30 users per block, 6 training items each

int ItemBlock(const std::string& id) {
  if (id.rfind("new", 0) == 0) return 1;  // the metadata-only item belongs to block 1
  return std::stoi(id.substr(1)) / kOptions.items_per_block;
}

std::string Category(int block) { return fmt::format("cat{}", block); }

// The planted dataset plus metadata: every item is in category "cat<block>" and titled
// "Item <i> block<b>"; one metadata-only item "new1" (no interactions) is in cat1.
data::PreparedDataset PlantedWithMetadata() {
  data::PreparedDataset prepared = PlantedCheckerboard(kOptions);
  for (std::size_t i = 0; i < prepared.items.size(); ++i) {
    const int block = static_cast<int>(i) / kOptions.items_per_block;
    data::ItemInfo info;
    info.item_id = prepared.items.id(static_cast<std::uint32_t>(i));
    info.title = fmt::format("Item {} block{}", i, block);
    info.categories = {Category(block), "all"};
    prepared.item_info.push_back(info);
  }
  data::ItemInfo fresh;
  fresh.item_id = "new1";
  fresh.title = "Fresh arrival block1";
  fresh.categories = {Category(1)};
  prepared.item_info.push_back(fresh);
  return prepared;
}

std::shared_ptr<const models::Recommender> Train(const std::string& family, const data::PreparedDataset& prepared) {
  auto data = models::TrainingData::FromPrepared(prepared, 2);
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 7;
  std::shared_ptr<models::Recommender> model = models::CreateModel(models::FindFamily(family).quick_spec);
  model->Fit(data, ctx);
  return model;
}

std::unique_ptr<RecommendationService> Service(const std::string& family, FallbackOptions fallback = {},
                                               AnnOptions ann = {}) {
  auto prepared = PlantedWithMetadata();
  auto model = Train(family, prepared);
  ServedModelInfo info;
  info.name = "planted";
  info.family = family;
  return std::make_unique<RecommendationService>(model, std::move(prepared), info, fallback, ann, 2);
}

std::string User(int u) { return fmt::format("u{}", u); }

int CountInBlock(const std::vector<RecommendedItem>& items, int block) {
  return static_cast<int>(std::count_if(items.begin(), items.end(),
                                        [&](const auto& item) { return ItemBlock(item.item_id) == block; }));
}

std::set<std::string> Ids(const std::vector<RecommendedItem>& items) {
  std::set<std::string> ids;
  for (const auto& item : items) ids.insert(item.item_id);
  return ids;
}

TEST(SourceName, MatchesTheApi) {
  EXPECT_EQ(Name(Source::kModel), "model");
  EXPECT_EQ(Name(Source::kPopular), "fallback:popular");
  EXPECT_EQ(Name(Source::kItemToItem), "fallback:item-to-item");
  EXPECT_EQ(Name(Source::kContent), "fallback:content");
}

class ServiceFamilies : public ::testing::TestWithParam<std::string> {};

TEST_P(ServiceFamilies, KnownUserGetsModelAnswerWithMetadata) {
  auto service = Service(GetParam());
  const bool personalised = GetParam() != "pop";
  auto prepared = PlantedWithMetadata();
  for (int u : {0, 31, 65, 100}) {
    RecommendRequest request;
    request.user_id = User(u);
    request.top_k = 5;
    auto response = service->Recommend(request);
    EXPECT_EQ(response.source, Source::kModel) << GetParam() << " user " << u;
    EXPECT_EQ(response.user_id, User(u));
    ASSERT_EQ(response.items.size(), 5u);
    const int block = u / kOptions.users_per_block;
    if (personalised) {
      EXPECT_GE(CountInBlock(response.items, block), 4) << GetParam() << " user " << u;
    }
    for (const auto& item : response.items) {
      // Never a training item of the user.
      for (std::size_t r = 0; r < prepared.train.size(); ++r) {
        if (prepared.train.users[r] == static_cast<UserIndex>(u)) {
          EXPECT_NE(item.item_id, prepared.items.id(prepared.train.items[r]));
        }
      }
      EXPECT_FALSE(item.title.empty());
      ASSERT_FALSE(item.categories.empty());
    }
  }
}

TEST_P(ServiceFamilies, ExcludeItemsAndCategoryFilter) {
  auto service = Service(GetParam());
  RecommendRequest request;
  request.user_id = User(3);
  request.top_k = 5;
  auto first = service->Recommend(request);
  ASSERT_FALSE(first.items.empty());
  request.exclude_items = {first.items[0].item_id, first.items[1].item_id};
  auto second = service->Recommend(request);
  EXPECT_EQ(second.source, Source::kModel);
  for (const auto& item : second.items) {
    EXPECT_NE(item.item_id, first.items[0].item_id);
    EXPECT_NE(item.item_id, first.items[1].item_id);
  }
  request.exclude_items.clear();
  request.filter_categories = {Category(2)};
  auto filtered = service->Recommend(request);
  EXPECT_EQ(filtered.source, Source::kModel);
  ASSERT_EQ(filtered.items.size(), 5u);
  for (const auto& item : filtered.items) {
    EXPECT_EQ(ItemBlock(item.item_id), 2) << item.item_id;
    EXPECT_NE(std::find(item.categories.begin(), item.categories.end(), Category(2)), item.categories.end());
  }
  request.filter_categories = {Category(1), Category(3)};
  for (const auto& item : service->Recommend(request).items) {
    const int block = ItemBlock(item.item_id);
    EXPECT_TRUE(block == 1 || block == 3) << item.item_id;
  }
}

TEST_P(ServiceFamilies, UnknownUserGetsPopular) {
  auto service = Service(GetParam());
  EXPECT_FALSE(service->KnowsUser("nobody"));
  EXPECT_FALSE(service->KnowsUser(User(120)));  // in the id map, no training rows
  for (const std::string user : {"nobody", "u120"}) {
    RecommendRequest request;
    request.user_id = user;
    request.top_k = 4;
    auto response = service->Recommend(request);
    EXPECT_EQ(response.source, Source::kPopular) << user;
    auto popular = service->Popular(4);
    ASSERT_EQ(response.items.size(), popular.size());
    for (std::size_t r = 0; r < popular.size(); ++r) EXPECT_EQ(response.items[r].item_id, popular[r].item_id);
    request.filter_categories = {Category(3)};
    auto per_category = service->Recommend(request);
    EXPECT_EQ(per_category.source, Source::kPopular);
    ASSERT_EQ(per_category.items.size(), 4u);
    EXPECT_EQ(CountInBlock(per_category.items, 3), 4);
    EXPECT_EQ(Ids(per_category.items), Ids(service->Popular(4, Category(3))));
  }
  // Popularity is non-increasing and counts training users.
  auto all = service->Popular(1000);
  EXPECT_EQ(all.size(), service->n_items());
  for (std::size_t r = 1; r < all.size(); ++r) EXPECT_GE(all[r - 1].score, all[r].score);
  EXPECT_TRUE(service->Popular(3, "no-such-category").empty());
}

TEST_P(ServiceFamilies, ContextOnlyGetsItemToItem) {
  auto service = Service(GetParam());
  RecommendRequest request;
  request.context_items = {"i24", "i25", "i26"};  // block 2
  request.top_k = 5;
  auto response = service->Recommend(request);
  EXPECT_EQ(response.source, Source::kItemToItem);
  ASSERT_FALSE(response.items.empty());
  EXPECT_GE(CountInBlock(response.items, 2), static_cast<int>(response.items.size()) - 1);
  for (const auto& item : response.items) {
    EXPECT_TRUE(item.item_id != "i24" && item.item_id != "i25" && item.item_id != "i26");
  }
  // A too-short history (min_history) for a known user falls back the same way.
  FallbackOptions strict;
  strict.min_history = 100;
  auto strict_service = Service(GetParam(), strict);
  RecommendRequest known;
  known.user_id = User(70);  // block 2
  known.top_k = 5;
  auto fallback = strict_service->Recommend(known);
  EXPECT_EQ(fallback.source, Source::kItemToItem);
  EXPECT_GE(CountInBlock(fallback.items, 2), 4);
}

INSTANTIATE_TEST_SUITE_P(Families, ServiceFamilies, ::testing::Values("ials", "itemknn", "pop"));

TEST(RecommendationService, MetadataOnlyItemViaContent) {
  auto service = Service("ials");
  EXPECT_EQ(service->n_items(), 49u);
  auto categories = service->Categories();
  EXPECT_EQ(categories, (std::vector<std::string>{"all", "cat0", "cat1", "cat2", "cat3"}));
  // Context = the new item itself: no model item to start from, so content answers.
  RecommendRequest request;
  request.context_items = {"new1"};
  request.top_k = 5;
  auto response = service->Recommend(request);
  EXPECT_EQ(response.source, Source::kContent);
  ASSERT_EQ(response.items.size(), 5u);
  EXPECT_EQ(CountInBlock(response.items, 1), 5);
  // Similar items of a metadata-only item come from content; of an unknown item: NotFound.
  auto similar = service->SimilarItems("new1", 3);
  ASSERT_EQ(similar.size(), 3u);
  EXPECT_EQ(CountInBlock(similar, 1), 3);
  EXPECT_THROW(service->SimilarItems("no-such-item", 3), NotFound);
  auto model_similar = service->SimilarItems("i0", 5);
  ASSERT_EQ(model_similar.size(), 5u);
  EXPECT_GE(CountInBlock(model_similar, 0), 4);
  // The new item is recommendable by content from a block-1 session.
  FallbackOptions content_only;
  content_only.chain = {Source::kContent, Source::kPopular};
  auto content_service = Service("ials", content_only);
  request.context_items = {"i12"};
  request.top_k = 12;
  auto from_content = content_service->Recommend(request);
  EXPECT_EQ(from_content.source, Source::kContent);
  EXPECT_TRUE(Ids(from_content.items).count("new1")) << "metadata-only item not reached";
  EXPECT_EQ(CountInBlock(from_content.items, 1), 12);
  auto new_item = std::find_if(from_content.items.begin(), from_content.items.end(),
                               [](const auto& item) { return item.item_id == "new1"; });
  ASSERT_NE(new_item, from_content.items.end());
  EXPECT_EQ(new_item->title, "Fresh arrival block1");
}

TEST(RecommendationService, EventsExcludeItemsAndCreateUsers) {
  for (const std::string family : {"ials", "itemknn", "pop"}) {
    auto service = Service(family);
    RecommendRequest request;
    request.user_id = User(10);
    request.top_k = 5;
    auto before = service->Recommend(request);
    ASSERT_FALSE(before.items.empty());
    const std::string top = before.items[0].item_id;
    service->AddEvent(User(10), top, 1.0f, 2000);
    auto after = service->Recommend(request);
    EXPECT_EQ(after.source, Source::kModel) << family;
    EXPECT_FALSE(Ids(after.items).count(top)) << family << ": event item still recommended";
    auto history = service->History(User(10), 3);
    ASSERT_EQ(history.size(), 3u);
    EXPECT_EQ(history[0].item_id, top);  // newest first

    const std::size_t users = service->n_users();
    EXPECT_FALSE(service->KnowsUser("newcomer"));
    service->AddEvent("newcomer", "i36", 1.0f, 3000);
    service->AddEvent("newcomer", "i37", 1.0f, 3001);
    service->AddEvent("newcomer", "unknown-item", 1.0f, 3002);
    EXPECT_TRUE(service->KnowsUser("newcomer"));
    EXPECT_EQ(service->n_users(), users + 1);
    EXPECT_EQ(service->History("newcomer", 10).size(), 3u);
    EXPECT_EQ(service->History("newcomer", 10)[0].item_id, "unknown-item");
    RecommendRequest newcomer;
    newcomer.user_id = "newcomer";
    newcomer.top_k = 5;
    auto response = service->Recommend(newcomer);
    EXPECT_EQ(response.source, Source::kModel) << family;
    ASSERT_FALSE(response.items.empty());
    EXPECT_FALSE(Ids(response.items).count("i36"));
    EXPECT_FALSE(Ids(response.items).count("i37"));
    if (family != "pop") {
      EXPECT_GE(CountInBlock(response.items, 3), 4) << family;
    }
  }
}

TEST(RecommendationService, IalsFoldInMovesTowardTheEventBlock) {
  auto service = Service("ials");
  RecommendRequest request;
  request.user_id = User(5);  // block 0
  request.top_k = 10;
  for (int i = 24; i < 36; ++i) service->AddEvent(User(5), fmt::format("i{}", i), 5.0f, 4000 + i);
  auto after = service->Recommend(request);
  EXPECT_EQ(after.source, Source::kModel);
  EXPECT_EQ(CountInBlock(after.items, 2), 0);  // every block-2 item is now seen
  RecommendRequest fresh;
  fresh.user_id = "block2-fan";
  fresh.top_k = 10;
  service->AddEvent("block2-fan", "i24", 5.0f, 1);
  service->AddEvent("block2-fan", "i25", 5.0f, 2);
  EXPECT_GE(CountInBlock(service->Recommend(fresh).items, 2), 8);
  // A user of block 0 with a few block-2 events gains block-2 items.
  request.user_id = User(6);
  const int before6 = CountInBlock(service->Recommend(request).items, 2);
  for (int i = 24; i < 30; ++i) service->AddEvent(User(6), fmt::format("i{}", i), 5.0f, 6000 + i);
  const int after6 = CountInBlock(service->Recommend(request).items, 2);
  EXPECT_GT(after6, before6) << "fold-in did not move toward block 2";
}

// Records the history ScoreHistory receives (order-aware families read it as a sequence).
class HistoryRecorder : public models::Recommender {
 public:
  HistoryRecorder() : Recommender(models::ParseSpec("random")) {}
  void ScoreUsers(std::span<const UserIndex> users, float* out) const override {
    std::fill(out, out + users.size() * n_items(), 0.0f);
  }
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values, float* out) const override {
    std::lock_guard lock(mutex_);
    items_.assign(items.begin(), items.end());
    values_.assign(values.begin(), values.end());
    std::fill(out, out + n_items(), 0.0f);
    return true;
  }
  void SaveState(models::ModelWriter&) const override {}
  void LoadState(models::ModelReader&) override {}
  mutable std::mutex mutex_;
  mutable std::vector<ItemIndex> items_;
  mutable std::vector<float> values_;

 protected:
  void FitImpl(const models::TrainingData&, const Context&, const models::TrainCallback&) override {}
};

// Regression (issue 6, serve): the history reaches the model in time order — training
// timeline, then events, then the session's context — not sorted by item index; a
// repeated item keeps its latest position with the values summed.
TEST(RecommendationService, ModelSeesTheHistoryInTimeOrder) {
  auto prepared = PlantedWithMetadata();
  auto data = models::TrainingData::FromPrepared(prepared, 1);
  auto recorder = std::make_shared<HistoryRecorder>();
  Context ctx;
  recorder->Fit(data, ctx);
  // User 5's training items, oldest first (time, then item index).
  std::vector<std::tuple<std::int64_t, ItemIndex, float>> rows;
  const auto& train = prepared.train;
  for (std::size_t r = 0; r < train.users.size(); ++r) {
    if (train.users[r] == 5) rows.emplace_back(train.times[r], train.items[r], train.ratings[r]);
  }
  std::sort(rows.begin(), rows.end());
  ASSERT_GE(rows.size(), 2u);
  const ItemIndex first_train_item = std::get<1>(rows.front());
  const std::vector<std::string> ids = prepared.items.ids();
  ServedModelInfo info;
  info.name = "recorder";
  RecommendationService service(recorder, std::move(prepared), info, {}, {}, 1);
  const std::string item_a = ids[40];  // blocks 3 and 2: not in user 5's training rows
  const std::string item_b = ids[30];
  service.AddEvent(User(5), item_a, 2.0f, 1'000'000);
  service.AddEvent(User(5), item_b, 1.0f, 1'000'001);
  RecommendRequest request;
  request.user_id = User(5);
  request.context_items = {ids[first_train_item]};  // seen in training too
  service.Recommend(request);
  std::lock_guard lock(recorder->mutex_);
  const auto& items = recorder->items_;
  ASSERT_EQ(items.size(), rows.size() + 2);
  for (std::size_t j = 1; j < rows.size(); ++j) EXPECT_EQ(items[j - 1], std::get<1>(rows[j])) << j;
  EXPECT_EQ(items[rows.size() - 1], 40u);
  EXPECT_EQ(items[rows.size()], 30u);
  EXPECT_EQ(items.back(), first_train_item);  // moved to the end by the context
  EXPECT_FLOAT_EQ(recorder->values_.back(), std::get<2>(rows.front()) + 1.0f);
  EXPECT_FLOAT_EQ(recorder->values_[rows.size() - 1], 2.0f);
}

TEST(RecommendationService, AnnPathMatchesExactScoring) {
  AnnOptions ann;
  ann.min_items = 1;
  ann.candidates = 16;
  auto approximate = Service("ials", {}, ann);
  ASSERT_TRUE(approximate->ann_enabled());
  auto exact = Service("ials");
  ASSERT_FALSE(exact->ann_enabled());
  int same = 0, total = 0;
  for (int u = 0; u < 120; u += 7) {
    RecommendRequest request;
    request.user_id = User(u);
    request.top_k = 5;
    auto a = approximate->Recommend(request);
    auto e = exact->Recommend(request);
    EXPECT_EQ(a.source, Source::kModel);
    ASSERT_EQ(a.items.size(), e.items.size());
    for (const auto& id : Ids(a.items)) same += static_cast<int>(Ids(e.items).count(id));
    total += static_cast<int>(a.items.size());
    request.filter_categories = {Category(1)};
    for (const auto& item : approximate->Recommend(request).items) EXPECT_EQ(ItemBlock(item.item_id), 1);
  }
  EXPECT_GE(same, total * 95 / 100);
  approximate->AddEvent(User(0), "i40", 5.0f, 9000);
  RecommendRequest request;
  request.user_id = User(0);
  request.top_k = 5;
  EXPECT_FALSE(Ids(approximate->Recommend(request).items).count("i40"));
}

TEST(RecommendationService, ConcurrentRecommendAndEvents) {
  auto service = Service("ials");
  std::atomic<int> answered{0};
  std::atomic<int> running{3};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      for (int u = t; u < t + 400; ++u) {
        RecommendRequest request;
        request.user_id = u % 3 == 0 ? fmt::format("live{}", u % 7) : User(u % 121);
        request.top_k = 5;
        if (u % 5 == 0) request.filter_categories = {Category(u % 4)};
        if (u % 11 == 0) request.context_items = {fmt::format("i{}", u % 48)};
        auto response = service->Recommend(request);
        if (!response.items.empty()) answered.fetch_add(1);
        (void)service->History(request.user_id, 5);
        (void)service->KnowsUser(request.user_id);
      }
      running.fetch_sub(1);
    });
  }
  // Events until every reader is done (at least 800).
  int e = 0;
  while (e < 800 || running.load() > 0) {
    service->AddEvent(fmt::format("live{}", e % 7), fmt::format("i{}", e % 48), 1.0f, e);
    service->AddEvent(User(e % 120), fmt::format("i{}", (e * 7) % 48), 1.0f, e);
    e += 2;
  }
  for (auto& thread : readers) thread.join();
  EXPECT_GT(answered.load(), 1000);
  EXPECT_EQ(service->n_events(), static_cast<std::size_t>(e));
  EXPECT_TRUE(service->KnowsUser("live3"));
}

TEST(RecommendationService, RejectsAMismatchedModel) {
  auto prepared = PlantedWithMetadata();
  auto model = Train("pop", prepared);
  PlantedOptions other = kOptions;
  other.items_per_block = 10;
  EXPECT_THROW(RecommendationService(model, PlantedCheckerboard(other), {}), InvalidArgument);
}

}  // namespace
}  // namespace recforge::serve
