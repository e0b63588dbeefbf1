// The `hybrid` family (issue 6): LightFM-style feature embeddings. On the planted
// checkerboard with one category per block plus planted cold items (metadata, no
// interactions), the cold items of a user's block are ranked far above random and
// reach the users' top-10; every loss reduces its training loss; batch mode gives the
// same model for any thread count; the metadata features are what the docs say.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "hybrid/hybrid.h"
#include "hybrid/item_features.h"
#include "recforge/core/error.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

using recforge::testing::PlantedCheckerboard;
using recforge::testing::PlantedItemBlock;
using recforge::testing::PlantedOptions;

constexpr int kColdPerBlock = 3;

// The planted checkerboard, every item in category "cat<block>" (and "all"), plus
// kColdPerBlock cold items per block appended to the catalog: metadata, no interactions.
struct ColdPlanted {
  PlantedOptions options;
  data::PreparedDataset prepared;
  std::size_t n_warm = 0;
  std::map<ItemIndex, int> cold_block;  // cold item -> its block
  int Block(ItemIndex item) const {
    return item < n_warm ? PlantedItemBlock(options, item) : cold_block.at(item);
  }
};

ColdPlanted MakeColdPlanted() {
  ColdPlanted out;
  out.prepared = PlantedCheckerboard(out.options);
  out.n_warm = out.prepared.items.size();
  for (std::size_t i = 0; i < out.n_warm; ++i) {
    data::ItemInfo info;
    info.item_id = out.prepared.items.id(static_cast<std::uint32_t>(i));
    info.title = fmt::format("Item {}", i);
    info.categories = {fmt::format("cat{}", PlantedItemBlock(out.options, static_cast<std::uint32_t>(i))), "all"};
    out.prepared.item_info.push_back(info);
  }
  for (int block = 0; block < out.options.blocks; ++block) {
    for (int c = 0; c < kColdPerBlock; ++c) {
      data::ItemInfo info;
      info.item_id = fmt::format("cold{}_{}", block, c);
      info.title = "A new arrival";
      info.categories = {fmt::format("cat{}", block), "all"};
      out.prepared.item_info.push_back(info);
      out.cold_block[out.prepared.items.Add(info.item_id)] = block;
    }
  }
  return out;
}

Context TwoThreads() {
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 11;
  return ctx;
}

std::unique_ptr<Recommender> Fit(const std::string& spec, const data::PreparedDataset& prepared,
                                 const Context& ctx, std::vector<double>* losses = nullptr) {
  auto model = CreateModel(spec);
  model->Fit(TrainingData::FromPrepared(prepared, ctx.threads), ctx, [&](const Recommender&, EpochReport& report) {
    if (losses != nullptr) losses->push_back(report.loss);
  });
  return model;
}

// Mean over the (non-empty) users of the AUC of their own block's cold items against
// the other blocks' cold items, and the fraction of users with an own-block cold item in
// their top-10.
struct ColdQuality {
  double auc = 0;
  double top10 = 0;
};
ColdQuality MeasureCold(const Recommender& model, const ColdPlanted& data) {
  const std::size_t n_users = data.prepared.users.size() - 1;  // the last user is empty
  std::vector<UserIndex> users(n_users);
  for (std::size_t u = 0; u < n_users; ++u) users[u] = static_cast<UserIndex>(u);
  std::vector<float> scores(n_users * model.n_items());
  model.ScoreUsers(users, scores.data());
  RecommendOptions options;
  options.k = 10;
  auto lists = model.Recommend(users, options, 2);
  ColdQuality quality;
  for (std::size_t u = 0; u < n_users; ++u) {
    const int block = testing::PlantedUserBlock(data.options, static_cast<std::uint32_t>(u));
    const float* row = scores.data() + u * model.n_items();
    double pairs = 0, wins = 0;
    for (const auto& [own, own_block] : data.cold_block) {
      if (own_block != block) continue;
      for (const auto& [other, other_block] : data.cold_block) {
        if (other_block == block) continue;
        pairs += 1;
        wins += row[own] > row[other] ? 1.0 : row[own] == row[other] ? 0.5 : 0.0;
      }
    }
    quality.auc += wins / pairs;
    bool hit = false;
    for (ItemIndex item : lists[u].items) hit = hit || (item >= data.n_warm && data.Block(item) == block);
    quality.top10 += hit ? 1.0 : 0.0;
  }
  quality.auc /= static_cast<double>(n_users);
  quality.top10 /= static_cast<double>(n_users);
  return quality;
}

TEST(Hybrid, RanksPlantedColdItemsByTheirCategory) {
  const ColdPlanted data = MakeColdPlanted();
  auto model = Fit("hybrid:factors=16,epochs=20", data.prepared, TwoThreads());
  const ColdQuality quality = MeasureCold(*model, data);
  std::cout << "planted cold items: AUC " << quality.auc << " (random 0.5), own-block cold item in top-10 for "
            << quality.top10 << " of users\n";
  EXPECT_GT(quality.auc, 0.95);
  EXPECT_GT(quality.top10, 0.9);

  // Without metadata the cold items are featureless: all score 0, AUC exactly 0.5.
  auto ids_only = Fit("hybrid:factors=16,epochs=20,categories=false,metadata=false", data.prepared, TwoThreads());
  EXPECT_DOUBLE_EQ(MeasureCold(*ids_only, data).auc, 0.5);

  // A cold item's nearest items are in its block (cosine of the materialised vectors).
  const ItemIndex cold = data.cold_block.begin()->first;
  const RankedItems similar = model->SimilarItems(cold, 5);
  ASSERT_EQ(similar.items.size(), 5u);
  for (ItemIndex item : similar.items) EXPECT_EQ(data.Block(item), data.Block(cold)) << "item " << item;
}

TEST(Hybrid, EveryLossReducesItsTrainingLoss) {
  const ColdPlanted data = MakeColdPlanted();
  for (const std::string loss : {"warp", "bpr", "warp-kos"}) {
    for (const std::string schedule : {"adagrad", "sgd"}) {
      std::vector<double> losses;
      Fit(fmt::format("hybrid:factors=16,epochs=15,loss={},learning_schedule={}", loss, schedule), data.prepared,
          TwoThreads(), &losses);
      ASSERT_EQ(losses.size(), 15u);
      EXPECT_LT(losses.back(), 0.7 * losses.front()) << loss << " / " << schedule << ": " << losses.front() << " -> "
                                                      << losses.back();
    }
  }
}

TEST(Hybrid, BatchModeGivesTheSameModelForAnyThreadCount) {
  const ColdPlanted data = MakeColdPlanted();
  Context one = TwoThreads();
  one.threads = 1;
  auto a = Fit("hybrid:factors=8,epochs=5,batch=64", data.prepared, one);
  auto b = Fit("hybrid:factors=8,epochs=5,batch=64", data.prepared, TwoThreads());
  const auto& fa = dynamic_cast<const HybridModel&>(*a);
  const auto& fb = dynamic_cast<const HybridModel&>(*b);
  EXPECT_TRUE(std::equal(fa.item_factors().begin(), fa.item_factors().end(), fb.item_factors().begin(),
                         fb.item_factors().end()));
  EXPECT_TRUE(std::equal(fa.user_factors().begin(), fa.user_factors().end(), fb.user_factors().begin(),
                         fb.user_factors().end()));
  // Another seed gives another model.
  Context other = TwoThreads();
  other.seed = 12;
  auto c = Fit("hybrid:factors=8,epochs=5,batch=64", data.prepared, other);
  const auto& fc = dynamic_cast<const HybridModel&>(*c);
  EXPECT_FALSE(std::equal(fa.item_factors().begin(), fa.item_factors().end(), fc.item_factors().begin(),
                          fc.item_factors().end()));
  // Hogwild trains too (its result may depend on thread timing).
  auto h = Fit("hybrid:factors=16,epochs=20,mode=hogwild", data.prepared, TwoThreads());
  EXPECT_GT(MeasureCold(*h, data).auc, 0.9);
}

TEST(Hybrid, ContentVectorOfAnUnseenItemSurvivesSaveLoad) {
  const ColdPlanted data = MakeColdPlanted();
  auto model = Fit("hybrid:factors=16,epochs=10", data.prepared, TwoThreads());
  const auto& hybrid = dynamic_cast<const HybridModel&>(*model);
  // "cat0", "cat1", "cat2", "cat3", "all": the titles' words are off by default.
  EXPECT_EQ(hybrid.metadata_feature_names(),
            (std::vector<std::string>{"category=all", "category=cat0", "category=cat1", "category=cat2",
                                      "category=cat3"}));
  // A cold item inside the catalog: its vector is the normalised sum of its features'.
  const ItemIndex cold = data.cold_block.begin()->first;
  const data::ItemInfo& info = data.prepared.item_info[data.n_warm + 0];
  ASSERT_EQ(info.item_id, data.prepared.items.id(cold));
  std::vector<float> vector(16);
  float bias = 0;
  ASSERT_TRUE(hybrid.ContentVector(info, vector.data(), &bias));
  for (std::size_t d = 0; d < 16; ++d) EXPECT_FLOAT_EQ(vector[d], hybrid.ItemVector(cold)[d]);
  EXPECT_FLOAT_EQ(bias, hybrid.item_bias()[cold]);
  // An item with unknown metadata has no content vector.
  data::ItemInfo stranger;
  stranger.item_id = "x";
  stranger.categories = {"unheard-of"};
  std::vector<float> none(16, 1.0f);
  float none_bias = 1.0f;
  EXPECT_FALSE(hybrid.ContentVector(stranger, none.data(), &none_bias));
  EXPECT_EQ(none, std::vector<float>(16, 0.0f));
  EXPECT_EQ(none_bias, 0.0f);

  recforge::testing::TempDir dir;
  SaveModel(*model, dir / "hybrid.bin");
  auto loaded = LoadModel(dir / "hybrid.bin");
  const auto& reloaded = dynamic_cast<const HybridModel&>(*loaded);
  std::vector<float> again(16);
  float again_bias = 0;
  ASSERT_TRUE(reloaded.ContentVector(info, again.data(), &again_bias));
  EXPECT_EQ(again, vector);
  EXPECT_EQ(again_bias, bias);
}

TEST(Hybrid, FoldInRanksTheHistorysBlockFirst) {
  const ColdPlanted data = MakeColdPlanted();
  auto model = Fit("hybrid:factors=16,epochs=20", data.prepared, TwoThreads());
  // Three items of block 2: the ad-hoc user's top-5 is block 2 (warm or cold).
  const std::vector<ItemIndex> history = {24, 25, 26};
  RecommendOptions options;
  options.k = 5;
  const RankedItems ranked = model->RecommendHistory(history, {}, options);
  ASSERT_EQ(ranked.items.size(), 5u);
  for (ItemIndex item : ranked.items) EXPECT_EQ(data.Block(item), 2) << "item " << item;
}

TEST(HybridFeatures, MetadataFieldsBecomeNamedFeatures) {
  data::ItemInfo info;
  info.title = "Star Wars (1977)";
  info.categories = {"Action", "Sci-Fi", "Action"};
  info.extra = {{"year", 1977}, {"store", "Lucasfilm"}, {"price", 12.5}, {"url", "http://x"}, {"flag", true}};
  hybrid::FeatureOptions options;
  EXPECT_EQ(hybrid::ItemFeatureNames(info, options),
            (std::vector<std::string>{"category=Action", "category=Sci-Fi", "decade=1970", "price~2^3",
                                      "store=Lucasfilm"}));
  options.title_tokens = true;
  options.metadata = false;
  EXPECT_EQ(hybrid::ItemFeatureNames(info, options),
            (std::vector<std::string>{"category=Action", "category=Sci-Fi", "title=star", "title=wars"}));
}

}  // namespace
}  // namespace recforge::models
