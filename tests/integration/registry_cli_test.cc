// The model registry through the real CLI: `recforge models register | list | show |
// alias | delete-alias | promote` against a tracking store built with the Store API
// (runs with a "model" artifact and an ndcg@10 / rmse metric) in a temp directory.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "recforge/tracking/store.h"
#include "testlib/testlib.h"

namespace recforge {
namespace {

using recforge::testing::CommandResult;
using recforge::testing::RunCli;
using recforge::testing::TempDir;
namespace fs = std::filesystem;

class RegistryCli : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "tracking");
    store_ = std::make_unique<tracking::Store>(tracking::TrackingLocation::Resolve(uri()));
  }

  std::string uri() const { return (dir_ / "tracking").string(); }
  tracking::Store& store() { return *store_; }
  const TempDir& dir() const { return dir_; }

  // A finished run whose "model" artifact is `model_file` (model.bin) with `metrics`.
  std::string MakeRun(const fs::path& model_file, const std::map<std::string, double>& metrics) {
    tracking::RunStart start;
    start.experiment = "registry-test";
    auto run = store_->StartRun(start);
    store_->LogArtifact(run.id, model_file, "model.bin", "model");
    for (const auto& [key, value] : metrics) store_->LogMetric(run.id, key, value);
    store_->EndRun(run.id, tracking::RunStatus::kFinished);
    return run.id;
  }
  // The same with a small file of its own as the model.
  std::string MakeRun(const std::map<std::string, double>& metrics) {
    ++files_;
    auto file = dir_.Write(fmt::format("model-{}.bin", files_), fmt::format("model bytes #{}\n", files_));
    return MakeRun(file, metrics);
  }

  // Runs `recforge models ARGS... --tracking-uri URI`.
  CommandResult Models(std::vector<std::string> args) {
    args.insert(args.begin(), "models");
    args.push_back("--tracking-uri");
    args.push_back(uri());
    return RunCli(args);
  }

  // `models show REF --json`, parsed.
  nlohmann::json Show(const std::string& reference) {
    auto result = Models({"show", reference, "--json"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out);
  }

  std::string Register(const std::string& run_id, const std::string& name) {
    auto result = Models({"register", "--run", run_id, "--name", name});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  }

 private:
  TempDir dir_;
  std::unique_ptr<tracking::Store> store_;
  int files_ = 0;
};

void Corrupt(const fs::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << "tampered";
}

TEST_F(RegistryCli, HelpOnEverySubcommand) {
  for (const char* sub : {"register", "list", "show", "alias", "delete-alias", "promote"}) {
    auto result = RunCli({"models", sub, "--help"});
    EXPECT_EQ(result.exit_code, 0) << sub;
    EXPECT_NE(result.out.find("--tracking-uri"), std::string::npos) << sub;
  }
  EXPECT_EQ(RunCli({"models", "register", "--name", "x"}).exit_code, 2);  // --run is required
}

TEST_F(RegistryCli, RegisterTrainedModelTwiceGivesVersionsOneAndTwo) {
  // A real model file: synth -> prepare -> train pop.
  auto synth = RunCli({"data", "synth", "-o", (dir() / "raw").string(), "--interactions", "3000", "--users", "200",
                       "--items", "100", "-q"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  auto prepare = RunCli({"data", "prepare", (dir() / "raw").string(), "-o", (dir() / "prep").string(), "-q"});
  ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
  // A tracked train run logs its model file as an artifact of kind "model".
  auto train = RunCli({"train", "-d", (dir() / "prep").string(), "--model", "pop", "-o",
                       (dir() / "pop.bin").string(), "--tracking-uri", uri(), "--experiment", "train", "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  tracking::RunQuery query;
  query.experiment = "train";
  auto trained = store().ListRuns(query);
  ASSERT_EQ(trained.size(), 1u);
  const std::string run1 = trained[0].id;
  store().LogMetric(run1, "ndcg@10", 0.12);
  auto run2 = MakeRun({{"ndcg@10", 0.15}, {"recall@10", 0.2}});
  EXPECT_EQ(Register(run1, "recs"), "registered recs version 1\n");
  // A unique run-id prefix is enough; --json gives the version record.
  auto second = Models({"register", "--run", run2.substr(0, 10), "--name", "recs", "--description", "second", "--json"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto version = nlohmann::json::parse(second.out);
  EXPECT_EQ(version["version"], 2);
  EXPECT_EQ(version["run_id"], run2);
  EXPECT_EQ(version["description"], "second");
  EXPECT_EQ(version["sha256"].get<std::string>().size(), 64u);

  auto list = Models({"list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto models = nlohmann::json::parse(list.out);
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0]["name"], "recs");
  EXPECT_EQ(models[0]["latest_version"], 2);
  auto text_list = Models({"list"});
  EXPECT_NE(text_list.out.find("recs"), std::string::npos) << text_list.out;

  auto shown = Show("recs");
  ASSERT_EQ(shown["versions"].size(), 2u);
  EXPECT_EQ(shown["versions"][0]["run_id"], run1);
  EXPECT_EQ(shown["versions"][0]["size"], fs::file_size(dir() / "pop.bin"));
  EXPECT_DOUBLE_EQ(shown["versions"][0]["metrics"]["ndcg@10"].get<double>(), 0.12);
  EXPECT_DOUBLE_EQ(shown["versions"][1]["metrics"]["recall@10"].get<double>(), 0.2);
  auto text = Models({"show", "recs"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("ndcg@10=0.12"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(version["sha256"].get<std::string>().substr(0, 12)), std::string::npos) << text.out;

  auto unknown_run = Models({"register", "--run", "ffffffffffff", "--name", "recs"});
  EXPECT_EQ(unknown_run.exit_code, 1);
}

TEST_F(RegistryCli, AliasesResolveAndDelete) {
  auto run1 = MakeRun({{"ndcg@10", 0.1}});
  auto run2 = MakeRun({{"ndcg@10", 0.2}});
  Register(run1, "recs");
  Register(run2, "recs");
  auto production = Models({"alias", "recs", "production", "--version", "1"});
  ASSERT_EQ(production.exit_code, 0) << production.err;
  EXPECT_EQ(production.out, "recs@production -> version 1\n");
  ASSERT_EQ(Models({"alias", "recs", "staging", "--version", "2"}).exit_code, 0);

  auto resolved = Show("recs@production");
  EXPECT_EQ(resolved["resolved_version"], 1);
  ASSERT_EQ(resolved["versions"].size(), 1u);
  EXPECT_EQ(resolved["versions"][0]["run_id"], run1);
  EXPECT_EQ(resolved["aliases"]["production"], 1);
  EXPECT_EQ(resolved["aliases"]["staging"], 2);
  EXPECT_EQ(Show("recs@staging")["versions"][0]["run_id"], run2);
  EXPECT_EQ(Show("recs/2")["resolved_version"], 2);

  // Moving an alias says where it was.
  auto moved = Models({"alias", "recs", "production", "--version", "2"});
  EXPECT_EQ(moved.out, "recs@production -> version 2 (was version 1)\n");

  auto deleted = Models({"delete-alias", "recs", "staging"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "deleted recs@staging (was version 2)\n");
  EXPECT_FALSE(Show("recs")["aliases"].contains("staging"));
  auto again = Models({"delete-alias", "recs", "staging"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("no alias 'staging'"), std::string::npos) << again.err;
  EXPECT_EQ(Models({"show", "recs@staging"}).exit_code, 1);

  auto no_version = Models({"alias", "recs", "canary", "--version", "9"});
  EXPECT_EQ(no_version.exit_code, 1);
  EXPECT_NE(no_version.err.find("no version 9"), std::string::npos) << no_version.err;
  auto bad_alias = Models({"alias", "recs", "12", "--version", "1"});
  EXPECT_EQ(bad_alias.exit_code, 2);
  EXPECT_NE(bad_alias.err.find("'12'"), std::string::npos) << bad_alias.err;
  auto no_model = Models({"alias", "nope", "production", "--version", "1"});
  EXPECT_EQ(no_model.exit_code, 1);
}

TEST_F(RegistryCli, ChecksumMismatchNamesTheFile) {
  // The run's model artifact changed after it was logged: register refuses.
  auto run = MakeRun({{"ndcg@10", 0.1}});
  Corrupt(store().location().artifacts / run / "model.bin");
  auto result = Models({"register", "--run", run, "--name", "recs"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("model.bin"), std::string::npos) << result.err;
  EXPECT_EQ(Models({"list", "--json"}).out.find("recs"), std::string::npos);

  // A registered version's stored file changed: show --verify reports it and fails.
  auto good = MakeRun({{"ndcg@10", 0.1}});
  Register(good, "recs");
  auto verified = Models({"show", "recs", "--verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.err;
  auto version = store().ResolveModel("recs/1");
  Corrupt(version.artifact_path);
  auto mismatch = Models({"show", "recs", "--verify", "--json"});
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.err.find(fs::path(version.artifact_path).filename().string()), std::string::npos)
      << mismatch.err;
  EXPECT_EQ(nlohmann::json::parse(mismatch.out)["versions"][0]["verified"], false);
}

TEST_F(RegistryCli, PromoteGateBothWays) {
  auto v1 = MakeRun({{"ndcg@10", 0.20}});
  auto v2 = MakeRun({{"ndcg@10", 0.25}});
  auto v3 = MakeRun({{"ndcg@10", 0.10}});
  auto v4 = MakeRun({{"recall@10", 0.3}});  // no ndcg@10
  for (const auto& run : {v1, v2, v3, v4}) Register(run, "recs");
  ASSERT_EQ(Models({"alias", "recs", "production", "--version", "1"}).exit_code, 0);
  ASSERT_EQ(Models({"alias", "recs", "staging", "--version", "2"}).exit_code, 0);
  const std::string gate = "metrics.ndcg@10 >= production";

  // Better candidate: a dry run decides without moving, then the real run promotes.
  auto dry = Models({"promote", "recs", "--from", "staging", "--to", "production", "--if", gate, "--dry-run",
                     "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  auto dry_report = nlohmann::json::parse(dry.out);
  EXPECT_EQ(dry_report["decision"], "would_promote");
  EXPECT_EQ(Show("recs")["aliases"]["production"], 1);
  auto promoted = Models({"promote", "recs", "--from", "staging", "--to", "production", "--if", gate});
  ASSERT_EQ(promoted.exit_code, 0) << promoted.err;
  EXPECT_NE(promoted.out.find("promoted recs@production -> version 2"), std::string::npos) << promoted.out;
  EXPECT_NE(promoted.out.find("0.25"), std::string::npos) << promoted.out;
  EXPECT_NE(promoted.out.find("0.2 "), std::string::npos) << promoted.out;
  EXPECT_EQ(Show("recs@production")["resolved_version"], 2);

  // Worse candidate: refused with exit 1, both values printed, production unchanged.
  ASSERT_EQ(Models({"alias", "recs", "staging", "--version", "3"}).exit_code, 0);
  auto refused = Models({"promote", "recs", "--from", "staging", "--to", "production", "--if", gate});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.out.find("refused"), std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("0.1 is not >= 0.25"), std::string::npos) << refused.out;
  EXPECT_EQ(Show("recs")["aliases"]["production"], 2);
  auto refused_json = Models({"promote", "recs", "--if", gate, "--json"});  // staging -> production by default
  EXPECT_EQ(refused_json.exit_code, 1);
  auto report = nlohmann::json::parse(refused_json.out);
  EXPECT_EQ(report["decision"], "refused");
  EXPECT_DOUBLE_EQ(report["candidate"]["value"].get<double>(), 0.10);
  EXPECT_DOUBLE_EQ(report["reference"]["value"].get<double>(), 0.25);
  EXPECT_EQ(report["reference"]["version"], 2);

  // An explicit threshold instead of the holder's value.
  auto threshold = Models({"promote", "recs", "--if", "metrics.ndcg@10 >= 0.05", "--dry-run"});
  EXPECT_EQ(threshold.exit_code, 0) << threshold.out << threshold.err;
  EXPECT_EQ(Models({"promote", "recs", "--if", "metrics.ndcg@10>0.18"}).exit_code, 1);

  // Candidate without the metric: refused with a clear message.
  ASSERT_EQ(Models({"alias", "recs", "staging", "--version", "4"}).exit_code, 0);
  auto missing = Models({"promote", "recs", "--from", "staging", "--to", "production", "--if", gate});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.out.find("has no metric 'ndcg@10'"), std::string::npos) << missing.out;
  EXPECT_EQ(Show("recs")["aliases"]["production"], 2);

  // No holder of --to yet: promoted (nothing to beat).
  auto first = Models({"promote", "recs", "--from", "production", "--to", "champion", "--if",
                       "metrics.ndcg@10 >= champion"});
  EXPECT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(Show("recs")["aliases"]["champion"], 2);
  // Already there: nothing to do, exit 0.
  auto same = Models({"promote", "recs", "--from", "production", "--to", "champion", "--if",
                      "metrics.ndcg@10 >= champion"});
  EXPECT_EQ(same.exit_code, 0);
  EXPECT_NE(same.out.find("unchanged"), std::string::npos) << same.out;
}

TEST_F(RegistryCli, PromoteLowerIsBetterMetric) {
  auto current = MakeRun({{"rmse", 0.95}});
  auto better = MakeRun({{"rmse", 0.90}});
  auto worse = MakeRun({{"rmse", 1.05}});
  for (const auto& run : {current, better, worse}) Register(run, "ratings");
  ASSERT_EQ(Models({"alias", "ratings", "production", "--version", "1"}).exit_code, 0);
  ASSERT_EQ(Models({"alias", "ratings", "staging", "--version", "3"}).exit_code, 0);
  EXPECT_EQ(Models({"promote", "ratings", "--if", "metrics.rmse <= production"}).exit_code, 1);
  EXPECT_EQ(Show("ratings")["aliases"]["production"], 1);
  ASSERT_EQ(Models({"alias", "ratings", "staging", "--version", "2"}).exit_code, 0);
  auto promoted = Models({"promote", "ratings", "--if", "metrics.rmse < production"});
  EXPECT_EQ(promoted.exit_code, 0) << promoted.out << promoted.err;
  EXPECT_EQ(Show("ratings")["aliases"]["production"], 2);
}

TEST_F(RegistryCli, PromoteConditionErrorsExitTwo) {
  Register(MakeRun({{"ndcg@10", 0.1}}), "recs");
  ASSERT_EQ(Models({"alias", "recs", "staging", "--version", "1"}).exit_code, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ndcg@10 >= production", "expected 'metrics.KEY'"},
      {"metrics.ndcg@10 => production", "unsupported operator '=>'"},
      {"metrics.ndcg@10 == 0.2", "unsupported operator '=='"},
      {"metrics.ndcg@10 production", "expected an operator"},
      {"metrics.ndcg@10 >=", "expected a number or an alias"},
      {"metrics.ndcg@10 >= 0.2 and x", "unexpected 'and x'"},
      {"metrics.ndcg@10 >= 0.2x", "'0.2x' is not a number"},
      {"metrics.ndcg@10 >= metrics.recall@10", "not a metric"},
      {"metrics.ndcg@10 >= nosuchalias", "no alias 'nosuchalias'"},
  };
  for (const auto& [condition, message] : cases) {
    auto result = Models({"promote", "recs", "--if", condition});
    EXPECT_EQ(result.exit_code, 2) << condition << ": " << result.err;
    EXPECT_NE(result.err.find(message), std::string::npos) << condition << ": " << result.err;
  }
  EXPECT_EQ(Show("recs")["aliases"].count("production"), 0u);
  auto same = Models({"promote", "recs", "--from", "staging", "--to", "staging"});
  EXPECT_EQ(same.exit_code, 2);
  auto no_from = Models({"promote", "recs", "--from", "candidate"});
  EXPECT_EQ(no_from.exit_code, 1);
  EXPECT_NE(no_from.err.find("no alias 'candidate'"), std::string::npos) << no_from.err;
}

}  // namespace
}  // namespace recforge
