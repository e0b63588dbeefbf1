// `data describe` statistics on hand-built datasets with exact expected numbers
// (duplicates, quantiles, histograms, raw and prepared directories) and `data export`
// text, including CSV quoting and half-star ratings.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "recforge/core/error.h"
#include "recforge/data/describe.h"
#include "recforge/data/export.h"
#include "recforge/data/text_fields.h"
#include "testlib/testlib.h"

namespace recforge::data {
namespace {

using nlohmann::json;
using recforge::testing::MakeDataset;
using recforge::testing::Row;
using recforge::testing::TempDir;

// 3 users, 4 items, 9 rows, one duplicate pair (a, x).
//   rows per user: a 3, b 2, c 4       rows per item: x 3, y 3, z 2, w 1
Dataset Fixture() {
  return MakeDataset({{"a", "x", 5, 100},
                      {"a", "y", 3.5f, 200},
                      {"a", "x", 4, 300},
                      {"b", "y", 1, 50},
                      {"b", "z", 2, 60},
                      {"c", "x", 5, 70},
                      {"c", "y", 5, 80},
                      {"c", "z", 4, 90},
                      {"c", "w", 3, 1000}});
}

// prefix + number (operator+ on a literal trips GCC 12's -Wrestrict false positive).
std::string Id(const char* prefix, int number) {
  std::string id = prefix;
  id += std::to_string(number);
  return id;
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(DescribeTest, CountsWithDuplicatePairs) {
  const Dataset d = Fixture();
  const json s = DescribeInteractions(d.interactions, d.n_users(), d.n_items(), 2);
  EXPECT_EQ(s["users"], 3);
  EXPECT_EQ(s["items"], 4);
  EXPECT_EQ(s["rows"], 9);
  EXPECT_EQ(s["interactions"], 8);  // (a, x) counted once
  EXPECT_DOUBLE_EQ(s["density"].get<double>(), 8.0 / 12.0);
}

TEST(DescribeTest, CountQuantilesInterpolateLinearly) {
  const Dataset d = Fixture();
  const json s = DescribeInteractions(d.interactions, d.n_users(), d.n_items(), 1);
  // Per user rows, sorted: 2 3 4.
  const json& u = s["per_user"];
  EXPECT_EQ(u["min"], 2);
  EXPECT_DOUBLE_EQ(u["p25"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(u["p50"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(u["p75"].get<double>(), 3.5);
  EXPECT_DOUBLE_EQ(u["p90"].get<double>(), 3.8);
  EXPECT_DOUBLE_EQ(u["p99"].get<double>(), 3.98);
  EXPECT_EQ(u["max"], 4);
  EXPECT_DOUBLE_EQ(u["mean"].get<double>(), 3.0);
  // Per item rows, sorted: 1 2 3 3.
  const json& i = s["per_item"];
  EXPECT_EQ(i["min"], 1);
  EXPECT_DOUBLE_EQ(i["p25"].get<double>(), 1.75);
  EXPECT_DOUBLE_EQ(i["p50"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(i["p75"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(i["p90"].get<double>(), 3.0);
  EXPECT_EQ(i["max"], 3);
  EXPECT_DOUBLE_EQ(i["mean"].get<double>(), 2.25);
}

TEST(DescribeTest, RatingHistogramPerDistinctValue) {
  const Dataset d = Fixture();
  const json r = DescribeInteractions(d.interactions, d.n_users(), d.n_items(), 1)["rating"];
  EXPECT_EQ(r["min"], 1.0);
  EXPECT_EQ(r["max"], 5.0);
  EXPECT_DOUBLE_EQ(r["mean"].get<double>(), 32.5 / 9);
  EXPECT_EQ(r["histogram_kind"], "values");
  const json expected = json::parse(R"([{"value": 1.0, "count": 1}, {"value": 2.0, "count": 1},
      {"value": 3.0, "count": 1}, {"value": 3.5, "count": 1}, {"value": 4.0, "count": 2},
      {"value": 5.0, "count": 3}])");
  EXPECT_EQ(r["histogram"], expected);
}

TEST(DescribeTest, RatingHistogramBinsManyDistinctValues) {
  // 21 distinct values 0..20: ten bins of width 2, the last one closed (18, 19, 20).
  std::vector<Row> rows;
  for (int k = 0; k <= 20; ++k) rows.push_back({Id("u", k), "i", static_cast<float>(k), k});
  const Dataset d = MakeDataset(rows);
  const json r = DescribeInteractions(d.interactions, d.n_users(), d.n_items(), 1)["rating"];
  EXPECT_EQ(r["histogram_kind"], "bins");
  ASSERT_EQ(r["histogram"].size(), 10u);
  for (int bin = 0; bin < 10; ++bin) {
    const json& entry = r["histogram"][static_cast<std::size_t>(bin)];
    EXPECT_DOUBLE_EQ(entry["lo"].get<double>(), 2.0 * bin);
    EXPECT_DOUBLE_EQ(entry["hi"].get<double>(), 2.0 * bin + 2);
    EXPECT_EQ(entry["count"], bin == 9 ? 3 : 2) << "bin " << bin;
  }
}

TEST(DescribeTest, TimeRangeWithIsoStrings) {
  const Dataset d = Fixture();
  const json t = DescribeInteractions(d.interactions, d.n_users(), d.n_items(), 1)["time"];
  EXPECT_EQ(t["min"], 50);
  EXPECT_EQ(t["max"], 1000);
  EXPECT_EQ(t["min_iso"], "1970-01-01T00:00:50Z");
  EXPECT_EQ(t["max_iso"], "1970-01-01T00:16:40Z");
}

TEST(DescribeTest, EmptyInteractions) {
  const json s = DescribeInteractions(Interactions{}, 3, 4, 1);
  EXPECT_EQ(s["users"], 0);
  EXPECT_EQ(s["interactions"], 0);
  EXPECT_EQ(s["density"], 0.0);
  EXPECT_TRUE(s["rating"]["histogram"].empty());
  EXPECT_TRUE(s["time"].is_null());
  EXPECT_EQ(s["per_user"]["max"], 0);
  EXPECT_NO_THROW(FormatDescription(s));
}

TEST(DescribeTest, IndexOutsideIdMapsIsAFormatError) {
  Interactions rows;
  rows.Append(5, 0, 1, 0);
  EXPECT_THROW(DescribeInteractions(rows, 3, 4, 1), FormatError);
}

TEST(DescribeTest, RawDirectoryWithParseErrors) {
  TempDir dir;
  Dataset d = Fixture();
  ErrorTally tally;
  tally.total = 3;
  tally.by_reason = {{"bad_rating", 2}, {"too_few_fields", 1}};
  d.meta = {{"kind", "raw"}, {"source", "unit-test"}, {"parse_errors", tally.ToJson()}};
  SaveDataset(d, dir / "raw");
  Context ctx;
  const json s = DescribeDirectory(dir / "raw", ctx);
  EXPECT_EQ(s["kind"], "raw");
  EXPECT_EQ(s["users"], 3);
  EXPECT_EQ(s["items"], 4);
  EXPECT_EQ(s["interactions"], 8);
  EXPECT_EQ(s["rows"], 9);
  EXPECT_EQ(s["parse_errors"], 3);
  EXPECT_EQ(s["parse_error_reasons"]["bad_rating"], 2);
  EXPECT_EQ(s["source"], "unit-test");
  EXPECT_EQ(s["per_user"]["max"], 4);

  const std::string text = FormatDescription(s);
  EXPECT_NE(text.find("8 distinct pairs (9 rows)"), std::string::npos) << text;
  EXPECT_NE(text.find("parse errors   3"), std::string::npos) << text;
  EXPECT_NE(text.find("bad_rating"), std::string::npos) << text;
  EXPECT_NE(text.find("1970-01-01T00:00:50Z .. 1970-01-01T00:16:40Z"), std::string::npos) << text;
}

TEST(DescribeTest, RawDirectoryWithoutParseErrorsReportsZero) {
  TempDir dir;
  SaveDataset(Fixture(), dir / "raw");
  Context ctx;
  const json s = DescribeDirectory(dir / "raw", ctx);
  ASSERT_TRUE(s["parse_errors"].is_number_integer());
  EXPECT_EQ(s["parse_errors"], 0);
}

PreparedDataset PreparedFixture(bool with_val) {
  const Dataset d = Fixture();
  PreparedDataset prepared;
  prepared.users = d.users;
  prepared.items = d.items;
  // train: rows 0..5 (a, b and c's first), val: c's second, test: c's last two.
  std::vector<RowIndex> train{0, 1, 2, 3, 4, 5}, val{6}, test{7, 8};
  if (!with_val) train.push_back(6);
  prepared.train = d.interactions.Gather(train);
  if (with_val) prepared.val = d.interactions.Gather(val);
  prepared.test = d.interactions.Gather(test);
  prepared.meta = {{"parameters", {{"split", "temporal"}, {"test_fraction", 0.2}}},
                   {"source_parse_errors", {{"total", 5}, {"by_reason", {{"bad_time", 5}}}}}};
  return prepared;
}

TEST(DescribeTest, PreparedDirectoryPerPart) {
  TempDir dir;
  SavePrepared(PreparedFixture(true), dir / "prep");
  Context ctx;
  const json s = DescribeDirectory(dir / "prep", ctx);
  EXPECT_EQ(s["kind"], "prepared");
  ASSERT_TRUE(s.contains("train"));
  ASSERT_TRUE(s.contains("val"));
  ASSERT_TRUE(s.contains("test"));
  EXPECT_EQ(s["train"]["users"], 3);
  EXPECT_EQ(s["train"]["items"], 3);
  EXPECT_EQ(s["train"]["rows"], 6);
  EXPECT_EQ(s["train"]["interactions"], 5);  // (a, x) twice
  EXPECT_EQ(s["train"]["parse_errors"], 0);
  EXPECT_EQ(s["val"]["users"], 1);
  EXPECT_EQ(s["val"]["interactions"], 1);
  EXPECT_EQ(s["test"]["items"], 2);
  EXPECT_EQ(s["test"]["interactions"], 2);
  // Top level: users/items present in any part, interactions summed over parts.
  EXPECT_EQ(s["users"], 3);
  EXPECT_EQ(s["items"], 4);
  EXPECT_EQ(s["interactions"], 8);
  EXPECT_EQ(s["rows"], 9);
  EXPECT_EQ(s["parse_errors"], 5);
  EXPECT_EQ(s["parameters"]["split"], "temporal");

  const std::string text = FormatDescription(s);
  EXPECT_NE(text.find("train"), std::string::npos) << text;
  EXPECT_NE(text.find("val"), std::string::npos) << text;
  EXPECT_NE(text.find("\"split\":\"temporal\""), std::string::npos) << text;
}

TEST(DescribeTest, PreparedDirectoryWithoutValidation) {
  TempDir dir;
  SavePrepared(PreparedFixture(false), dir / "prep");
  Context ctx;
  const json s = DescribeDirectory(dir / "prep", ctx);
  EXPECT_FALSE(s.contains("val"));
  EXPECT_EQ(s["train"]["rows"], 7);
  EXPECT_EQ(s["interactions"], 8);
  // A single part can be described on its own.
  const json part = DescribeDirectory(dir / "prep" / "test", ctx);
  EXPECT_EQ(part["kind"], "part");
  EXPECT_EQ(part["rows"], 2);
  EXPECT_EQ(part["parse_errors"], 0);
}

TEST(DescribeTest, NotADatasetIsAFormatError) {
  TempDir dir;
  Context ctx;
  try {
    DescribeDirectory(dir.path(), ctx);
    FAIL() << "expected FormatError";
  } catch (const FormatError& error) {
    EXPECT_NE(std::string(error.what()).find("meta.json"), std::string::npos) << error.what();
  }
}

TEST(ExportTest, CsvQuotesIdsAndPrintsShortestRatings) {
  TempDir dir;
  const Dataset d = MakeDataset({{"plain", "x", 4, 1600000000},
                                 {"a,b", "x", 3.5f, 1600000001},
                                 {"say \"hi\"", "item, \"quoted\"", 0.1f, -5}});
  ExportInteractions(d.interactions, d.users, d.items, ExportFormat::kCsv, dir / "out.csv");
  EXPECT_EQ(ReadText(dir / "out.csv"),
            "user_id,item_id,rating,timestamp\n"
            "plain,x,4,1600000000\n"
            "\"a,b\",x,3.5,1600000001\n"
            "\"say \"\"hi\"\"\",\"item, \"\"quoted\"\"\",0.1,-5\n");

  // The quoted fields read back to the original ids.
  std::ifstream in(dir / "out.csv");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields;
  for (std::size_t row = 0; std::getline(in, line); ++row) {
    ASSERT_TRUE(SplitQuoted(line, ',', fields)) << line;
    ASSERT_EQ(fields.size(), 4u);
    EXPECT_EQ(fields[0], d.users.id(d.interactions.users[row]));
    EXPECT_EQ(fields[1], d.items.id(d.interactions.items[row]));
    EXPECT_EQ(std::stof(fields[2]), d.interactions.ratings[row]);
  }
}

TEST(ExportTest, TsvHeaderAndRows) {
  TempDir dir;
  const Dataset d = MakeDataset({{"u1", "i,1", 2.5f, 10}, {"u2", "i\"2", 5, 20}});
  ExportInteractions(d.interactions, d.users, d.items, ExportFormat::kTsv, dir / "out.tsv");
  EXPECT_EQ(ReadText(dir / "out.tsv"),
            "user_id\titem_id\trating\ttimestamp\n"
            "u1\ti,1\t2.5\t10\n"
            "u2\ti\"2\t5\t20\n");
}

TEST(ExportTest, TsvRefusesIdsWithTabs) {
  TempDir dir;
  const Dataset d = MakeDataset({{"bad\tuser", "i", 1, 0}});
  try {
    ExportInteractions(d.interactions, d.users, d.items, ExportFormat::kTsv, dir / "out.tsv");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("csv"), std::string::npos) << error.what();
  }
}

TEST(ExportTest, LargeOutputCrossesBufferBoundaries) {
  // Enough rows to pass the writer's buffer boundary several times.
  std::vector<Row> rows;
  for (int k = 0; k < 60'000; ++k) {
    rows.push_back({Id("user", k % 977), Id("item", k % 1013),
                    static_cast<float>(k % 10) / 2 + 0.5f, 1'500'000'000 + k});
  }
  const Dataset d = MakeDataset(rows);
  TempDir dir;
  ExportInteractions(d.interactions, d.users, d.items, ExportFormat::kCsv, dir / "big.csv");
  std::ifstream in(dir / "big.csv");
  std::string line;
  std::getline(in, line);
  std::size_t row = 0;
  for (; std::getline(in, line); ++row) {
    const std::string expected = rows[row].user + "," + rows[row].item + "," +
                                 (rows[row].rating == static_cast<int>(rows[row].rating)
                                      ? std::to_string(static_cast<int>(rows[row].rating))
                                      : std::to_string(static_cast<int>(rows[row].rating)) + ".5") +
                                 "," + std::to_string(rows[row].time);
    ASSERT_EQ(line, expected) << "row " << row;
  }
  EXPECT_EQ(row, rows.size());
}

TEST(ExportTest, FormatNamesAndErrors) {
  EXPECT_EQ(ParseExportFormat("csv"), ExportFormat::kCsv);
  EXPECT_EQ(ParseExportFormat("tsv"), ExportFormat::kTsv);
  try {
    ParseExportFormat("xlsx");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("allowed: csv, tsv"), std::string::npos)
        << error.what();
  }
  const Dataset d = Fixture();
  EXPECT_THROW(ExportInteractions(d.interactions, d.users, d.items, ExportFormat::kCsv,
                                  "/nonexistent-dir/out.csv"),
               IoError);
}

}  // namespace
}  // namespace recforge::data
