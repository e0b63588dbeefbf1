// Experiment tracking through the real CLI: prepare -> train -> evaluate record runs
// with params, per-epoch metrics, tags, artifacts and lineage; `runs list|show|compare|
// delete`, filters and their errors, failed runs, registry references, and the MLflow
// export checked file by file against a golden layout (issue "Experiment tracking").
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "recforge/core/file_io.h"
#include "recforge/tracking/mlflow_export.h"
#include "recforge/tracking/store.h"
#include "testlib/testlib.h"

namespace recforge {
namespace {

using recforge::testing::CommandResult;
using recforge::testing::RunCli;
using recforge::testing::TempDir;
using nlohmann::json;

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

CommandResult Cli(std::vector<std::string> args, const std::filesystem::path& store) {
  args.push_back("--tracking-uri");
  args.push_back(store.string());
  args.push_back("-q");
  return RunCli(args);
}

json RunsJson(const std::filesystem::path& store, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"runs", "list", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto result = Cli(args, store);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return result.exit_code == 0 ? json::parse(result.out) : json::array();
}

std::string Id(const json& run) { return run["run_id"].get<std::string>(); }

const json* FindRun(const json& runs, const std::string& experiment) {
  for (const auto& run : runs) {
    if (run["experiment"] == experiment) return &run;
  }
  return nullptr;
}

// synth text -> ingest -> prepare (with val) -> train -> evaluate, all tracked.
class TrackedPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dir_ / "store";
    raw_ = dir_ / "raw.csv";
    ASSERT_EQ(RunCli({"data", "synth", "-o", raw_.string(), "--format", "csv", "-n", "3000", "--users", "120",
                      "--items", "80", "--seed", "7", "-q"})
                  .exit_code,
              0);
    ASSERT_EQ(RunCli({"data", "ingest", raw_.string(), "-o", (dir_ / "ds").string(), "-q"}).exit_code, 0);
    auto prepare = Cli({"data", "prepare", (dir_ / "ds").string(), "-o", (dir_ / "prep").string(), "--split",
                        "ratio", "--test-ratio", "0.2", "--val-ratio", "0.1", "--tag", "owner=tests"},
                       store_);
    ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
    auto train = Cli({"train", "-d", (dir_ / "prep").string(), "--model", "ials:factors=8,iters=3", "-o",
                      (dir_ / "model.bin").string(), "--run-name", "ials-small"},
                     store_);
    ASSERT_EQ(train.exit_code, 0) << train.err;
    auto evaluate = Cli({"evaluate", "--model", (dir_ / "model.bin").string(), "--dataset",
                         (dir_ / "prep").string(), "--k", "5,10", "--bootstrap", "0", "--per-user",
                         (dir_ / "per_user.csv").string()},
                        store_);
    ASSERT_EQ(evaluate.exit_code, 0) << evaluate.err;
  }

  TempDir dir_;
  std::filesystem::path store_, raw_;
};

TEST_F(TrackedPipeline, RecordsThreeFinishedRunsWithParamsMetricsTagsArtifacts) {
  json runs = RunsJson(store_);
  ASSERT_EQ(runs.size(), 3u) << runs.dump(2);
  std::set<std::string> experiments;
  for (const auto& run : runs) {
    EXPECT_EQ(run["status"], "FINISHED") << run.dump(2);
    experiments.insert(run["experiment"].get<std::string>());
  }
  EXPECT_EQ(experiments, (std::set<std::string>{"preprocessing", "training", "evaluation"}));

  const json* prepare = FindRun(runs, "preprocessing");
  const json* train = FindRun(runs, "training");
  const json* evaluate = FindRun(runs, "evaluation");
  ASSERT_TRUE(prepare && train && evaluate);
  // prepare: options as params, the prepared dataset hash as a tag, free tags.
  EXPECT_EQ((*prepare)["params"]["split"], "ratio");
  EXPECT_EQ((*prepare)["tags"]["owner"], "tests");
  const std::string dataset_hash = json::parse(Slurp(dir_ / "prep" / "meta.json"))["content_hash"];
  EXPECT_EQ((*prepare)["tags"]["dataset_hash"], dataset_hash);
  EXPECT_EQ((*prepare)["tags"]["config_id"].get<std::string>().size(), 16u);
  // train: family + every spec key, tags, per-epoch metrics.
  EXPECT_EQ((*train)["name"], "ials-small");
  EXPECT_EQ((*train)["params"]["family"], "ials");
  EXPECT_EQ((*train)["params"]["factors"], "8");
  EXPECT_EQ((*train)["params"]["iters"], "3");
  EXPECT_TRUE((*train)["params"].contains("reg"));
  EXPECT_EQ((*train)["tags"]["family"], "ials");
  EXPECT_EQ((*train)["tags"]["dataset_hash"], dataset_hash);
  EXPECT_NE((*train)["command"].get<std::string>().find("train"), std::string::npos);
  // evaluate: options, final metrics.
  EXPECT_EQ((*evaluate)["params"]["k"], "5,10");
  EXPECT_EQ((*evaluate)["params"]["protocol"], "full");
  EXPECT_TRUE((*evaluate)["metrics"].contains("ndcg@10"));
  EXPECT_TRUE((*evaluate)["metrics"].contains("recall@5"));

  auto show_train = Cli({"runs", "show", Id(*train), "--json"}, store_);
  ASSERT_EQ(show_train.exit_code, 0) << show_train.err;
  json shown = json::parse(show_train.out);
  // One loss point per epoch, step = epoch; validation metrics per epoch too.
  const json& loss = shown["metric_history"]["loss"];
  ASSERT_EQ(loss["count"], 3) << shown["metric_history"].dump(2);
  EXPECT_EQ(loss["first_step"], 1);
  EXPECT_EQ(loss["last_step"], 3);
  EXPECT_EQ(shown["metric_history"]["val_ndcg@10"]["count"], 3);
  bool has_model = false;
  for (const auto& artifact : shown["artifacts"]) {
    if (artifact["kind"] == "model") {
      has_model = true;
      EXPECT_EQ(Slurp(artifact["location"].get<std::string>()), Slurp(dir_ / "model.bin"));
    }
  }
  EXPECT_TRUE(has_model) << shown["artifacts"].dump(2);

  auto show_eval = Cli({"runs", "show", Id(*evaluate), "--json"}, store_);
  ASSERT_EQ(show_eval.exit_code, 0) << show_eval.err;
  std::set<std::string> kinds;
  const json eval_shown = json::parse(show_eval.out);
  for (const auto& artifact : eval_shown["artifacts"]) kinds.insert(artifact["kind"].get<std::string>());
  EXPECT_TRUE(kinds.count("report") && kinds.count("per_user")) << show_eval.out;
  auto show_prepare = Cli({"runs", "show", Id(*prepare), "--json"}, store_);
  ASSERT_EQ(show_prepare.exit_code, 0) << show_prepare.err;
  EXPECT_NE(show_prepare.out.find("dataset_meta"), std::string::npos);

  // The text forms render.
  auto list_text = Cli({"runs", "list"}, store_);
  EXPECT_EQ(list_text.exit_code, 0) << list_text.err;
  EXPECT_NE(list_text.out.find("ndcg@10"), std::string::npos) << list_text.out;
  auto show_text = Cli({"runs", "show", (*train)["run_id"].get<std::string>().substr(0, 8)}, store_);
  EXPECT_EQ(show_text.exit_code, 0) << show_text.err;
  EXPECT_NE(show_text.out.find("history: 3 points"), std::string::npos) << show_text.out;
}

TEST_F(TrackedPipeline, LineageLinksRawFilesDatasetModelAndEvaluation) {
  json runs = RunsJson(store_);
  const json* prepare = FindRun(runs, "preprocessing");
  const json* train = FindRun(runs, "training");
  const json* evaluate = FindRun(runs, "evaluation");
  ASSERT_TRUE(prepare && train && evaluate);
  auto shown = Cli({"runs", "show", Id(*evaluate), "--lineage", "--json"}, store_);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  json lineage = json::parse(shown.out)["lineage"];
  ASSERT_EQ(lineage["runs"].size(), 3u) << lineage.dump(2);
  // Oldest first: prepare, train, evaluate.
  EXPECT_EQ(Id(lineage["runs"][0]), Id(*prepare));
  EXPECT_EQ(Id(lineage["runs"][1]), Id(*train));
  EXPECT_EQ(Id(lineage["runs"][2]), Id(*evaluate));
  auto edge_hash = [](const json& run, const std::string& direction, const std::string& kind) {
    for (const auto& edge : run[direction == "input" ? "inputs" : "outputs"]) {
      if (edge["kind"] == kind) return edge["hash"].get<std::string>();
    }
    return std::string();
  };
  const json& p = lineage["runs"][0];
  const json& t = lineage["runs"][1];
  const json& e = lineage["runs"][2];
  EXPECT_EQ(edge_hash(p, "input", "raw_file"), Sha256File(raw_));
  EXPECT_EQ(edge_hash(p, "input", "dataset"), json::parse(Slurp(dir_ / "ds" / "meta.json"))["content_hash"]);
  EXPECT_FALSE(edge_hash(p, "output", "prepared").empty());
  EXPECT_EQ(edge_hash(p, "output", "prepared"), edge_hash(t, "input", "prepared"));
  EXPECT_EQ(edge_hash(t, "output", "model"), Sha256File(dir_ / "model.bin"));
  EXPECT_EQ(edge_hash(t, "output", "model"), edge_hash(e, "input", "model"));
  EXPECT_FALSE(edge_hash(e, "output", "report").empty());

  // From the prepare run, the walk goes downstream to the same runs.
  auto from_prepare = Cli({"runs", "show", Id(*prepare), "--lineage"}, store_);
  ASSERT_EQ(from_prepare.exit_code, 0) << from_prepare.err;
  for (const auto* run : {prepare, train, evaluate}) {
    EXPECT_NE(from_prepare.out.find((*run)["run_id"].get<std::string>().substr(0, 8)), std::string::npos)
        << from_prepare.out;
  }
  EXPECT_NE(from_prepare.out.find("raw_file"), std::string::npos) << from_prepare.out;
}

TEST_F(TrackedPipeline, FilterSelectsTheRightRunAndBadFiltersExitTwo) {
  json selected = RunsJson(store_, {"--filter", "metrics.ndcg@10 > 0 and params.family = 'ials'"});
  ASSERT_EQ(selected.size(), 1u) << selected.dump(2);
  EXPECT_EQ(selected[0]["experiment"], "evaluation");
  json training = RunsJson(store_, {"--experiment", "training"});
  ASSERT_EQ(training.size(), 1u);
  EXPECT_EQ(training[0]["experiment"], "training");
  EXPECT_EQ(RunsJson(store_, {"--limit", "2"}).size(), 2u);

  auto bad = Cli({"runs", "list", "--filter", "bogus.ndcg = 1"}, store_);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("bogus"), std::string::npos) << bad.err;
  auto bad_syntax = Cli({"runs", "list", "--filter", "metrics.ndcg@10 >"}, store_);
  EXPECT_EQ(bad_syntax.exit_code, 2) << bad_syntax.err;
  EXPECT_NE(bad_syntax.err.find("error"), std::string::npos) << bad_syntax.err;
  EXPECT_EQ(Cli({"runs", "show", "ffffffffffff"}, store_).exit_code, 1);
}

TEST_F(TrackedPipeline, FailingCommandLeavesAFailedRunWithTheError) {
  auto bad = Cli({"train", "-d", (dir_ / "prep").string(), "--model", "ials:nonsense=1"}, store_);
  EXPECT_EQ(bad.exit_code, 2);
  json failed = RunsJson(store_, {"--filter", "attributes.status = 'FAILED'"});
  ASSERT_EQ(failed.size(), 1u) << failed.dump(2);
  EXPECT_EQ(failed[0]["experiment"], "training");
  EXPECT_NE(failed[0]["status_reason"].get<std::string>().find("nonsense"), std::string::npos) << failed[0].dump(2);
  // --no-track records nothing.
  auto untracked = Cli({"train", "-d", (dir_ / "prep").string(), "--model", "pop", "--no-track"}, store_);
  EXPECT_EQ(untracked.exit_code, 0) << untracked.err;
  EXPECT_EQ(RunsJson(store_).size(), 4u);
}

TEST_F(TrackedPipeline, CompareMarksDifferingRowsAndDeleteRemovesRuns) {
  auto second = Cli({"train", "-d", (dir_ / "prep").string(), "--model", "ials:factors=4,iters=2", "--experiment",
                     "training"},
                    store_);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  json training = RunsJson(store_, {"--experiment", "training", "--order-by", "attributes.start_ms"});
  ASSERT_EQ(training.size(), 2u);
  const std::string a = Id(training[0]), b = Id(training[1]);
  auto compare = Cli({"runs", "compare", a, b}, store_);
  ASSERT_EQ(compare.exit_code, 0) << compare.err;
  // The factors row differs (marked), the family row does not.
  bool factors_marked = false, family_unmarked = false;
  std::istringstream lines(compare.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("params.factors") != std::string::npos) factors_marked = line.rfind("*", 0) == 0;
    if (line.find("params.family") != std::string::npos) family_unmarked = line.rfind(" ", 0) == 0;
  }
  EXPECT_TRUE(factors_marked) << compare.out;
  EXPECT_TRUE(family_unmarked) << compare.out;
  auto compare_json = Cli({"runs", "compare", a, b, "--json"}, store_);
  ASSERT_EQ(compare_json.exit_code, 0) << compare_json.err;
  json table = json::parse(compare_json.out);
  EXPECT_TRUE(table["params"]["factors"]["differs"].get<bool>());
  EXPECT_FALSE(table["params"]["family"]["differs"].get<bool>());
  EXPECT_EQ(table["params"]["factors"]["values"], json::array({"8", "4"}));
  EXPECT_EQ(Cli({"runs", "compare", a}, store_).exit_code, 2);

  auto removed = Cli({"runs", "delete", b, "--yes"}, store_);
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(Cli({"runs", "show", b}, store_).exit_code, 1);
  EXPECT_EQ(RunsJson(store_).size(), 3u);
}

TEST_F(TrackedPipeline, RegistryReferencesResolveWhereAModelPathIsAccepted) {
  json training = RunsJson(store_, {"--experiment", "training"});
  ASSERT_EQ(training.size(), 1u);
  {
    tracking::Store store(tracking::TrackingLocation::Resolve(store_.string()));
    auto version = store.RegisterModel("demo", Id(training[0]));
    store.SetAlias("demo", "prod", version.version);
  }
  auto by_alias = Cli({"evaluate", "--model", "demo@prod", "--dataset", (dir_ / "prep").string(), "--bootstrap",
                       "0", "--json", "--no-track"},
                      store_);
  ASSERT_EQ(by_alias.exit_code, 0) << by_alias.err;
  auto by_path = Cli({"evaluate", "--model", (dir_ / "model.bin").string(), "--dataset", (dir_ / "prep").string(),
                      "--bootstrap", "0", "--json", "--no-track"},
                     store_);
  ASSERT_EQ(by_path.exit_code, 0) << by_path.err;
  EXPECT_EQ(json::parse(by_alias.out)["metrics"], json::parse(by_path.out)["metrics"]);
  auto recommend = Cli({"recommend", "--model", "demo/1", "--dataset", (dir_ / "prep").string(), "--all-users"},
                       store_);
  EXPECT_EQ(recommend.exit_code, 0) << recommend.err;
  EXPECT_FALSE(recommend.out.empty());
  auto compare = Cli({"evaluate", "--compare", "demo@prod", (dir_ / "model.bin").string(), "--dataset",
                      (dir_ / "prep").string(), "--bootstrap", "0", "--no-track"},
                     store_);
  EXPECT_EQ(compare.exit_code, 0) << compare.err;
  auto missing = Cli({"evaluate", "--model", "demo@staging", "--dataset", (dir_ / "prep").string(), "--no-track"},
                     store_);
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
}

TEST(TrackingCli, BaselinesRecordAParentWithOneChildPerBaseline) {
  TempDir dir;
  auto store = dir / "store";
  ASSERT_EQ(RunCli({"data", "synth", "-o", (dir / "ds").string(), "-n", "1500", "--users", "60", "--items", "40",
                    "-q"})
                .exit_code,
            0);
  ASSERT_EQ(RunCli({"data", "prepare", (dir / "ds").string(), "-o", (dir / "prep").string(), "--no-track", "-q"})
                .exit_code,
            0);
  auto baselines = Cli({"baselines", "--dataset", (dir / "prep").string(), "--baseline", "pop,random"}, store);
  ASSERT_EQ(baselines.exit_code, 0) << baselines.err;
  json runs = RunsJson(store, {"--experiment", "baselines"});
  ASSERT_EQ(runs.size(), 3u) << runs.dump(2);
  std::string parent;
  for (const auto& run : runs) {
    if (run["parent_id"] == "") parent = Id(run);
  }
  ASSERT_FALSE(parent.empty());
  std::set<std::string> families;
  for (const auto& run : runs) {
    if (Id(run) == parent) continue;
    EXPECT_EQ(run["parent_id"], parent);
    EXPECT_EQ(run["status"], "FINISHED");
    EXPECT_TRUE(run["metrics"].contains("ndcg@10")) << run.dump(2);
    families.insert(run["params"]["family"].get<std::string>());
  }
  EXPECT_EQ(families, (std::set<std::string>{"pop", "random"}));
}

TEST(TrackingCli, ExperimentsCreateRenameList) {
  TempDir dir;
  auto store = dir / "store";
  EXPECT_EQ(Cli({"experiments", "create", "alpha"}, store).exit_code, 0);
  EXPECT_NE(Cli({"experiments", "create", "alpha"}, store).exit_code, 0);
  EXPECT_EQ(Cli({"experiments", "rename", "alpha", "beta"}, store).exit_code, 0);
  auto list = Cli({"experiments", "list", "--json"}, store);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  bool beta = false;
  for (const auto& experiment : json::parse(list.out)) {
    EXPECT_NE(experiment["name"], "alpha");
    beta = beta || experiment["name"] == "beta";
  }
  EXPECT_TRUE(beta) << list.out;
}

// A store populated through the Store API with fixed values, exported; every file is
// compared with the layout documented in docs/tracking.md. The API sets times itself,
// so the expected timestamps are read back from the store.
TEST(TrackingCli, MlflowExportMatchesTheDocumentedLayout) {
  TempDir dir;
  const auto store_dir = dir / "store";
  const auto model_file = dir.Write("model.bin", "model bytes\n");
  std::string parent_id, child_id, failed_id;
  {
    tracking::Store store(tracking::TrackingLocation::Resolve(store_dir.string()));
    tracking::RunStart start;
    start.experiment = "golden";
    start.name = "run-a";
    start.command = "recforge train -d prep";
    start.tags = {{"family", "ials"}};
    parent_id = store.StartRun(start).id;
    store.LogParams(parent_id, {{"factors", "8"}, {"reg", "0.05"}, {"model/path", "x"}});
    store.LogMetric(parent_id, "loss", 0.5, 1);
    store.LogMetric(parent_id, "loss", 0.25, 2);
    store.LogMetric(parent_id, "ndcg@10", 0.125, 0);
    store.LogMetric(parent_id, "epochs", 3, 0);
    store.SetTags(parent_id, {{"dataset_hash", "abc123"}});
    store.LogArtifact(parent_id, model_file, "model.bin", "model");
    store.EndRun(parent_id, tracking::RunStatus::kFinished);
    tracking::RunStart child = start;
    child.name = "child-b";
    child.parent_id = parent_id;
    child.tags = {};
    child_id = store.StartRun(child).id;
    store.EndRun(child_id, tracking::RunStatus::kFailed, "boom");
    tracking::RunStart other;
    other.experiment = "other";
    other.name = "x";
    failed_id = store.StartRun(other).id;
    store.EndRun(failed_id, tracking::RunStatus::kKilled, "interrupted");
  }
  const auto out = dir / "mlruns";
  auto exported = RunCli({"runs", "export", "--format", "mlflow", "--output", out.string(), "--experiment",
                          "golden", "--tracking-uri", store_dir.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;

  tracking::Store store(tracking::TrackingLocation::Resolve(store_dir.string()));
  auto experiment = *store.FindExperiment("golden");
  const std::string exp_id = std::to_string(experiment.id);
  const auto exp_dir = out / exp_id;
  // Only the asked experiment.
  std::size_t folders = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out)) folders += entry.is_directory();
  EXPECT_EQ(folders, 1u);

  tracking::Run parent = store.GetRun(parent_id);
  tracking::Run child = store.GetRun(child_id);
  const std::string root = std::filesystem::absolute(out).lexically_normal().string();
  EXPECT_EQ(Slurp(exp_dir / "meta.yaml"),
            fmt::format("artifact_location: file://{}/{}\n"
                        "creation_time: {}\n"
                        "experiment_id: '{}'\n"
                        "last_update_time: {}\n"
                        "lifecycle_stage: active\n"
                        "name: golden\n",
                        root, exp_id, experiment.created_ms, exp_id,
                        std::max({experiment.created_ms, parent.start_ms, parent.end_ms, child.start_ms,
                                  child.end_ms})));
  auto run_meta = [&](const tracking::Run& run, int status) {
    return fmt::format(
        "artifact_uri: file://{}/{}/{}/artifacts\n"
        "end_time: {}\n"
        "entry_point_name: ''\n"
        "experiment_id: '{}'\n"
        "lifecycle_stage: active\n"
        "run_id: {}\n"
        "run_name: {}\n"
        "run_uuid: {}\n"
        "source_name: ''\n"
        "source_type: 4\n"
        "source_version: ''\n"
        "start_time: {}\n"
        "status: {}\n"
        "tags: []\n"
        "user_id: {}\n",
        root, exp_id, run.id, run.end_ms, exp_id, run.id, run.name, run.id, run.start_ms, status,
        tracking::YamlString(run.user));
  };
  const auto parent_dir = exp_dir / parent_id;
  const auto child_dir = exp_dir / child_id;
  EXPECT_EQ(Slurp(parent_dir / "meta.yaml"), run_meta(parent, 3));
  EXPECT_EQ(Slurp(child_dir / "meta.yaml"), run_meta(child, 4));

  auto history = [&](const std::string& key) {
    std::string lines;
    for (const auto& point : store.MetricHistory(parent_id, key)) {
      lines += fmt::format("{} {} {}\n", point.timestamp_ms, key == "epochs" ? "3.0" : fmt::format("{}", point.value),
                           point.step);
    }
    return lines;
  };
  auto loss = store.MetricHistory(parent_id, "loss");
  ASSERT_EQ(loss.size(), 2u);
  EXPECT_EQ(Slurp(parent_dir / "metrics" / "loss"),
            fmt::format("{} 0.5 1\n{} 0.25 2\n", loss[0].timestamp_ms, loss[1].timestamp_ms));
  EXPECT_EQ(Slurp(parent_dir / "metrics" / "ndcg_at_10"), history("ndcg@10"));  // '@' -> "_at_"
  EXPECT_EQ(Slurp(parent_dir / "metrics" / "epochs"), history("epochs"));        // 3 -> "3.0"
  EXPECT_EQ(Slurp(parent_dir / "params" / "factors"), "8");
  EXPECT_EQ(Slurp(parent_dir / "params" / "reg"), "0.05");
  EXPECT_EQ(Slurp(parent_dir / "params" / "model" / "path"), "x");  // '/' is a sub-folder, as in MLflow
  EXPECT_EQ(Slurp(parent_dir / "tags" / "mlflow.runName"), "run-a");
  EXPECT_EQ(Slurp(parent_dir / "tags" / "mlflow.user"), parent.user);
  EXPECT_EQ(Slurp(parent_dir / "tags" / "mlflow.source.name"), "recforge train -d prep");
  EXPECT_EQ(Slurp(parent_dir / "tags" / "family"), "ials");
  EXPECT_EQ(Slurp(parent_dir / "tags" / "dataset_hash"), "abc123");
  EXPECT_FALSE(std::filesystem::exists(parent_dir / "tags" / "mlflow.parentRunId"));
  EXPECT_EQ(Slurp(child_dir / "tags" / "mlflow.parentRunId"), parent_id);
  EXPECT_EQ(Slurp(child_dir / "tags" / "mlflow.runName"), "child-b");
  EXPECT_EQ(Slurp(child_dir / "tags" / "recforge.status_reason"), "boom");
  EXPECT_EQ(Slurp(parent_dir / "artifacts" / "model.bin"), "model bytes\n");
  EXPECT_TRUE(std::filesystem::is_directory(child_dir / "artifacts"));

  // Every experiment, and the KILLED status number.
  const auto all = dir / "all";
  ASSERT_EQ(RunCli({"runs", "export", "--output", all.string(), "--tracking-uri", store_dir.string()}).exit_code, 0);
  auto other = *store.FindExperiment("other");
  EXPECT_NE(Slurp(all / std::to_string(other.id) / failed_id / "meta.yaml").find("\nstatus: 5\n"), std::string::npos);

  // CSV: one row per run, params / metrics columns.
  const auto csv = dir / "runs.csv";
  ASSERT_EQ(RunCli({"runs", "export", "--format", "csv", "--output", csv.string(), "--experiment", "golden",
                    "--tracking-uri", store_dir.string()})
                .exit_code,
            0);
  std::string table = Slurp(csv);
  EXPECT_EQ(table.rfind("run_id,experiment,name,status,parent_id,start_ms,end_ms,duration_seconds,", 0), 0u) << table;
  EXPECT_NE(table.find("params.factors"), std::string::npos);
  EXPECT_NE(table.find("metrics.ndcg@10"), std::string::npos);
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 3);

  EXPECT_EQ(tracking::MlflowKey("a//b/../c"), "a/b/_/c");
  EXPECT_EQ(tracking::MlflowKey("hit_rate@5"), "hit_rate_at_5");
  EXPECT_EQ(tracking::MlflowKey("x:y"), "x_y");
}

}  // namespace
}  // namespace recforge
