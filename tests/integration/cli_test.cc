// The real recforge binary end to end: help and version, exit codes, and the
// ingest -> prepare -> describe -> export path on generated and inline data.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "testlib/testlib.h"

namespace recforge {
namespace {

using recforge::testing::RunCli;
using recforge::testing::TempDir;

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(Cli, VersionAndHelpOnEverySubcommand) {
  auto version = RunCli({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("recforge 0."), std::string::npos);
  auto help = RunCli({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("data"), std::string::npos);
  for (const char* sub : {"ingest", "prepare", "describe", "synth", "export"}) {
    auto result = RunCli({"data", sub, "--help"});
    EXPECT_EQ(result.exit_code, 0) << sub;
    EXPECT_NE(result.out.find("--"), std::string::npos) << sub;
  }
  EXPECT_EQ(RunCli({"data", "--help"}).exit_code, 0);
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCli({}).exit_code, 2);
  EXPECT_EQ(RunCli({"nonsense"}).exit_code, 2);
  EXPECT_EQ(RunCli({"data", "ingest"}).exit_code, 2);  // missing inputs and --output
  TempDir dir;
  auto file = dir.Write("r.csv", "user,item\na,b\n");
  auto bad_format = RunCli({"data", "ingest", file.string(), "-o", (dir / "d").string(), "--format", "parquet"});
  EXPECT_EQ(bad_format.exit_code, 2);
  EXPECT_NE(bad_format.err.find("movielens"), std::string::npos) << bad_format.err;  // lists allowed values
}

TEST(Cli, RuntimeErrorsExitOneWithOneLine) {
  TempDir dir;
  auto empty = dir.Write("empty.csv", "");
  auto result = RunCli({"data", "ingest", empty.string(), "-o", (dir / "d").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("empty.csv: file is empty"), std::string::npos) << result.err;
  auto not_dataset = RunCli({"data", "describe", dir.path().string()});
  EXPECT_EQ(not_dataset.exit_code, 1);
  EXPECT_NE(not_dataset.err.find("no meta.json"), std::string::npos) << not_dataset.err;
  auto bad = dir.Write("bad.csv", "user,item,rating\na,b,1\nc,d,x\ne,f,y\n");
  auto strict = RunCli({"data", "ingest", bad.string(), "-o", (dir / "d2").string(), "--max-errors", "1"});
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_NE(strict.err.find("bad.csv:4"), std::string::npos) << strict.err;
  EXPECT_NE(strict.err.find("--max-errors 1"), std::string::npos) << strict.err;
}

TEST(Cli, IngestPrepareDescribeExportRoundTrip) {
  TempDir dir;
  std::string csv = "user_id,item_id,rating,timestamp\n";
  // 6 users x 6 items, every user rates every item once; u0 rates i0 twice (dedup).
  for (int u = 0; u < 6; ++u) {
    for (int i = 0; i < 6; ++i) csv += fmt::format("u{},i{},{},{}\n", u, i, 1 + (u + i) % 5, 1000 + 10 * i + u);
  }
  csv += "u0,i0,5,2000\n";
  auto raw = dir.Write("raw.csv", csv);
  auto ingest = RunCli({"data", "ingest", raw.string(), "-o", (dir / "ds").string(), "--json", "-q"});
  ASSERT_EQ(ingest.exit_code, 0) << ingest.err;
  auto report = nlohmann::json::parse(ingest.out);
  EXPECT_EQ(report["rows"], 37);
  EXPECT_EQ(report["interactions"], 36);

  auto describe = RunCli({"data", "describe", (dir / "ds").string(), "--json"});
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  auto d = nlohmann::json::parse(describe.out);
  EXPECT_EQ(d["users"], 6);
  EXPECT_EQ(d["items"], 6);
  EXPECT_EQ(d["interactions"], 36);
  EXPECT_EQ(d["parse_errors"], 0);

  auto prepare = RunCli({"data", "prepare", (dir / "ds").string(), "-o", (dir / "prep").string(), "--split",
                         "last-n", "--last-n", "2", "--json", "-q"});
  ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
  auto prepared = nlohmann::json::parse(prepare.out);
  EXPECT_EQ(prepared["train_rows"], 24);
  EXPECT_EQ(prepared["test_rows"], 12);

  // In one step from the raw file: the same parts, byte for byte.
  auto one_step = RunCli({"data", "prepare", raw.string(), "-o", (dir / "prep1").string(), "--split", "last-n",
                          "--last-n", "2", "-q"});
  ASSERT_EQ(one_step.exit_code, 0) << one_step.err;
  for (const char* file : {"train/users.u32", "train/items.u32", "test/ratings.f32", "test/times.i64",
                           "user_ids.txt", "item_ids.txt"}) {
    EXPECT_EQ(Slurp(dir / "prep" / file), Slurp(dir / "prep1" / file)) << file;
  }
  auto mixed = RunCli({"data", "prepare", raw.string(), (dir / "ds").string(), "-o", (dir / "prep2").string()});
  EXPECT_EQ(mixed.exit_code, 2);  // a usage error
  EXPECT_NE(mixed.err.find("is a directory"), std::string::npos) << mixed.err;

  auto describe_prepared = RunCli({"data", "describe", (dir / "prep").string(), "--json"});
  ASSERT_EQ(describe_prepared.exit_code, 0) << describe_prepared.err;
  auto dp = nlohmann::json::parse(describe_prepared.out);
  EXPECT_EQ(dp["train"]["interactions"], 24);
  EXPECT_EQ(dp["test"]["interactions"], 12);
  EXPECT_EQ(dp["test"]["users"], 6);

  // Export the raw dataset and ingest it again: same content hash.
  auto exported = dir / "back.csv";
  auto export_result = RunCli({"data", "export", (dir / "ds").string(), "--format", "csv", "-o", exported.string()});
  ASSERT_EQ(export_result.exit_code, 0) << export_result.err;
  auto again = RunCli({"data", "ingest", exported.string(), "-o", (dir / "ds2").string(), "-q"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  auto meta1 = nlohmann::json::parse(Slurp(dir / "ds" / "meta.json"));
  auto meta2 = nlohmann::json::parse(Slurp(dir / "ds2" / "meta.json"));
  EXPECT_EQ(meta1["content_hash"], meta2["content_hash"]);

  auto part = RunCli({"data", "export", (dir / "prep").string(), "--part", "test", "-o", (dir / "t.tsv").string(),
                      "--format", "tsv"});
  ASSERT_EQ(part.exit_code, 0) << part.err;
  std::string tsv = Slurp(dir / "t.tsv");
  EXPECT_EQ(std::count(tsv.begin(), tsv.end(), '\n'), 13);  // header + 12 rows
}

TEST(Cli, PrepareIsByteIdenticalAcrossRunsAndThreads) {
  TempDir dir;
  auto synth = RunCli({"data", "synth", "-o", (dir / "raw").string(), "--interactions", "20000", "--users", "500",
                       "--items", "300", "-q"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  for (const char* threads : {"1", "2"}) {
    auto result = RunCli({"data", "prepare", (dir / "raw").string(), "-o", (dir / (std::string("p") + threads)).string(),
                          "--split", "random", "--min-user", "3", "--min-item", "3", "--threads", threads, "-q"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }
  for (const char* file : {"meta.json", "user_ids.txt", "item_ids.txt", "train/users.u32", "train/items.u32",
                           "train/times.i64", "test/ratings.f32", "test/meta.json"}) {
    EXPECT_EQ(Slurp(dir / "p1" / file), Slurp(dir / "p2" / file)) << file;
  }
}

}  // namespace
}  // namespace recforge
