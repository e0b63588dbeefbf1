// Ingest of the real public datasets in ../shared/data with their exact counts
// (../shared/data/MANIFEST.md). Skipped with a message when the folder is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "recforge/data/dataset.h"
#include "recforge/data/ingest.h"
#include "testlib/testlib.h"

namespace recforge::data {
namespace {

using recforge::testing::RealData;

Dataset IngestReal(const std::vector<std::string>& relative, IngestOptions options = {}) {
  std::vector<fs::path> files;
  for (const auto& path : relative) files.push_back(RealData(path));
  Context ctx;
  ctx.threads = 2;
  return Ingest(files, options, ctx);
}

std::uint64_t Count(const Dataset& d, const char* key) { return d.meta["counts"][key].get<std::uint64_t>(); }
std::uint64_t Errors(const Dataset& d) { return d.meta["parse_errors"]["total"].get<std::uint64_t>(); }

TEST(RealDataIngest, MovieLens100k) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  Dataset d = IngestReal({"ml-100k/u.data"});
  EXPECT_EQ(d.n_users(), 943u);
  EXPECT_EQ(d.n_items(), 1682u);
  EXPECT_EQ(d.interactions.size(), 100000u);
  EXPECT_EQ(Count(d, "interactions"), 100000u);
  EXPECT_EQ(Errors(d), 0u);
  EXPECT_EQ(d.meta["sources"][0]["sha256"], "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490");
  // u.item found beside it: 1,682 titles, Latin-1 converted to UTF-8.
  ASSERT_EQ(d.item_info.size(), 1682u);
  for (const auto& item : d.item_info) EXPECT_TRUE(IsValidUtf8(item.title)) << item.item_id;
  // Index order = numeric id order, so ties broken by index = by raw id (PROTOCOL.md).
  EXPECT_EQ(d.items.id(0), "1");
  EXPECT_EQ(d.items.id(1681), "1682");
  auto minmax = std::minmax_element(d.interactions.times.begin(), d.interactions.times.end());
  EXPECT_EQ(*minmax.first, 874724710);
  EXPECT_EQ(*minmax.second, 893286638);
}

TEST(RealDataIngest, MovieLensLatestSmallCrlfHalfStars) {
  RECFORGE_REQUIRE_DATA("ml-latest-small/ratings.csv");
  Dataset d = IngestReal({"ml-latest-small/ratings.csv"});
  EXPECT_EQ(d.n_users(), 610u);
  EXPECT_EQ(d.n_items(), 9724u);
  EXPECT_EQ(d.interactions.size(), 100836u);
  EXPECT_EQ(Errors(d), 0u);
  auto minmax = std::minmax_element(d.interactions.ratings.begin(), d.interactions.ratings.end());
  EXPECT_FLOAT_EQ(*minmax.first, 0.5f);
  EXPECT_FLOAT_EQ(*minmax.second, 5.0f);
  EXPECT_EQ(d.item_info.size(), 9742u);  // movies.csv lists movies nobody rated too
}

TEST(RealDataIngest, MovieLens1mMetadataOnly) {
  RECFORGE_REQUIRE_DATA("ml-1m/movies.dat");
  ErrorTally errors;
  // ratings.dat is absent from the shared copy; the '::' metadata parser still runs.
  testing::TempDir dir;
  auto ratings = dir.Write("ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n");
  IngestOptions options;
  options.metadata.push_back(RealData("ml-1m/movies.dat"));
  Context ctx;
  Dataset d = Ingest({ratings}, options, ctx);
  EXPECT_EQ(d.item_info.size(), 3883u);
  EXPECT_EQ(d.meta["metadata_sources"][0]["errors"]["total"], 0);
}

TEST(RealDataIngest, Amazon2023BeautyBenchmarkCsv) {
  RECFORGE_REQUIRE_DATA("amazon-2023/All_Beauty.csv");
  Dataset d = IngestReal({"amazon-2023/All_Beauty.csv"});
  EXPECT_EQ(d.meta["sources"][0]["format"], "amazon-2023-csv");
  EXPECT_EQ(d.interactions.size(), 2535u);
  EXPECT_EQ(d.n_users(), 253u);
  EXPECT_EQ(d.n_items(), 356u);
  auto minmax = std::minmax_element(d.interactions.times.begin(), d.interactions.times.end());
  EXPECT_EQ(*minmax.first, 1544671031);  // milliseconds -> seconds
  EXPECT_EQ(*minmax.second, 1678171704);
}

TEST(RealDataIngest, Amazon2018FashionJsonAndGzipAgree) {
  RECFORGE_REQUIRE_DATA("amazon-2018/AMAZON_FASHION_5.json.gz");
  Dataset json = IngestReal({"amazon-2018/AMAZON_FASHION_5.json"});
  Dataset gz = IngestReal({"amazon-2018/AMAZON_FASHION_5.json.gz"});
  EXPECT_EQ(json.meta["sources"][0]["format"], "amazon-2018");
  EXPECT_EQ(json.interactions.size(), 3176u);
  EXPECT_EQ(json.n_users(), 406u);
  EXPECT_EQ(json.n_items(), 31u);
  EXPECT_EQ(Errors(json), 0u);
  std::map<float, int> histogram;
  for (float r : json.interactions.ratings) ++histogram[r];
  EXPECT_EQ(histogram[5.0f], 2158);
  EXPECT_EQ(histogram[4.0f], 471);
  EXPECT_EQ(histogram[3.0f], 337);
  EXPECT_EQ(histogram[2.0f], 93);
  EXPECT_EQ(histogram[1.0f], 117);
  EXPECT_EQ(gz.interactions.users, json.interactions.users);
  EXPECT_EQ(gz.interactions.items, json.interactions.items);
  EXPECT_EQ(gz.interactions.times, json.interactions.times);
  EXPECT_EQ(gz.meta["sources"][0]["sha256"], "5c73b65d0a5cc5dcd905b75a87086c37513ff0d023b02b381e729ab8a9541cb6");
}

TEST(RealDataIngest, Amazon2018MagazineRatingsItemFirst) {
  RECFORGE_REQUIRE_DATA("amazon-2018/Magazine_Subscriptions.csv");
  Dataset d = IngestReal({"amazon-2018/Magazine_Subscriptions.csv"});
  EXPECT_EQ(d.meta["sources"][0]["format"], "amazon-ratings-csv");
  EXPECT_EQ(d.interactions.size(), 89689u);
  EXPECT_EQ(d.n_users(), 72098u);
  EXPECT_EQ(d.n_items(), 2428u);
  EXPECT_EQ(Errors(d), 0u);
}

TEST(RealDataIngest, LastfmUserArtistsImplicitWeights) {
  RECFORGE_REQUIRE_DATA("hetrec2011-lastfm-2k/user_artists.dat");
  Dataset d = IngestReal({"hetrec2011-lastfm-2k/user_artists.dat"});
  EXPECT_EQ(d.interactions.size(), 92834u);
  EXPECT_EQ(d.n_users(), 1892u);
  EXPECT_EQ(d.n_items(), 17632u);
  EXPECT_EQ(Errors(d), 0u);
  auto minmax = std::minmax_element(d.interactions.ratings.begin(), d.interactions.ratings.end());
  EXPECT_FLOAT_EQ(*minmax.first, 1.0f);
  EXPECT_FLOAT_EQ(*minmax.second, 352698.0f);  // play counts as weights
  EXPECT_EQ(d.item_info.size(), 17632u);       // artists.dat names
}

TEST(RealDataIngest, OtherDelimitedSets) {
  RECFORGE_REQUIRE_DATA("anime-caserec/anime_ratings.dat");
  Dataset anime = IngestReal({"anime-caserec/anime_ratings.dat"});
  EXPECT_EQ(anime.interactions.size(), 419943u);
  EXPECT_EQ(anime.n_users(), 4714u);
  EXPECT_EQ(anime.n_items(), 7157u);
  Dataset books = IngestReal({"book-crossing-caserec/book_ratings.dat"});
  EXPECT_EQ(books.interactions.size(), 62656u);
  EXPECT_EQ(books.n_users(), 1295u);
  EXPECT_EQ(books.n_items(), 14684u);
  Dataset views = IngestReal({"retailrocket-caserec/view_ecommerce.dat"});
  EXPECT_EQ(views.interactions.size(), 78371u);
  EXPECT_EQ(views.n_users(), 3423u);
  EXPECT_EQ(views.n_items(), 8878u);
  // Semicolon-separated, no trailing newline, snake_case header.
  IngestOptions sessions;
  sessions.columns = ColumnSpec::Parse("user=session_id,item=item_id,time=eventdate");
  Dataset digi = IngestReal({"diginetica-cikm2016/sample_train-item-views.csv"}, sessions);
  EXPECT_EQ(digi.interactions.size(), 12391u);
  EXPECT_EQ(digi.n_users(), 2986u);
  EXPECT_EQ(digi.n_items(), 7139u);
  EXPECT_EQ(Errors(digi), 0u);
}

TEST(RealDataIngest, SeveralFilesMerge) {
  RECFORGE_REQUIRE_DATA("ml-100k/u1.base");
  Dataset d = IngestReal({"ml-100k/u1.base", "ml-100k/u1.test"});
  EXPECT_EQ(d.interactions.size(), 100000u);
  EXPECT_EQ(d.n_users(), 943u);
  EXPECT_EQ(d.n_items(), 1682u);
  EXPECT_EQ(d.meta["sources"].size(), 2u);
}

}  // namespace
}  // namespace recforge::data
