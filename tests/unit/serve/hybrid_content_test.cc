// The content fallback of RecommendationService scored by a `hybrid` model (issue 6):
// automatically when the served model is a hybrid, or with SetContentModel (`recforge
// serve --content-model FILE`) beside another served model. On the planted checkerboard
// with one category per block, a cold item (in the catalog, no interactions) and a
// metadata-only item (outside the training id map): the answers say fallback:content,
// stay in the context's block and reach both new items; a wrong content model is refused.
#include <gtest/gtest.h>

#include <algorithm>

#include <fmt/format.h>

#include "recforge/core/error.h"
#include "recforge/models/registry.h"
#include "recforge/serve/recommendation_service.h"
#include "testlib/planted.h"

namespace recforge::serve {
namespace {

using recforge::testing::PlantedCheckerboard;
using recforge::testing::PlantedItemBlock;
using recforge::testing::PlantedOptions;

const PlantedOptions kOptions;

// Planted + categories "cat<block>"; "cold1" (catalog item, no interactions) and "new1"
// (metadata only) are both in cat1.
data::PreparedDataset PlantedWithNewItems() {
  data::PreparedDataset prepared = PlantedCheckerboard(kOptions);
  for (std::size_t i = 0; i < prepared.items.size(); ++i) {
    data::ItemInfo info;
    info.item_id = prepared.items.id(static_cast<std::uint32_t>(i));
    info.title = fmt::format("Item {}", i);
    info.categories = {fmt::format("cat{}", PlantedItemBlock(kOptions, static_cast<std::uint32_t>(i))), "all"};
    prepared.item_info.push_back(info);
  }
  for (const char* id : {"cold1", "new1"}) {
    data::ItemInfo info;
    info.item_id = id;
    info.title = "Fresh arrival";
    info.categories = {"cat1", "all"};
    prepared.item_info.push_back(info);
  }
  prepared.items.Add("cold1");
  return prepared;
}

int Block(const std::string& id) {
  if (id == "cold1" || id == "new1") return 1;
  return PlantedItemBlock(kOptions, static_cast<std::uint32_t>(std::stoi(id.substr(1))));
}

std::shared_ptr<const models::Recommender> Train(const std::string& spec, const data::PreparedDataset& prepared) {
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 5;
  std::shared_ptr<models::Recommender> model = models::CreateModel(spec);
  model->Fit(models::TrainingData::FromPrepared(prepared, 2), ctx);
  return model;
}

bool Contains(const std::vector<RecommendedItem>& items, const std::string& id) {
  return std::any_of(items.begin(), items.end(), [&](const auto& item) { return item.item_id == id; });
}

TEST(HybridContentFallback, ServedHybridAnswersContentForNewItemsAndReachesThem) {
  auto prepared = PlantedWithNewItems();
  auto model = Train("hybrid:factors=16,epochs=20", prepared);
  const std::string block1_user = prepared.users.id(static_cast<std::uint32_t>(kOptions.users_per_block));
  ServedModelInfo info;
  info.family = "hybrid";
  RecommendationService service(model, std::move(prepared), info, FallbackOptions{}, AnnOptions{}, 2);
  EXPECT_TRUE(service.has_content_model());

  // A session on the metadata-only item: item-to-item cannot relate it (no vector in the
  // model), so the content fallback answers, from the hybrid's metadata embeddings.
  RecommendRequest session;
  session.context_items = {"new1"};
  const RecommendResponse response = service.Recommend(session);
  EXPECT_EQ(Name(response.source), "fallback:content");
  ASSERT_EQ(response.items.size(), 10u);
  for (const auto& item : response.items) EXPECT_EQ(Block(item.item_id), 1) << item.item_id;
  EXPECT_TRUE(Contains(response.items, "cold1"));
  EXPECT_FALSE(Contains(response.items, "new1"));  // the context itself

  // Similar items of the metadata-only item: its block, through the same vectors.
  const auto similar = service.SimilarItems("new1", 5);
  ASSERT_EQ(similar.size(), 5u);
  for (const auto& item : similar) EXPECT_EQ(Block(item.item_id), 1) << item.item_id;

  // A known user of block 1: the model itself ranks the cold catalog item (its vector is
  // its metadata's), so it can appear in the model answer.
  RecommendRequest user;
  user.user_id = block1_user;
  user.top_k = 10;
  const RecommendResponse personal = service.Recommend(user);
  EXPECT_EQ(Name(personal.source), "model");
  EXPECT_TRUE(Contains(personal.items, "cold1"));
}

TEST(HybridContentFallback, ContentModelBesideAnotherServedModel) {
  auto prepared = PlantedWithNewItems();
  auto served = Train("bpr:factors=16,epochs=40", prepared);
  auto hybrid = Train("hybrid:factors=16,epochs=20", prepared);
  auto other = Train("ials:factors=8,iters=3", prepared);
  ServedModelInfo info;
  info.family = "bpr";
  FallbackOptions content_first;
  content_first.chain = {Source::kContent, Source::kPopular};
  RecommendationService service(served, std::move(prepared), info, content_first, AnnOptions{}, 2);
  EXPECT_FALSE(service.has_content_model());
  EXPECT_THROW(service.SetContentModel(other), InvalidArgument);  // not a hybrid
  auto elsewhere = PlantedCheckerboard(kOptions);                // another catalog (no cold1)
  EXPECT_THROW(service.SetContentModel(Train("hybrid:factors=4,epochs=2", elsewhere)), InvalidArgument);
  service.SetContentModel(hybrid);
  EXPECT_TRUE(service.has_content_model());

  // An unknown user with a session of block-1 items: content answers, in block 1, and
  // reaches both new items (bpr alone has no vector for either).
  RecommendRequest session;
  session.context_items = {"i12", "i13", "i14"};
  const RecommendResponse response = service.Recommend(session);
  EXPECT_EQ(Name(response.source), "fallback:content");
  ASSERT_EQ(response.items.size(), 10u);
  for (const auto& item : response.items) EXPECT_EQ(Block(item.item_id), 1) << item.item_id;
  EXPECT_TRUE(Contains(response.items, "cold1"));
  EXPECT_TRUE(Contains(response.items, "new1"));
  // A category filter still holds.
  session.filter_categories = {"cat2"};
  const RecommendResponse filtered = service.Recommend(session);
  for (const auto& item : filtered.items) EXPECT_EQ(Block(item.item_id), 2) << item.item_id;
}

}  // namespace
}  // namespace recforge::serve
