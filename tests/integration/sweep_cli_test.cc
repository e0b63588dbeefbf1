// `recforge sweep` end to end on a small synthetic dataset: trials as child runs of the
// sweep run in the tracking store, resume skipping finished configs, a tiny memory
// budget forcing one trial at a time, Ctrl-C stopping the workers, and config errors.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "recforge/tracking/store.h"
#include "testlib/testlib.h"

namespace recforge {
namespace {

using recforge::testing::RunCli;
using recforge::testing::TempDir;
using nlohmann::json;

// A synthetic raw dataset and a sweep over it: 2 preprocessing x 3 model configs.
class SweepCli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto synth = RunCli({"data", "synth", "-o", (dir_ / "raw").string(), "--users", "200", "--items", "120",
                         "--interactions", "3000", "-q"});
    ASSERT_EQ(synth.exit_code, 0) << synth.err;
  }

  std::string WriteSweep(const std::string& name, const std::string& experiment, const std::string& models) {
    return dir_
        .Write(name, fmt::format(R"(experiment: {}
input: {}
prepare:
  min_user: [1, 3]
  split: ratio
  test_ratio: 0.2
models:
{}
metric: ndcg@10
eval: {{k: [5, 10]}}
max_parallel: 2
)",
                                 experiment, (dir_ / "raw").string(), models))
        .string();
  }

  std::string Db() const { return (dir_ / "mlruns.db").string(); }

  tracking::TrackingLocation Location() const { return tracking::TrackingLocation::Resolve(Db()); }

  static json Json(const recforge::testing::CommandResult& result) {
    try {
      return json::parse(result.out);
    } catch (const json::exception&) {
      ADD_FAILURE() << "no JSON on stdout:\n" << result.out << "\nstderr:\n" << result.err;
      return json::object();
    }
  }

  TempDir dir_;
};

constexpr const char* kModels = "  ials: {factors: [4, 8], iters: 2}\n  itemknn: {neighbors: 10}\n";

TEST_F(SweepCli, GridRunsAsChildRunsAndResumes) {
  const std::string config = WriteSweep("sweep.yaml", "sweep-test", kModels);
  auto first = RunCli({"sweep", "--config", config, "--tracking-uri", Db(), "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  json report = Json(first);
  EXPECT_EQ(report["trials"], 6);
  EXPECT_EQ(report["finished"], 6);
  EXPECT_EQ(report["resumed"], 0);
  EXPECT_EQ(report["failed"], 0);
  ASSERT_EQ(report["top"].size(), 5u);
  const std::string best = report["best_run_id"].get<std::string>();
  EXPECT_EQ(report["top"][0]["run_id"], best);
  EXPECT_GE(report["top"][0]["value"].get<double>(), report["top"][4]["value"].get<double>());
  EXPECT_NE(first.err.find("starting trial 1/6 (est. "), std::string::npos) << first.err;
  EXPECT_NE(first.err.find("prepared config 2/2"), std::string::npos) << first.err;

  {
    tracking::Store store(Location());
    const std::string sweep_id = report["sweep_run_id"].get<std::string>();
    tracking::Run sweep = store.GetRun(sweep_id);
    EXPECT_EQ(sweep.status, tracking::RunStatus::kFinished);
    EXPECT_EQ(sweep.tags.at("best_run_id"), best);
    tracking::RunQuery query;
    query.parent_id = sweep_id;
    auto children = store.ListRuns(query);
    ASSERT_EQ(children.size(), 6u);
    std::set<std::string> config_ids;
    for (const auto& child : children) {
      EXPECT_EQ(child.status, tracking::RunStatus::kFinished) << child.status_reason;
      EXPECT_EQ(child.parent_id, sweep_id);
      EXPECT_EQ(child.experiment, "sweep-test");
      config_ids.insert(child.tags.at("config_id"));
      EXPECT_TRUE(child.metrics.count("ndcg@10")) << child.id;
      EXPECT_TRUE(child.metrics.count("recall@5")) << child.id;
      EXPECT_TRUE(child.params.count("prepare.min_user")) << child.id;
      if (child.params.at("family") == "ials") {
        EXPECT_EQ(store.MetricHistory(child.id, "loss").size(), 2u) << "per-epoch loss of " << child.id;
      }
    }
    EXPECT_EQ(config_ids.size(), 6u);
  }

  // Resume: the same sweep again runs nothing and says so.
  auto again = RunCli({"sweep", "--config", config, "--tracking-uri", Db(), "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  json resumed = Json(again);
  EXPECT_EQ(resumed["resumed"], 6);
  EXPECT_EQ(resumed["finished"], 0);
  EXPECT_EQ(resumed["best_run_id"], best);
  EXPECT_NE(again.err.find("resume: 6 of 6 configs already FINISHED"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.find("starting trial"), std::string::npos) << again.err;
  // The prepared data was removed (nothing of the work dir stays behind).
  EXPECT_EQ(again.err.find("kept prepared data"), std::string::npos);
}

TEST_F(SweepCli, TinyMemoryBudgetRunsOneTrialAtATime) {
  const std::string config = WriteSweep("budget.yaml", "sweep-budget", "  pop: {}\n  itemknn: {neighbors: [5, 10]}\n");
  auto result = RunCli({"sweep", "--config", config, "--tracking-uri", Db(), "--memory-budget", "1MiB",
                        "--max-parallel", "4", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  json report = Json(result);
  EXPECT_EQ(report["finished"], 6);
  EXPECT_EQ(report["max_concurrency"], 1);
  EXPECT_NE(result.err.find("over the memory budget of 1 MB, running it alone"), std::string::npos) << result.err;
  // Text output: the table of the best configs and the best run id.
  auto text = RunCli({"sweep", "--config", config, "--tracking-uri", Db()});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("top 5 of 6 configs by ndcg@10 (maximize)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("best run: " + report["best_run_id"].get<std::string>()), std::string::npos) << text.out;
}

TEST_F(SweepCli, DryRunAndPreparedInput) {
  const std::string config = WriteSweep("dry.yaml", "sweep-dry", kModels);
  auto dry = RunCli({"sweep", "--config", config, "--dry-run", "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_EQ(Json(dry)["trials"].size(), 6u);
  // A prepared dataset is used as it is (and a `prepare` section is refused).
  auto prepare = RunCli({"data", "prepare", (dir_ / "raw").string(), "-o", (dir_ / "prep").string(), "-q"});
  ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
  auto refused = RunCli({"sweep", "--config", config, "--input", (dir_ / "prep").string(), "--dry-run"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("already prepared"), std::string::npos) << refused.err;
  const std::string plain = dir_
                                .Write("prepared.yaml", fmt::format("input: {}\nmodels: {{pop: {{}}}}\n",
                                                                    (dir_ / "prep").string()))
                                .string();
  auto run = RunCli({"sweep", "--config", plain, "--tracking-uri", Db(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(Json(run)["finished"], 1);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "prep" / "meta.json"));  // the input is never removed
}

TEST_F(SweepCli, ConfigErrorsExitTwoWithPosition) {
  auto bad_yaml = dir_.Write("bad.yaml", "input: x\nmodels:\n  ials: {factors: [8, 16}\n");
  auto result = RunCli({"sweep", "--config", bad_yaml.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("bad.yaml:3:"), std::string::npos) << result.err;
  auto unknown = dir_.Write("unknown.yaml", "input: x\nmodels:\n  itemknn: {neighbours: 5}\n");
  result = RunCli({"sweep", "--config", unknown.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown.yaml:3:13: models.itemknn: unknown parameter 'neighbours'"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("neighbors"), std::string::npos) << result.err;
}

// Ctrl-C: the running workers get SIGTERM, their runs and the sweep run end KILLED.
TEST_F(SweepCli, InterruptKillsWorkersAndMarksRunsKilled) {
  // Slow trials: many ials iterations on the small dataset.
  const std::string config =
      WriteSweep("slow.yaml", "sweep-interrupt", "  ials: {factors: [32, 48], iters: 100000, report_loss: false}\n");
  const std::string err_path = (dir_ / "stderr.txt").string();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDERR_FILENO);
    int null = ::open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    std::string binary = RECFORGE_SWEEP_CLI_PATH;
    std::vector<std::string> args = {binary, "sweep", "--config", config, "--tracking-uri", Db()};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  auto read_err = [&] {
    std::ifstream in(err_path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_err().find("starting trial 1/") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const std::string err = read_err();
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  EXPECT_NE(err.find("interrupted: stopping"), std::string::npos) << err;

  tracking::Store store(Location());
  tracking::RunQuery query;
  query.experiment = "sweep-interrupt";
  auto runs = store.ListRuns(query);
  ASSERT_GE(runs.size(), 2u) << err;  // the sweep and at least one trial
  std::size_t sweeps = 0;
  for (const auto& run : runs) {
    EXPECT_EQ(run.status, tracking::RunStatus::kKilled) << run.name << ": " << run.status_reason;
    sweeps += run.parent_id.empty() ? 1 : 0;
  }
  EXPECT_EQ(sweeps, 1u);
}

}  // namespace
}  // namespace recforge
