// Parser tests on small inline fixtures: every format, every malformed-line reason,
// CRLF, Latin-1, quoted CSV fields, gzip (whole, concatenated and truncated).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "recforge/core/error.h"
#include "recforge/data/ingest.h"
#include "testlib/testlib.h"

namespace recforge::data {
namespace {

using recforge::testing::TempDir;

Dataset IngestFiles(const std::vector<fs::path>& files, IngestOptions options = {}, int threads = 2) {
  Context ctx;
  ctx.threads = threads;
  return Ingest(files, options, ctx);
}

std::uint64_t ErrorCount(const Dataset& dataset, const std::string& reason) {
  const auto& by = dataset.meta["parse_errors"]["by_reason"];
  return by.contains(reason) ? by[reason].get<std::uint64_t>() : 0;
}

std::uint64_t TotalErrors(const Dataset& dataset) {
  return dataset.meta["parse_errors"]["total"].get<std::uint64_t>();
}

// (user id, item id, rating, time) of row k, with original ids.
std::tuple<std::string, std::string, float, std::int64_t> RowAt(const Dataset& d, std::size_t k) {
  return {d.users.id(d.interactions.users[k]), d.items.id(d.interactions.items[k]), d.interactions.ratings[k],
          d.interactions.times[k]};
}

TEST(IngestMovieLens, UDataTabSeparatedWithNumericOrderAndMetadata) {
  TempDir dir;
  auto data = dir.Write("u.data", "196\t242\t3\t881250949\n10\t302\t3\t891717742\n22\t377\t1\t878887116\n");
  // u.item: '|'-separated, Latin-1 title (0xE9 = e-acute), 19 genre flags.
  std::string genres_comedy = "0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0";
  dir.Write("u.item", "242|Kolya (1996)|24-Jan-1997||http://x|" + genres_comedy + "\n" +
                          "302|L.A. Confidential (1997)|01-Jan-1997||http://y|0|0|0|0|0|0|1|0|0|0|0|0|0|1|0|0|1|0|0\n" +
                          "377|Caf\xe9 (1994)|01-Jan-1994||http://z|" + genres_comedy + "\n");
  Dataset d = IngestFiles({data});
  ASSERT_EQ(d.interactions.size(), 3u);
  // Ids are numbered in numeric order, not file order.
  EXPECT_EQ(d.users.ids(), (std::vector<std::string>{"10", "22", "196"}));
  EXPECT_EQ(d.items.ids(), (std::vector<std::string>{"242", "302", "377"}));
  EXPECT_EQ(RowAt(d, 0), std::make_tuple(std::string("196"), std::string("242"), 3.0f, std::int64_t{881250949}));
  EXPECT_EQ(d.meta["sources"][0]["format"], "movielens");
  ASSERT_EQ(d.item_info.size(), 3u);
  EXPECT_EQ(d.item_info[0].title, "Kolya (1996)");
  EXPECT_EQ(d.item_info[0].categories, std::vector<std::string>{"Comedy"});
  EXPECT_EQ(d.item_info[0].extra["year"], 1996);
  EXPECT_EQ(d.item_info[1].categories, (std::vector<std::string>{"Crime", "Mystery", "Thriller"}));
  EXPECT_EQ(d.item_info[2].title, "Caf\xc3\xa9 (1994)");  // converted to UTF-8
}

TEST(IngestMovieLens, RatingsDatDoubleColonWithMoviesDat) {
  TempDir dir;
  auto data = dir.Write("ratings.dat", "1::1193::5::978300760\r\n1::661::3::978302109\r\n2::1193::4::978300275\r\n");
  dir.Write("movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n");
  Dataset d = IngestFiles({data});
  ASSERT_EQ(d.interactions.size(), 3u);
  EXPECT_EQ(TotalErrors(d), 0u);
  EXPECT_EQ(d.items.ids(), (std::vector<std::string>{"661", "1193"}));
  ASSERT_EQ(d.item_info.size(), 2u);
  EXPECT_EQ(d.item_info[0].item_id, "1193");  // sorted by id string
  EXPECT_EQ(d.item_info[1].categories, (std::vector<std::string>{"Animation", "Children's", "Musical"}));
}

TEST(IngestMovieLens, RatingsCsvWithQuotedMoviesCsvAndCrlf) {
  TempDir dir;
  auto data = dir.Write("ratings.csv", "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,3.5,964981247\r\n");
  dir.Write("movies.csv",
            "movieId,title,genres\r\n1,Toy Story (1995),Adventure|Animation\r\n3,\"American President, The (1995)\",Comedy|Drama|Romance\r\n");
  Dataset d = IngestFiles({data});
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_EQ(TotalErrors(d), 0u);
  EXPECT_FLOAT_EQ(d.interactions.ratings[1], 3.5f);
  ASSERT_EQ(d.item_info.size(), 2u);
  EXPECT_EQ(d.item_info[1].title, "American President, The (1995)");
  EXPECT_EQ(d.item_info[1].categories.size(), 3u);
}

TEST(IngestAmazon2023, JsonlMillisecondsParentAsinFallbackAndMeta) {
  TempDir dir;
  std::string lines =
      R"({"rating": 5.0, "title": "Great", "text": "Loved it, \"really\"", "images": [], "asin": "B00A", "parent_asin": "B00P", "user_id": "AEU1", "timestamp": 1588687728923, "helpful_vote": 2, "verified_purchase": true})"
      "\n"
      R"({"rating": 3.0, "asin": "B00B", "user_id": "AEU2", "timestamp": 1588687000000, "verified_purchase": false, "helpful_vote": 0})"
      "\n";
  auto data = dir.Write("All_Beauty.jsonl", lines);
  dir.Write("meta_All_Beauty.jsonl",
            R"({"main_category": "All Beauty", "title": "Shampoo", "average_rating": 4.5, "rating_number": 10, "categories": ["Hair Care"], "store": "Acme", "price": null, "parent_asin": "B00P"})"
            "\n");
  Dataset d = IngestFiles({data});
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_EQ(RowAt(d, 0), std::make_tuple(std::string("AEU1"), std::string("B00P"), 5.0f, std::int64_t{1588687728}));
  EXPECT_EQ(std::get<1>(RowAt(d, 1)), "B00B");  // no parent_asin: asin
  EXPECT_EQ(d.meta["sources"][0]["format"], "amazon-2023");
  ASSERT_EQ(d.item_info.size(), 1u);
  EXPECT_EQ(d.item_info[0].title, "Shampoo");
  EXPECT_EQ(d.item_info[0].categories, (std::vector<std::string>{"All Beauty", "Hair Care"}));
  EXPECT_EQ(d.item_info[0].extra["store"], "Acme");
  EXPECT_FALSE(d.item_info[0].extra.contains("price"));
}

TEST(IngestAmazon2023, GzipJsonlAndMalformedLines) {
  TempDir dir;
  std::string lines =
      R"({"rating": 4.0, "parent_asin": "B01", "user_id": "U1", "timestamp": 1600000000000})"
      "\n{not json}\n"
      R"({"rating": 4.0, "parent_asin": "B01", "timestamp": 1600000000000})"
      "\n"
      R"({"rating": "x", "parent_asin": "B01", "user_id": "U3", "timestamp": 1600000000000})"
      "\n"
      R"({"rating": 2.0, "parent_asin": "B02", "user_id": "", "timestamp": 1600000000000})"
      "\n";
  auto path = dir / "reviews.jsonl.gz";
  recforge::testing::WriteGzip(path, lines);
  Dataset d = IngestFiles({path}, {}, 1);
  EXPECT_EQ(d.interactions.size(), 1u);
  EXPECT_EQ(ErrorCount(d, "invalid_json"), 1u);
  EXPECT_EQ(ErrorCount(d, "missing_field"), 1u);
  EXPECT_EQ(ErrorCount(d, "bad_rating"), 1u);
  EXPECT_EQ(ErrorCount(d, "empty_user"), 1u);
  EXPECT_EQ(TotalErrors(d), 4u);
  // Examples name file and line.
  EXPECT_EQ(d.meta["parse_errors"]["examples"][0], path.string() + ":2: invalid JSON");
}

TEST(IngestAmazon2023, BenchmarkCsvMilliseconds) {
  TempDir dir;
  auto data = dir.Write("All_Beauty.csv",
                        "user_id,parent_asin,rating,timestamp\nAHZ,B07,5.0,1544671031249\nAHZ,B08,4.0,1678171704867\n");
  Dataset d = IngestFiles({data});
  EXPECT_EQ(d.meta["sources"][0]["format"], "amazon-2023-csv");
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_EQ(d.interactions.times[0], 1544671031);
}

TEST(IngestAmazon2018, ReviewJsonWithStringVote) {
  TempDir dir;
  auto data = dir.Write("AMAZON_FASHION_5.json",
                        R"({"overall": 5.0, "vote": "2", "verified": true, "reviewTime": "09 4, 2015", "reviewerID": "A2HDTDZZK1V6F4", "asin": "B000K2PJ4K", "style": {"Size:": " Big Boys"}, "unixReviewTime": 1441324800})"
                        "\n"
                        R"({"overall": 2.0, "reviewerID": "A1", "asin": "B000K2PJ4K", "unixReviewTime": 1441324801})"
                        "\n");
  Dataset d = IngestFiles({data});
  EXPECT_EQ(d.meta["sources"][0]["format"], "amazon-2018");
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_EQ(RowAt(d, 0), std::make_tuple(std::string("A2HDTDZZK1V6F4"), std::string("B000K2PJ4K"), 5.0f,
                                         std::int64_t{1441324800}));
}

TEST(IngestAmazon2018, RatingsCsvItemFirst) {
  TempDir dir;
  auto data = dir.Write("Magazine_Subscriptions.csv", "B00005N7P0,AH2IFH762VY5U,5.0,1005177600\nB00005N7OJ,A3ANI4VN3BZ2L1,1.0,1135555200\n");
  Dataset d = IngestFiles({data});
  EXPECT_EQ(d.meta["sources"][0]["format"], "amazon-ratings-csv");
  EXPECT_EQ(RowAt(d, 0), std::make_tuple(std::string("AH2IFH762VY5U"), std::string("B00005N7P0"), 5.0f,
                                         std::int64_t{1005177600}));
  // Forcing the format works the same.
  IngestOptions forced;
  forced.format = InputFormat::kAmazonRatingsCsv;
  EXPECT_EQ(IngestFiles({data}, forced).interactions.size(), 2u);
}

TEST(IngestNetflix, GroupLinesAcrossPiecesAndFilesWithTitles) {
  TempDir dir;
  std::string first = "1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n2:\n885013,4,2005-10-19\n";
  std::string second = "3:\n1488844,4,2004-01-01\n3,x,2004-01-01\n4,3,2004-13-01\n";
  auto a = dir.Write("combined_data_1.txt", first);
  auto b = dir.Write("combined_data_2.txt", second);
  dir.Write("movie_titles.txt", "1,2003,Dinosaur Planet\n2,2004,Isle of Man TT 2004 Review\n3,NULL,Character, The, Part 2\n");
  for (int threads : {1, 2, 4}) {
    Dataset d = IngestFiles({a, b}, {}, threads);
    ASSERT_EQ(d.interactions.size(), 4u) << threads;
    EXPECT_EQ(RowAt(d, 2), std::make_tuple(std::string("885013"), std::string("2"), 4.0f,
                                           std::int64_t{DaysFromCivil(2005, 10, 19) * 86400}));
    EXPECT_EQ(std::get<1>(RowAt(d, 3)), "3");
    EXPECT_EQ(ErrorCount(d, "bad_rating"), 1u);
    EXPECT_EQ(ErrorCount(d, "bad_time"), 1u);
    ASSERT_EQ(d.item_info.size(), 3u);
    EXPECT_EQ(d.item_info[2].title, "Character, The, Part 2");
    EXPECT_FALSE(d.item_info[2].extra.contains("year"));
  }
}

TEST(IngestNetflix, RowBeforeAnyHeaderIsCounted) {
  TempDir dir;
  IngestOptions options;
  options.format = InputFormat::kNetflix;
  auto data = dir.Write("part.txt", "5,3,2005-01-01\n7:\n6,4,2005-01-02\n");
  Dataset d = IngestFiles({data}, options, 1);
  EXPECT_EQ(d.interactions.size(), 1u);
  EXPECT_EQ(ErrorCount(d, "row_before_group_header"), 1u);
}

TEST(IngestCsv, RecognisedHeaderImplicitWeights) {
  TempDir dir;
  // Last.fm user_artists.dat: tab, header userID artistID weight, CRLF.
  auto data = dir.Write("user_artists.dat", "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n");
  Dataset d = IngestFiles({data});
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_FLOAT_EQ(d.interactions.ratings[0], 13883.0f);
  EXPECT_EQ(d.interactions.times[0], 0);
  EXPECT_EQ(d.meta["sources"][0]["format"], "csv");
}

TEST(IngestCsv, NoRatingColumnMeansWeightOne) {
  TempDir dir;
  auto data = dir.Write("views.csv", "user_id,item_id\nu1,i1\nu2,i1\n");
  Dataset d = IngestFiles({data});
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_FLOAT_EQ(d.interactions.ratings[1], 1.0f);
  EXPECT_TRUE(d.meta["implicit"].get<bool>());
}

TEST(IngestCsv, ExplicitColumnsByNameAndIndexWithTimeFormats) {
  TempDir dir;
  auto data = dir.Write("events.txt", "sessionId;userId;eventdate;itemId\n1;NA;2016-05-09;81766\n2;NA;2016-05-10;31331\n");
  IngestOptions by_name;
  by_name.columns = ColumnSpec::Parse("user=sessionId,item=itemId,time=eventdate");
  by_name.time_format = TimeFormat::kDate;
  Dataset d = IngestFiles({data}, by_name);
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_EQ(d.users.ids(), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(d.interactions.times[0], DaysFromCivil(2016, 5, 9) * 86400);

  auto no_header = dir.Write("plain.tsv", "a\t2020-01-02T03:04:05Z\tx\t4\n");
  IngestOptions by_index;
  by_index.columns = ColumnSpec::Parse("user=0,item=2,rating=3,time=1");
  by_index.has_header = false;
  by_index.time_format = TimeFormat::kIso8601;
  Dataset e = IngestFiles({no_header}, by_index);
  ASSERT_EQ(e.interactions.size(), 1u);
  EXPECT_EQ(e.interactions.times[0], DaysFromCivil(2020, 1, 2) * 86400 + 3 * 3600 + 4 * 60 + 5);
  EXPECT_FLOAT_EQ(e.interactions.ratings[0], 4.0f);
}

TEST(IngestCsv, QuotedFieldsAndEveryMalformedReason) {
  TempDir dir;
  auto data = dir.Write("r.csv",
                        "user,item,rating,timestamp\n"
                        "\"u,1\",\"i \"\"q\"\"\",4,100\n"  // quoted, with comma and escaped quote
                        "u2,i2,4\n"                         // wrong_field_count
                        ",i3,4,100\n"                       // empty_user
                        "u4,,4,100\n"                       // empty_item
                        "u5,i5,abc,100\n"                   // bad_rating
                        "u6,i6,4,yesterday\n"               // bad_time
                        "\"u7,i7,4,100\n"                   // bad_quotes
                        "\n"                                // blank: skipped, not an error
                        "u8,i8,5,200\n");
  Dataset d = IngestFiles({data});
  ASSERT_EQ(d.interactions.size(), 2u);
  EXPECT_EQ(d.users.id(d.interactions.users[0]), "u,1");
  EXPECT_EQ(d.items.id(d.interactions.items[0]), "i \"q\"");
  for (const char* reason : {"wrong_field_count", "empty_user", "empty_item", "bad_rating", "bad_time", "bad_quotes"}) {
    EXPECT_EQ(ErrorCount(d, reason), 1u) << reason;
  }
  EXPECT_EQ(TotalErrors(d), 6u);
  EXPECT_EQ(d.meta["sources"][0]["rows"], 2);
  EXPECT_EQ(d.meta["parse_errors"]["examples"][0], data.string() + ":3: wrong number of fields");
}

TEST(IngestCsv, MaxErrorsAbortsWithMessage) {
  TempDir dir;
  auto data = dir.Write("r.csv", "user,item,rating\nu1,i1,4\nu2,i2,x\nu3,i3,y\n");
  IngestOptions strict;
  strict.max_errors = 0;
  try {
    IngestFiles({data}, strict);
    FAIL() << "expected FormatError";
  } catch (const FormatError& error) {
    EXPECT_NE(std::string(error.what()).find("exceed --max-errors 0"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("r.csv:3"), std::string::npos) << error.what();
  }
  IngestOptions tolerant;
  tolerant.max_errors = 2;
  EXPECT_EQ(IngestFiles({data}, tolerant).interactions.size(), 1u);
}

TEST(IngestErrors, EmptyUnreadableUnrecognisedFiles) {
  TempDir dir;
  auto empty = dir.Write("empty.csv", "");
  EXPECT_THROW(IngestFiles({empty}), FormatError);
  auto blank = dir.Write("blank.csv", "\n\n");
  EXPECT_THROW(IngestFiles({blank}), FormatError);
  EXPECT_THROW(IngestFiles({dir / "missing.csv"}), IoError);
  EXPECT_THROW(IngestFiles({dir.path()}), IoError);
  auto binary = dir.Write("blob.bin", std::string("\x01\x02\0\x03", 4));
  EXPECT_THROW(IngestFiles({binary}), FormatError);
  auto json = dir.Write("other.jsonl", "{\"a\": 1}\n");
  try {
    IngestFiles({json});
    FAIL();
  } catch (const FormatError& error) {
    EXPECT_NE(std::string(error.what()).find("unrecognised JSON lines"), std::string::npos);
  }
  auto all_bad = dir.Write("bad.csv", "user,item,rating\nu1,i1,x\n");
  EXPECT_THROW(IngestFiles({all_bad}), FormatError);  // no valid interactions
}

TEST(IngestGzip, TruncatedStreamKeepsCompleteLinesAndCounts) {
  TempDir dir;
  std::string content;
  // fmt rather than "u" + std::to_string(...): GCC 12 warns falsely (-Wrestrict) there.
  for (int k = 0; k < 20000; ++k) content += fmt::format("u{}\ti{}\t4\t1000\n", k % 97, k);
  auto whole = dir / "whole.tsv.gz";
  recforge::testing::WriteGzip(whole, content);
  Dataset full = IngestFiles({whole});
  EXPECT_EQ(full.interactions.size(), 20000u);
  EXPECT_EQ(TotalErrors(full), 0u);

  std::string bytes = ReadFileToString(whole);  // decompresses transparently
  EXPECT_EQ(bytes, content);
  // Cut the compressed file in half.
  std::string raw;
  {
    std::ifstream in(whole, std::ios::binary);
    raw.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto cut = dir.Write("cut.tsv.gz", raw.substr(0, raw.size() / 2));
  Dataset partial = IngestFiles({cut});
  EXPECT_GT(partial.interactions.size(), 0u);
  EXPECT_LT(partial.interactions.size(), 20000u);
  EXPECT_EQ(ErrorCount(partial, "truncated_gzip"), 1u);
  // Every kept row is a complete, correct line of the original.
  for (std::size_t k = 0; k < partial.interactions.size(); ++k) {
    EXPECT_FLOAT_EQ(partial.interactions.ratings[k], 4.0f);
    EXPECT_EQ(partial.interactions.times[k], 1000);
  }
}

TEST(IngestGzip, ConcatenatedMembers) {
  TempDir dir;
  auto a = dir / "a.gz";
  auto b = dir / "b.gz";
  recforge::testing::WriteGzip(a, "u1\ti1\t1\t5\n");
  recforge::testing::WriteGzip(b, "u2\ti2\t2\t6\n");
  std::string joined;
  for (const auto& path : {a, b}) {
    std::ifstream in(path, std::ios::binary);
    joined.append(std::istreambuf_iterator<char>(in), {});
  }
  auto both = dir.Write("both.tsv.gz", joined);
  EXPECT_EQ(IngestFiles({both}).interactions.size(), 2u);
}

TEST(IngestMerge, SeveralFilesShareIdsAndThreadCountDoesNotMatter) {
  TempDir dir;
  std::string a, b;
  for (int k = 0; k < 5000; ++k) a += std::to_string(k % 300) + "\t" + std::to_string((k * 7) % 1000) + "\t3\t" + std::to_string(k) + "\n";
  for (int k = 0; k < 5000; ++k) b += "user" + std::to_string(k % 50) + "\t" + std::to_string(k % 20) + "\t5\t" + std::to_string(k) + "\n";
  auto fa = dir.Write("a.tsv", a);
  auto fb = dir.Write("b.tsv", b);
  IngestOptions small_blocks;
  small_blocks.block_bytes = 1 << 16;  // many blocks
  Dataset one = IngestFiles({fa, fb}, small_blocks, 1);
  Dataset four = IngestFiles({fa, fb}, small_blocks, 4);
  EXPECT_EQ(one.interactions.size(), 10000u);
  EXPECT_EQ(one.users.ids(), four.users.ids());
  EXPECT_EQ(one.items.ids(), four.items.ids());
  EXPECT_EQ(one.interactions.users, four.interactions.users);
  EXPECT_EQ(one.interactions.items, four.interactions.items);
  EXPECT_EQ(one.interactions.times, four.interactions.times);
  // Numbers first (numeric order), then other ids bytewise.
  EXPECT_EQ(one.users.id(0), "0");
  EXPECT_EQ(one.users.id(299), "299");
  EXPECT_EQ(one.users.id(300), "user0");
  EXPECT_EQ(one.meta["sources"].size(), 2u);
}

TEST(IngestOptionsParsing, ErrorsListAllowedValues) {
  EXPECT_THROW(ParseInputFormat("parquet"), InvalidArgument);
  try {
    ParseInputFormat("parquet");
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("movielens"), std::string::npos);
  }
  EXPECT_THROW(ColumnSpec::Parse("user=1"), InvalidArgument);
  EXPECT_THROW(ColumnSpec::Parse("who=1,item=2"), InvalidArgument);
  EXPECT_EQ(ColumnSpec::Parse("user=a, item=b ,rating=c,time=d").time, "d");
}

TEST(IngestCsv, UnknownHeaderNeedsColumns) {
  TempDir dir;
  auto data = dir.Write("x.csv", "foo,bar\n1,2\n");
  IngestOptions header;
  header.has_header = true;
  EXPECT_THROW(IngestFiles({data}, header), FormatError);
  IngestOptions bad_column;
  bad_column.columns = ColumnSpec::Parse("user=foo,item=nope");
  EXPECT_THROW(IngestFiles({data}, bad_column), InvalidArgument);
}

}  // namespace
}  // namespace recforge::data
