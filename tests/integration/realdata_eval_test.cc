// Evaluation on real data (ml-100k, ../shared/PROTOCOL.md): the popularity baseline's
// numbers against the peer reference, and against a straightforward recomputation
// from Recommend lists (library) and from `recforge recommend --all-users` output
// (CLI). Skipped with a message when ../shared/data is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "recforge/core/file_io.h"
#include "recforge/data/ingest.h"
#include "recforge/data/prepare.h"
#include "recforge/eval/evaluator.h"
#include "recforge/models/registry.h"
#include "testlib/movielens.h"
#include "testlib/testlib.h"

namespace recforge::eval {
namespace {

using recforge::testing::RealData;
using recforge::testing::RunCli;
using recforge::testing::TempDir;

// Peer reference for `pop` under PROTOCOL.md at K = 10 (computed by an independent
// implementation); our value must be within +-0.003.
constexpr double kPeerNdcg10 = 0.1111;
constexpr double kPeerRecall10 = 0.0593;

// Straightforward metrics from lists of item indices, written out independently of
// src/eval: binary relevance, precision = hits / K, recall = hits / |test|, NDCG with
// ideal DCG over min(K, |test|), hit rate.
struct Straightforward {
  double precision = 0, recall = 0, ndcg = 0, hit_rate = 0;
  std::size_t users = 0;
};
Straightforward Recompute(const std::map<UserIndex, std::vector<ItemIndex>>& lists,
                          const std::map<UserIndex, std::set<ItemIndex>>& test, std::size_t k) {
  Straightforward sums;
  for (const auto& [user, relevant] : test) {
    auto found = lists.find(user);
    std::vector<ItemIndex> list = found == lists.end() ? std::vector<ItemIndex>{} : found->second;
    double hits = 0, dcg = 0, ideal = 0;
    for (std::size_t r = 0; r < std::min(k, list.size()); ++r) {
      if (relevant.count(list[r])) {
        hits += 1;
        dcg += 1 / std::log2(static_cast<double>(r) + 2);
      }
    }
    for (std::size_t r = 0; r < std::min(k, relevant.size()); ++r)
      ideal += 1 / std::log2(static_cast<double>(r) + 2);
    sums.precision += hits / static_cast<double>(k);
    sums.recall += hits / static_cast<double>(relevant.size());
    sums.ndcg += dcg / ideal;
    sums.hit_rate += hits > 0 ? 1 : 0;
    ++sums.users;
  }
  const double n = static_cast<double>(sums.users);
  return {sums.precision / n, sums.recall / n, sums.ndcg / n, sums.hit_rate / n, sums.users};
}

data::PreparedDataset PrepareMl100k(int threads) {
  Context ctx;
  ctx.threads = threads;
  return recforge::testing::Ml100kProtocolSplit(ctx);
}

std::map<UserIndex, std::set<ItemIndex>> TestSets(const data::PreparedDataset& prepared) {
  std::map<UserIndex, std::set<ItemIndex>> test;
  for (std::size_t row = 0; row < prepared.test.size(); ++row) {
    test[prepared.test.users[row]].insert(prepared.test.items[row]);
  }
  return test;
}

TEST(RealDataEval, PopOnMovieLens100kMatchesPeerAndRecomputation) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  data::PreparedDataset prepared = PrepareMl100k(2);
  ASSERT_EQ(prepared.train.size(), 80'367u);
  ASSERT_EQ(prepared.test.size(), 19'633u);
  Context ctx;
  ctx.threads = 2;
  models::TrainingData training = models::TrainingData::FromPrepared(prepared, 2);
  auto pop = models::CreateModel("pop");
  pop->Fit(training, ctx);

  EvalOptions options;
  options.ks = {10};
  options.bootstrap_samples = 200;
  EvalReport report = Evaluate(*pop, prepared, options, ctx);
  EXPECT_EQ(report.protocol, "full");
  EXPECT_EQ(report.users_evaluated, 943u);
  EXPECT_EQ(report.users_skipped, 0u);
  const auto& m = report.metrics;
  EXPECT_NEAR(m.at("ndcg@10"), kPeerNdcg10, 0.003);
  EXPECT_NEAR(m.at("recall@10"), kPeerRecall10, 0.003);

  // Independent recomputation from the model's Recommend lists.
  std::vector<UserIndex> users(prepared.users.size());
  for (std::size_t u = 0; u < users.size(); ++u) users[u] = static_cast<UserIndex>(u);
  models::RecommendOptions recommend;
  recommend.k = 10;
  auto ranked = pop->Recommend(users, recommend, 1);
  std::map<UserIndex, std::vector<ItemIndex>> lists;
  for (std::size_t u = 0; u < users.size(); ++u) lists[users[u]] = ranked[u].items;
  Straightforward expected = Recompute(lists, TestSets(prepared), 10);
  EXPECT_EQ(expected.users, 943u);
  EXPECT_NEAR(m.at("precision@10"), expected.precision, 1e-6);
  EXPECT_NEAR(m.at("recall@10"), expected.recall, 1e-6);
  EXPECT_NEAR(m.at("ndcg@10"), expected.ndcg, 1e-6);
  EXPECT_NEAR(m.at("hit_rate@10"), expected.hit_rate, 1e-6);

  // The rest is present and sane; CIs bracket the means.
  EXPECT_GT(m.at("auc"), 0.8);  // popularity is a strong scorer on ml-100k
  EXPECT_LT(m.at("auc"), 1.0);
  EXPECT_GT(m.at("coverage@10"), 0);
  EXPECT_LT(m.at("coverage@10"), 0.1);  // pop recommends a few dozen hits to everybody
  EXPECT_GT(m.at("novelty@10"), 0);
  for (const auto& key : report.headline_metrics) {
    EXPECT_LE(report.confidence_intervals.at(key).first, m.at(key)) << key;
    EXPECT_GE(report.confidence_intervals.at(key).second, m.at(key)) << key;
  }
  RecordProperty("ndcg@10", std::to_string(m.at("ndcg@10")));
  RecordProperty("recall@10", std::to_string(m.at("recall@10")));
  std::cout << "ml-100k pop @10: " << report.ToJson()["metrics"].dump() << "\n";
}

TEST(RealDataEval, SampledProtocolOnMovieLens100k) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  data::PreparedDataset prepared = PrepareMl100k(2);
  Context ctx;
  ctx.threads = 2;
  models::TrainingData training = models::TrainingData::FromPrepared(prepared, 2);
  auto pop = models::CreateModel("pop");
  pop->Fit(training, ctx);
  EvalOptions options;
  options.ks = {10};
  options.protocol = Protocol::kSampled;
  options.sampled_negatives = 100;
  options.bootstrap_samples = 0;
  EvalReport sampled = Evaluate(*pop, prepared, options, ctx);
  EXPECT_EQ(sampled.protocol, "sampled:100");
  EXPECT_EQ(sampled.users_evaluated, 943u);
  // Ranking against 100 negatives is much easier than against the catalog.
  EXPECT_GT(sampled.metrics.at("hit_rate@10"), 0.6);
}

// The CLI end to end: `evaluate --json` equals a recomputation from
// `recommend --all-users` output (original ids) to 1e-6.
TEST(RealDataEval, CliEvaluateAgreesWithRecommendOutput) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  TempDir dir;
  const std::string raw = (dir / "raw").string(), prepared_dir = (dir / "prepared").string();
  const std::string model = (dir / "pop.model").string();
  ASSERT_EQ(
      RunCli({"data", "ingest", RealData("ml-100k/u.data").string(), "-o", raw, "-q"}).exit_code,
      0);
  ASSERT_EQ(RunCli({"data", "prepare", raw, "-o", prepared_dir, "--split", "ratio", "--test-ratio",
                    "0.2", "--dedup", "first", "-q"})
                .exit_code,
            0);
  auto train =
      RunCli({"train", "--dataset", prepared_dir, "--model", "pop", "--output", model, "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  auto evaluated = RunCli({"evaluate", "--model", model, "--dataset", prepared_dir, "--k", "10",
                           "--json", "--per-user", (dir / "per_user.csv").string(), "-q"});
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  nlohmann::json report = nlohmann::json::parse(evaluated.out);
  EXPECT_EQ(report["protocol"], "full");
  EXPECT_EQ(report["users_evaluated"], 943);
  EXPECT_TRUE(report["confidence_intervals"].contains("ndcg@10"));

  auto recommended = RunCli(
      {"recommend", "--model", model, "--dataset", prepared_dir, "--all-users", "--k", "10", "-q"});
  ASSERT_EQ(recommended.exit_code, 0) << recommended.err;
  // Map original ids through the prepared id files.
  data::PreparedDataset prepared = data::LoadPrepared(prepared_dir);
  std::map<UserIndex, std::vector<ItemIndex>> lists;
  std::istringstream lines(recommended.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    UserIndex user = *prepared.users.Find(line.substr(0, tab));
    std::istringstream items(line.substr(tab + 1));
    std::string item;
    while (std::getline(items, item, ',')) lists[user].push_back(*prepared.items.Find(item));
  }
  EXPECT_EQ(lists.size(), 943u);
  Straightforward expected = Recompute(lists, TestSets(prepared), 10);
  const auto& m = report["metrics"];
  EXPECT_NEAR(m["precision@10"].get<double>(), expected.precision, 1e-6);
  EXPECT_NEAR(m["recall@10"].get<double>(), expected.recall, 1e-6);
  EXPECT_NEAR(m["ndcg@10"].get<double>(), expected.ndcg, 1e-6);
  EXPECT_NEAR(m["hit_rate@10"].get<double>(), expected.hit_rate, 1e-6);

  // --per-user: a header and one row per evaluated user.
  std::string csv = ReadFileToString(dir / "per_user.csv");
  EXPECT_EQ(csv.rfind("user_id,n_relevant,precision@10,", 0), 0u) << csv.substr(0, 80);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 944);

  // A compare of a model with itself: zero difference, p = 1, exit 0.
  auto compare = RunCli({"evaluate", "--compare", model, model, "--dataset", prepared_dir, "--k",
                         "10", "--json", "--bootstrap", "100", "-q"});
  ASSERT_EQ(compare.exit_code, 0) << compare.err;
  nlohmann::json comparison = nlohmann::json::parse(compare.out);
  bool found = false;
  for (const auto& row : comparison["comparisons"]) {
    if (row["metric"] != "ndcg@10") continue;
    found = true;
    EXPECT_EQ(row["mean_difference"].get<double>(), 0.0);
    EXPECT_EQ(row["p_value"].get<double>(), 1.0);
  }
  EXPECT_TRUE(found);

  // Usage errors exit 2.
  EXPECT_EQ(
      RunCli({"evaluate", "--model", model, "--dataset", prepared_dir, "--protocol", "loo", "-q"})
          .exit_code,
      2);
  EXPECT_EQ(RunCli({"evaluate", "--model", model, "--dataset", prepared_dir, "--metrics",
                    "ndcg,bogus", "-q"})
                .exit_code,
            2);
}

TEST(RealDataEval, CliBaselinesTable) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  TempDir dir;
  const std::string raw = (dir / "raw").string(), prepared_dir = (dir / "prepared").string();
  ASSERT_EQ(
      RunCli({"data", "ingest", RealData("ml-100k/u.data").string(), "-o", raw, "-q"}).exit_code,
      0);
  ASSERT_EQ(RunCli({"data", "prepare", raw, "-o", prepared_dir, "--split", "ratio", "--test-ratio",
                    "0.2", "--dedup", "first", "-q"})
                .exit_code,
            0);
  auto result =
      RunCli({"baselines", "--dataset", prepared_dir, "--baseline", "pop,random", "--json", "-q"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  nlohmann::json out = nlohmann::json::parse(result.out);
  ASSERT_EQ(out["baselines"].size(), 2u);
  std::map<std::string, double> ndcg;
  for (const auto& row : out["baselines"])
    ndcg[row["family"]] = row["metrics"]["ndcg@10"].get<double>();
  EXPECT_NEAR(ndcg["pop"], kPeerNdcg10, 0.003);
  EXPECT_LT(ndcg["random"], ndcg["pop"]);
  EXPECT_EQ(
      RunCli({"baselines", "--dataset", prepared_dir, "--baseline", "nonsense", "-q"}).exit_code,
      2);
}

}  // namespace
}  // namespace recforge::eval
