// Synthetic generator: determinism across runs and thread counts, exact counts with no
// duplicate pairs, value ranges, learnable category structure, Zipf skew, and the
// text writers (csv, tsv, Amazon Reviews 2023 JSON lines).
#include "recforge/data/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "recforge/core/error.h"
#include "testlib/testlib.h"

namespace recforge::data {
namespace {

using nlohmann::json;
using recforge::testing::TempDir;

Dataset Generate(const SynthOptions& options, int threads = 2) {
  Context ctx;
  ctx.threads = threads;
  return Synthesize(options, ctx);
}

SynthOptions Small() {
  SynthOptions options;
  options.interactions = 30'000;
  options.users = 600;
  options.items = 800;
  options.categories = 10;
  return options;
}

std::vector<std::string> ReadLines(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> Split(const std::string& line, char delimiter) {
  std::vector<std::string> fields(1);
  for (char c : line) {
    if (c == delimiter) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

// Category index of every item (from the single category name in item_info).
std::vector<int> ItemCategories(const Dataset& dataset) {
  std::map<std::string, int> index;
  std::vector<int> out;
  for (const auto& info : dataset.item_info) {
    auto [it, inserted] = index.emplace(info.categories.at(0), static_cast<int>(index.size()));
    out.push_back(it->second);
  }
  return out;
}

TEST(SynthTest, SameOptionsGiveIdenticalOutput) {
  const Dataset a = Generate(Small());
  const Dataset b = Generate(Small());
  EXPECT_EQ(a.interactions.users, b.interactions.users);
  EXPECT_EQ(a.interactions.items, b.interactions.items);
  EXPECT_EQ(a.interactions.ratings, b.interactions.ratings);
  EXPECT_EQ(a.interactions.times, b.interactions.times);
  EXPECT_EQ(a.users.ids(), b.users.ids());
  EXPECT_EQ(a.items.ids(), b.items.ids());
  ASSERT_EQ(a.item_info.size(), b.item_info.size());
  for (std::size_t k = 0; k < a.item_info.size(); ++k) {
    EXPECT_EQ(a.item_info[k].title, b.item_info[k].title);
    EXPECT_EQ(a.item_info[k].categories, b.item_info[k].categories);
  }
}

TEST(SynthTest, ThreadCountDoesNotChangeOutput) {
  const Dataset one = Generate(Small(), 1);
  const Dataset two = Generate(Small(), 2);
  const Dataset three = Generate(Small(), 3);
  EXPECT_EQ(ContentHash(one.interactions, one.users, one.items),
            ContentHash(two.interactions, two.users, two.items));
  EXPECT_EQ(ContentHash(one.interactions, one.users, one.items),
            ContentHash(three.interactions, three.users, three.items));
}

TEST(SynthTest, DifferentSeedGivesDifferentData) {
  SynthOptions other = Small();
  other.seed = 7;
  const Dataset a = Generate(Small());
  const Dataset b = Generate(other);
  EXPECT_NE(a.interactions.items, b.interactions.items);
}

TEST(SynthTest, ExactCountDistinctPairsAndValueRanges) {
  const SynthOptions options = Small();
  const Dataset d = Generate(options);
  const Interactions& rows = d.interactions;
  ASSERT_EQ(rows.size(), options.interactions);
  ASSERT_EQ(rows.items.size(), rows.size());
  ASSERT_EQ(rows.ratings.size(), rows.size());
  ASSERT_EQ(rows.times.size(), rows.size());
  EXPECT_EQ(d.n_users(), options.users);
  EXPECT_EQ(d.n_items(), options.items);

  std::set<std::pair<UserIndex, ItemIndex>> pairs;
  std::vector<std::uint64_t> per_user(options.users, 0);
  for (std::size_t row = 0; row < rows.size(); ++row) {
    ASSERT_LT(rows.users[row], options.users);
    ASSERT_LT(rows.items[row], options.items);
    pairs.emplace(rows.users[row], rows.items[row]);
    ++per_user[rows.users[row]];
    const float rating = rows.ratings[row];
    EXPECT_TRUE(rating == 1 || rating == 2 || rating == 3 || rating == 4 || rating == 5) << rating;
    EXPECT_GE(rows.times[row], options.start_time);
    EXPECT_LT(rows.times[row], options.start_time + options.time_span);
    // Rows are grouped by user in time order, strictly increasing within a user.
    if (row > 0 && rows.users[row] == rows.users[row - 1]) {
      EXPECT_GT(rows.times[row], rows.times[row - 1]);
    } else if (row > 0) {
      EXPECT_GT(rows.users[row], rows.users[row - 1]);
    }
  }
  EXPECT_EQ(pairs.size(), options.interactions);  // no duplicate (user, item) pair
  // 30000 / 600 = 50 per user on average: everybody gets at least the minimum of 5,
  // and nobody more than half the catalogue.
  EXPECT_GE(*std::min_element(per_user.begin(), per_user.end()), 5u);
  EXPECT_LE(*std::max_element(per_user.begin(), per_user.end()), options.items / 2);
  // Activity is skewed: the busiest user has several times the median.
  std::vector<std::uint64_t> sorted = per_user;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_GT(sorted.back(), 3 * sorted[sorted.size() / 2]);

  // Ratings use the whole scale with a MovieLens-like mean.
  std::map<float, std::uint64_t> histogram;
  double sum = 0;
  for (float rating : rows.ratings) {
    ++histogram[rating];
    sum += rating;
  }
  EXPECT_EQ(histogram.size(), 5u);
  const double mean = sum / static_cast<double>(rows.size());
  EXPECT_GT(mean, 3.2);
  EXPECT_LT(mean, 4.1);
}

TEST(SynthTest, MetaIdsAndItemInfo) {
  const SynthOptions options = Small();
  const Dataset d = Generate(options);
  EXPECT_EQ(d.meta["kind"], "raw");
  EXPECT_EQ(d.meta["source"], "synth");
  EXPECT_EQ(d.meta["parameters"], options.ToJson());
  EXPECT_EQ(d.meta["parameters"]["interactions"], 30000);
  EXPECT_EQ(d.meta["parse_errors"]["total"], 0);
  EXPECT_EQ(d.users.id(0), "u0");
  EXPECT_EQ(d.users.id(599), "u599");
  EXPECT_EQ(d.items.id(17), "i17");
  ASSERT_EQ(d.item_info.size(), options.items);
  std::set<std::string> categories, titles;
  for (std::size_t k = 0; k < d.item_info.size(); ++k) {
    const ItemInfo& info = d.item_info[k];
    EXPECT_EQ(info.item_id, d.items.id(static_cast<std::uint32_t>(k)));
    EXPECT_FALSE(info.title.empty());
    ASSERT_EQ(info.categories.size(), 1u);
    categories.insert(info.categories[0]);
    titles.insert(info.title);
  }
  EXPECT_EQ(categories.size(), options.categories);
  EXPECT_GT(titles.size(), options.items / 2);  // titles are varied, not one per category
}

TEST(SynthTest, SavedDatasetRoundTrips) {
  TempDir dir;
  const Dataset d = Generate(Small());
  SaveDataset(d, dir / "synth");
  const Dataset loaded = LoadDataset(dir / "synth");
  EXPECT_EQ(loaded.interactions.items, d.interactions.items);
  EXPECT_EQ(loaded.meta["source"], "synth");
  EXPECT_EQ(loaded.item_info.size(), d.item_info.size());
}

// A user's favourite category, estimated from the first half of the user's history,
// predicts the categories of the second half far better than the category's share of
// all interactions: the structure is there to be learned, not just popularity.
TEST(SynthTest, CategoryPreferenceIsPredictiveOfLaterInteractions) {
  SynthOptions options = Small();
  options.categories = 20;
  const Dataset d = Generate(options);
  const std::vector<int> category = ItemCategories(d);
  const Interactions& rows = d.interactions;
  std::vector<double> share(options.categories, 0);
  for (ItemIndex item : rows.items)
    share[static_cast<std::size_t>(category[item])] += 1.0 / static_cast<double>(rows.size());

  double hits = 0, expected = 0, held_out = 0;
  std::size_t begin = 0;
  while (begin < rows.size()) {
    std::size_t end = begin;
    while (end < rows.size() && rows.users[end] == rows.users[begin]) ++end;
    const std::size_t middle = begin + (end - begin) / 2;
    std::vector<int> counts(options.categories, 0);
    for (std::size_t row = begin; row < middle; ++row)
      ++counts[static_cast<std::size_t>(category[rows.items[row]])];
    const auto favourite =
        static_cast<std::size_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
    for (std::size_t row = middle; row < end; ++row) {
      hits += category[rows.items[row]] == static_cast<int>(favourite) ? 1 : 0;
      expected += share[favourite];
      held_out += 1;
    }
    begin = end;
  }
  const double hit_rate = hits / held_out;
  const double base_rate = expected / held_out;
  EXPECT_GT(hit_rate, 0.25);
  EXPECT_GT(hit_rate, 4 * base_rate) << "hit rate " << hit_rate << " vs base rate " << base_rate;
}

double TopDecileShare(const Dataset& d) {
  std::vector<std::uint64_t> counts(d.n_items(), 0);
  for (ItemIndex item : d.interactions.items) ++counts[item];
  std::sort(counts.rbegin(), counts.rend());
  std::uint64_t top = 0;
  for (std::size_t k = 0; k < counts.size() / 10; ++k) top += counts[k];
  return static_cast<double>(top) / static_cast<double>(d.interactions.size());
}

TEST(SynthTest, PopularityIsZipfSkewed) {
  SynthOptions options;
  options.interactions = 40'000;
  options.users = 2'000;
  options.items = 5'000;
  const double skewed = TopDecileShare(Generate(options));
  options.zipf = 0;
  const double flat = TopDecileShare(Generate(options));
  EXPECT_GT(skewed, 0.45);  // the top 10% of items take nearly half the interactions
  EXPECT_LT(flat, 0.3);     // without Zipf only category preferences and activity skew counts
}

TEST(SynthTest, FullCatalogueForEveryUser) {
  // interactions == users * items: every pair exactly once, through the fallback path
  // for users who exhaust the popular items.
  SynthOptions options;
  options.users = 20;
  options.items = 30;
  options.interactions = 600;
  options.categories = 4;
  const Dataset d = Generate(options);
  std::set<std::pair<UserIndex, ItemIndex>> pairs;
  for (std::size_t row = 0; row < d.interactions.size(); ++row) {
    pairs.emplace(d.interactions.users[row], d.interactions.items[row]);
  }
  EXPECT_EQ(pairs.size(), 600u);
}

TEST(SynthTest, FewerInteractionsThanUsers) {
  SynthOptions options;
  options.users = 100;
  options.items = 50;
  options.interactions = 40;
  const Dataset d = Generate(options);
  ASSERT_EQ(d.interactions.size(), 40u);
  std::set<std::pair<UserIndex, ItemIndex>> pairs;
  for (std::size_t row = 0; row < d.interactions.size(); ++row) {
    pairs.emplace(d.interactions.users[row], d.interactions.items[row]);
  }
  EXPECT_EQ(pairs.size(), 40u);
  EXPECT_EQ(d.n_users(), 100u);  // users without interactions keep their ids
}

TEST(SynthTest, ZeroTimeSpanGivesOneTimestamp) {
  SynthOptions options = Small();
  options.time_span = 0;
  const Dataset d = Generate(options);
  for (Timestamp time : d.interactions.times) ASSERT_EQ(time, options.start_time);
}

TEST(SynthTest, InvalidOptionsNameTheOption) {
  auto message = [](const SynthOptions& options) {
    try {
      options.Validate();
    } catch (const InvalidArgument& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  SynthOptions options;
  options.users = 10;
  options.items = 10;
  options.interactions = 101;
  EXPECT_NE(message(options).find("'interactions'"), std::string::npos) << message(options);
  EXPECT_NE(message(options).find("10 * 10"), std::string::npos) << message(options);
  options = SynthOptions{};
  options.users = 0;
  EXPECT_NE(message(options).find("'users'"), std::string::npos);
  options = SynthOptions{};
  options.factors = 0;
  EXPECT_NE(message(options).find("'factors'"), std::string::npos);
  options = SynthOptions{};
  options.zipf = -1;
  EXPECT_NE(message(options).find("'zipf'"), std::string::npos);
  options = SynthOptions{};
  options.time_span = -5;
  EXPECT_NE(message(options).find("'time_span'"), std::string::npos);
  options = SynthOptions{};
  options.categories = 0;
  EXPECT_NE(message(options).find("'categories'"), std::string::npos);
  options = SynthOptions{};
  options.interactions = 0;
  EXPECT_NE(message(options).find("'interactions'"), std::string::npos);
  Context ctx;
  EXPECT_THROW(Synthesize(options, ctx), InvalidArgument);
  EXPECT_NO_THROW(SynthOptions{}.Validate());
}

TEST(SynthTextTest, ParseFormatNames) {
  EXPECT_EQ(ParseSynthTextFormat("csv"), SynthTextFormat::kCsv);
  EXPECT_EQ(ParseSynthTextFormat("tsv"), SynthTextFormat::kTsv);
  EXPECT_EQ(ParseSynthTextFormat("amazon-2023-jsonl"), SynthTextFormat::kAmazon2023Jsonl);
  try {
    ParseSynthTextFormat("parquet");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("'parquet'"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("csv, tsv, amazon-2023-jsonl"), std::string::npos);
  }
}

TEST(SynthTextTest, CsvMatchesSynthesizeRowForRow) {
  TempDir dir;
  const SynthOptions options = Small();
  Context ctx;
  ctx.threads = 2;
  WriteSynthText(options, SynthTextFormat::kCsv, dir / "out.csv", ctx);
  const std::vector<std::string> lines = ReadLines(dir / "out.csv");
  ASSERT_EQ(lines.size(), options.interactions + 1);
  EXPECT_EQ(lines[0], "user_id,item_id,rating,timestamp");
  const Dataset d = Generate(options, 1);
  for (std::size_t row = 0; row < d.interactions.size(); ++row) {
    const std::string expected = d.users.id(d.interactions.users[row]) + "," +
                                 d.items.id(d.interactions.items[row]) + "," +
                                 std::to_string(static_cast<int>(d.interactions.ratings[row])) +
                                 "," + std::to_string(d.interactions.times[row]);
    ASSERT_EQ(lines[row + 1], expected) << "row " << row;
  }
}

TEST(SynthTextTest, TsvHasNoHeaderAndFourFields) {
  TempDir dir;
  const SynthOptions options = Small();
  Context ctx;
  ctx.threads = 2;
  WriteSynthText(options, SynthTextFormat::kTsv, dir / "out.tsv", ctx);
  const std::vector<std::string> lines = ReadLines(dir / "out.tsv");
  ASSERT_EQ(lines.size(), options.interactions);
  for (const std::string& line : lines) {
    const std::vector<std::string> fields = Split(line, '\t');
    ASSERT_EQ(fields.size(), 4u) << line;
    EXPECT_EQ(fields[0][0], 'u');
    EXPECT_EQ(fields[1][0], 'i');
  }
  // Same bytes with one thread.
  ctx.threads = 1;
  WriteSynthText(options, SynthTextFormat::kTsv, dir / "one.tsv", ctx);
  EXPECT_EQ(ReadLines(dir / "one.tsv"), lines);
}

TEST(SynthTextTest, AmazonJsonLinesHaveTheReviewSchema) {
  TempDir dir;
  SynthOptions options;
  options.interactions = 8'000;
  options.users = 400;
  options.items = 1'000;
  Context ctx;
  ctx.threads = 2;
  WriteSynthText(options, SynthTextFormat::kAmazon2023Jsonl, dir / "reviews.jsonl", ctx);
  const std::vector<std::string> lines = ReadLines(dir / "reviews.jsonl");
  ASSERT_EQ(lines.size(), options.interactions);
  // Key order of the real files.
  EXPECT_EQ(lines[0].rfind("{\"rating\": ", 0), 0u) << lines[0];

  std::set<std::pair<std::string, std::string>> pairs;
  std::set<std::string> users, parents;
  std::size_t bytes = 0, variants = 0, quotes = 0;
  for (const std::string& line : lines) {
    bytes += line.size() + 1;
    const json review = json::parse(line);  // throws on invalid JSON / escapes
    ASSERT_TRUE(review.is_object());
    ASSERT_EQ(review.size(), 10u) << line;
    ASSERT_TRUE(review["rating"].is_number_float());
    const double rating = review["rating"].get<double>();
    EXPECT_TRUE(rating >= 1 && rating <= 5 && rating == static_cast<int>(rating)) << rating;
    ASSERT_TRUE(review["title"].is_string());
    EXPECT_FALSE(review["title"].get<std::string>().empty());
    ASSERT_TRUE(review["text"].is_string());
    EXPECT_FALSE(review["text"].get<std::string>().empty());
    quotes += review["text"].get<std::string>().find('"') != std::string::npos ? 1 : 0;
    ASSERT_TRUE(review["images"].is_array());
    EXPECT_TRUE(review["images"].empty());
    ASSERT_TRUE(review["asin"].is_string());
    ASSERT_TRUE(review["parent_asin"].is_string());
    const std::string asin = review["asin"], parent = review["parent_asin"];
    EXPECT_EQ(asin.size(), 10u);
    EXPECT_EQ(parent.size(), 10u);
    EXPECT_EQ(parent.rfind("B0", 0), 0u);
    variants += asin != parent ? 1 : 0;
    ASSERT_TRUE(review["user_id"].is_string());
    const std::string user = review["user_id"];
    EXPECT_EQ(user.size(), 28u);
    EXPECT_EQ(user[0], 'A');
    ASSERT_TRUE(review["timestamp"].is_number_integer());
    const auto millis = review["timestamp"].get<std::int64_t>();
    EXPECT_GE(millis, options.start_time * 1000);
    EXPECT_LT(millis, (options.start_time + options.time_span) * 1000);
    ASSERT_TRUE(review["helpful_vote"].is_number_integer());
    EXPECT_GE(review["helpful_vote"].get<std::int64_t>(), 0);
    ASSERT_TRUE(review["verified_purchase"].is_boolean());
    pairs.emplace(user, parent);
    users.insert(user);
    parents.insert(parent);
  }
  // Ids are unique per user / item: one review per (user, product) pair.
  EXPECT_EQ(pairs.size(), options.interactions);
  EXPECT_EQ(users.size(), options.users);
  EXPECT_LE(parents.size(), options.items);
  EXPECT_GT(variants, 0u);  // some reviews name a variant asin
  EXPECT_GT(quotes, 0u);    // escaped quotes ("12\" long") were written and parsed back
  const double mean_line = static_cast<double>(bytes) / static_cast<double>(lines.size());
  EXPECT_GT(mean_line, 400);
  EXPECT_LT(mean_line, 700);
}

TEST(SynthTextTest, UnwritablePathIsAnIoError) {
  Context ctx;
  EXPECT_THROW(WriteSynthText(Small(), SynthTextFormat::kCsv, "/nonexistent-dir/x.csv", ctx),
               IoError);
}

}  // namespace
}  // namespace recforge::data
