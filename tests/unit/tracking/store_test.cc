#include "recforge/tracking/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

#include "recforge/core/error.h"
#include "recforge/core/file_io.h"
#include "recforge/core/version.h"
#include "recforge/tracking/recorder.h"
#include "testlib/testlib.h"

namespace recforge::tracking {
namespace {

using recforge::testing::TempDir;

TrackingLocation LocationIn(const TempDir& dir) { return TrackingLocation::Resolve(dir.path().string()); }

// RunStart / RunQuery builders (designated initializers trip -Wmissing-field-initializers).
RunStart Start(std::string experiment = "Default", std::string name = "", std::string parent_id = "",
               std::string command = "", std::map<std::string, std::string> tags = {}) {
  RunStart start;
  start.experiment = std::move(experiment);
  start.name = std::move(name);
  start.parent_id = std::move(parent_id);
  start.command = std::move(command);
  start.tags = std::move(tags);
  return start;
}

RunQuery Query(std::string experiment = "", std::string filter = "", std::string order_by = "",
               std::string parent_id = "", std::size_t limit = 0) {
  RunQuery query;
  query.experiment = std::move(experiment);
  query.filter = std::move(filter);
  query.order_by = std::move(order_by);
  query.parent_id = std::move(parent_id);
  query.limit = limit;
  return query;
}

// Runs raw SQL against the store's file (to simulate what only time or a crash does).
void RawSql(const fs::path& database, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(database.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

std::string RawScalar(const fs::path& database, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(database.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK);
  std::string value;
  if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_text(statement, 0) != nullptr) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return value;
}

template <class E, class Fn>
std::string ErrorOf(Fn&& fn) {
  try {
    fn();
  } catch (const E& error) {
    return error.what();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "wrong exception type: " << error.what();
    return {};
  }
  ADD_FAILURE() << "no exception";
  return {};
}

// Waits for a forked child and returns its exit code (-1 when it did not exit).
int WaitChild(pid_t child) {
  int status = 0;
  if (waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ------------------------------------------------------------------ location

TEST(TrackingLocation, ResolvesFilesDirectoriesUrisAndEnvironment) {
  TempDir dir;
  auto file = TrackingLocation::Resolve((dir.path() / "x" / "runs.db").string());
  EXPECT_EQ(file.database, dir.path() / "x" / "runs.db");
  EXPECT_EQ(file.artifacts, dir.path() / "x" / "artifacts");

  auto folder = TrackingLocation::Resolve(dir.path().string());
  EXPECT_EQ(folder.database, dir.path() / "mlruns.db");
  EXPECT_EQ(folder.artifacts, dir.path() / "artifacts");

  auto uri = TrackingLocation::Resolve("sqlite://" + (dir.path() / "u.db").string());
  EXPECT_EQ(uri.database, dir.path() / "u.db");
  EXPECT_EQ(uri.artifacts, dir.path() / "artifacts");

  ::setenv("RECFORGE_TRACKING_URI", (dir.path() / "env.db").c_str(), 1);
  auto env = TrackingLocation::Resolve("");
  ::unsetenv("RECFORGE_TRACKING_URI");
  EXPECT_EQ(env.database, dir.path() / "env.db");

  auto fallback = TrackingLocation::Resolve("");
  EXPECT_EQ(fallback.database, fs::current_path() / "mlruns.db");
  EXPECT_EQ(fallback.artifacts, fs::current_path() / "artifacts");

  EXPECT_NE(ErrorOf<InvalidArgument>([] { TrackingLocation::Resolve("http://host/x"); }).find("http"),
            std::string::npos);
}

// ------------------------------------------------------------------ schema

TEST(Store, MigratesAnEmptyFileAndReopensKeepingData) {
  TempDir dir;
  auto location = LocationIn(dir);
  std::string run_id;
  {
    Store store(location);
    EXPECT_EQ(store.schema_version(), Store::kSchemaVersion);
    run_id = store.StartRun(Start("exp", "first")).id;
    store.LogParams(run_id, {{"family", "ials"}});
    store.EndRun(run_id, RunStatus::kFinished);
  }
  EXPECT_EQ(RawScalar(location.database, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawScalar(location.database, "SELECT MAX(version) FROM schema_version"),
            std::to_string(Store::kSchemaVersion));
  Store reopened(location);
  EXPECT_EQ(reopened.schema_version(), Store::kSchemaVersion);
  auto run = reopened.GetRun(run_id);
  EXPECT_EQ(run.name, "first");
  EXPECT_EQ(run.params.at("family"), "ials");
  EXPECT_EQ(run.status, RunStatus::kFinished);
  // Migrations ran once: one row per version.
  EXPECT_EQ(RawScalar(location.database, "SELECT count(*) FROM schema_version"),
            std::to_string(Store::kSchemaVersion));
}

TEST(Store, RejectsANewerSchemaAndANonDatabaseFile) {
  TempDir dir;
  auto location = LocationIn(dir);
  { Store store(location); }
  RawSql(location.database, "INSERT INTO schema_version VALUES (99, 0)");
  auto message = ErrorOf<FormatError>([&] { Store store(location); });
  EXPECT_NE(message.find("99"), std::string::npos) << message;
  EXPECT_NE(message.find(location.database.string()), std::string::npos) << message;

  auto junk = dir.Write("junk.db", std::string(4096, 'x'));
  auto junk_message = ErrorOf<FormatError>([&] { Store store(TrackingLocation::Resolve(junk.string())); });
  EXPECT_NE(junk_message.find("junk.db"), std::string::npos) << junk_message;
}

// ------------------------------------------------------------------ entities

TEST(Store, RoundTripsExperimentsRunsParamsMetricsTags) {
  TempDir dir;
  Store store(LocationIn(dir));
  auto created = store.CreateExperiment("alpha");
  EXPECT_EQ(created.name, "alpha");
  EXPECT_GT(created.created_ms, 0);
  EXPECT_NE(ErrorOf<InvalidArgument>([&] { store.CreateExperiment("alpha"); }).find("alpha"), std::string::npos);
  EXPECT_EQ(store.GetOrCreateExperiment("alpha"), created.id);

  tracking::Run run = store.StartRun(Start("alpha", "r1", "", "recforge train x", {{"config_id", "c1"}}));
  EXPECT_EQ(run.id.size(), 32u);
  EXPECT_TRUE(std::all_of(run.id.begin(), run.id.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); }));
  EXPECT_EQ(run.status, RunStatus::kRunning);
  EXPECT_EQ(run.experiment, "alpha");
  EXPECT_EQ(run.experiment_id, created.id);
  EXPECT_EQ(run.pid, getpid());
  EXPECT_EQ(run.command, "recforge train x");
  EXPECT_EQ(run.recforge_version, Version());
  EXPECT_EQ(run.git_commit, GitCommit());
  EXPECT_FALSE(run.host.empty());
  EXPECT_FALSE(run.user.empty());
  EXPECT_GT(run.start_ms, 0);
  EXPECT_EQ(run.end_ms, 0);

  store.LogParams(run.id, {{"family", "ials"}, {"factors", "64"}});
  store.SetTags(run.id, {{"stage", "dev"}});
  store.LogMetric(run.id, "loss", 3.0, 1);
  store.LogMetric(run.id, "loss", 2.0, 2);
  store.LogMetric(run.id, "loss", 9.0, 0);  // logged last, but an earlier step
  store.LogMetrics(run.id, {{"NDCG@10", 0.25, 0, 0}, {"recall@10", 0.5, 0, 1234}});
  store.EndRun(run.id, RunStatus::kFinished);

  tracking::Run loaded = store.GetRun(run.id.substr(0, 8));  // unique prefix
  EXPECT_EQ(loaded.id, run.id);
  EXPECT_EQ(loaded.status, RunStatus::kFinished);
  EXPECT_GE(loaded.end_ms, loaded.start_ms);
  EXPECT_EQ(loaded.params, (std::map<std::string, std::string>{{"factors", "64"}, {"family", "ials"}}));
  EXPECT_EQ(loaded.tags, (std::map<std::string, std::string>{{"config_id", "c1"}, {"stage", "dev"}}));
  EXPECT_DOUBLE_EQ(loaded.metrics.at("loss"), 2.0);  // highest step wins
  EXPECT_DOUBLE_EQ(loaded.metrics.at("ndcg@10"), 0.25);  // keys are lower-cased
  EXPECT_DOUBLE_EQ(loaded.metrics.at("recall@10"), 0.5);

  auto history = store.MetricHistory(run.id, "loss");
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[0].step, 0);
  EXPECT_DOUBLE_EQ(history[0].value, 9.0);
  EXPECT_EQ(history[2].step, 2);
  EXPECT_EQ(store.MetricHistory(run.id, "recall@10").at(0).timestamp_ms, 1234);
  EXPECT_EQ(store.MetricKeys(run.id), (std::vector<std::string>{"loss", "ndcg@10", "recall@10"}));

  auto experiments = store.ListExperiments();
  ASSERT_EQ(experiments.size(), 1u);
  EXPECT_EQ(experiments[0].run_count, 1);
  store.RenameExperiment("alpha", "beta");
  EXPECT_FALSE(store.FindExperiment("alpha"));
  ASSERT_TRUE(store.FindExperiment("beta"));
  EXPECT_EQ(store.FindExperiment(std::to_string(created.id))->name, "beta");
  EXPECT_EQ(store.GetRun(run.id).experiment, "beta");
  EXPECT_THROW(store.RenameExperiment("nope", "x"), NotFound);

  auto found = store.FindFinishedRunByTag("beta", "config_id", "c1");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, run.id);
  EXPECT_FALSE(store.FindFinishedRunByTag("beta", "config_id", "c2"));

  auto missing = ErrorOf<NotFound>([&] { store.GetRun("0123456789abcdef0123456789abcdef"); });
  EXPECT_NE(missing.find("0123456789abcdef0123456789abcdef"), std::string::npos);
  EXPECT_THROW(store.EndRun(run.id, RunStatus::kRunning), InvalidArgument);
  EXPECT_THROW(store.LogMetric("ffffffffff", "x", 1), NotFound);
}

TEST(Store, NaNMetricsRoundTrip) {
  TempDir dir;
  Store store(LocationIn(dir));
  auto id = store.StartRun(Start()).id;
  store.LogMetric(id, "loss", std::nan(""), 3);
  EXPECT_TRUE(std::isnan(store.GetRun(id).metrics.at("loss")));
  EXPECT_EQ(store.GetRun(id).experiment, "Default");
}

TEST(Store, ChildRunsAndParentLinks) {
  TempDir dir;
  Store store(LocationIn(dir));
  auto parent = store.StartRun(Start("sweep", "parent")).id;
  auto child1 = store.StartRun(Start("sweep", "c1", parent)).id;
  auto child2 = store.StartRun(Start("sweep", "c2", parent)).id;
  store.StartRun(Start("sweep", "other"));
  EXPECT_EQ(store.GetRun(child1).parent_id, parent);
  auto children = store.ListRuns(Query("", "", "", parent));
  ASSERT_EQ(children.size(), 2u);
  std::set<std::string> ids{children[0].id, children[1].id};
  EXPECT_EQ(ids, (std::set<std::string>{child1, child2}));
  EXPECT_THROW(store.StartRun(Start("Default", "", "0000000000000000000000000000dead")), NotFound);

  store.DeleteRun(parent);
  EXPECT_EQ(store.GetRun(child1).parent_id, "");
  EXPECT_THROW(store.GetRun(parent), NotFound);
}

TEST(Store, ArtifactsAreCopiedHashedAndDeletedWithTheRun) {
  TempDir dir;
  auto location = LocationIn(dir);
  Store store(location);
  auto id = store.StartRun(Start()).id;
  std::string content(3 << 20, 'a');  // several copy chunks
  content += "tail";
  auto source = dir.Write("model.bin", content);
  auto artifact = store.LogArtifact(id, source, "models/model.bin", "model");
  EXPECT_EQ(artifact.path, "models/model.bin");
  EXPECT_EQ(artifact.kind, "model");
  EXPECT_EQ(artifact.size, content.size());
  EXPECT_EQ(artifact.sha256, Sha256File(source));
  fs::path stored = location.artifacts / id / "models" / "model.bin";
  ASSERT_TRUE(fs::exists(stored));
  EXPECT_EQ(ReadFileToString(stored), content);
  store.LogArtifact(id, dir.Write("r.json", "{}"), "report.json", "report");

  auto listed = store.Artifacts(id);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].path, "models/model.bin");
  EXPECT_EQ(listed[0].sha256, artifact.sha256);
  EXPECT_EQ(listed[1].kind, "report");
  EXPECT_EQ(store.RunsWriting(artifact.sha256), std::vector<std::string>{id});

  EXPECT_THROW(store.LogArtifact(id, source, "../escape.bin", "model"), InvalidArgument);
  EXPECT_THROW(store.LogArtifact(id, source, "/abs.bin", "model"), InvalidArgument);
  auto missing = ErrorOf<IoError>([&] { store.LogArtifact(id, dir / "absent.bin", "a.bin", "model"); });
  EXPECT_NE(missing.find("absent.bin"), std::string::npos);

  store.DeleteRun(id);
  EXPECT_FALSE(fs::exists(location.artifacts / id));
  EXPECT_THROW(store.GetRun(id), NotFound);
  EXPECT_EQ(RawScalar(location.database, "SELECT count(*) FROM artifacts"), "0");
  EXPECT_EQ(RawScalar(location.database, "SELECT count(*) FROM metrics"), "0");
  EXPECT_TRUE(store.RunsWriting(artifact.sha256).empty());
}

TEST(Store, DatasetsAndLineage) {
  TempDir dir;
  Store store(LocationIn(dir));
  DatasetRecord dataset;
  dataset.hash = "abc123";
  dataset.kind = "prepared";
  dataset.path = "/data/ml";
  dataset.counts = {{"users", 10}, {"items", 20}};
  dataset.parameters = {{"kcore", 5}};
  store.RecordDataset(dataset);
  dataset.path = "/data/ml2";  // upsert by hash
  store.RecordDataset(dataset);
  auto found = store.FindDataset("abc123");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->kind, "prepared");
  EXPECT_EQ(found->path, "/data/ml2");
  EXPECT_EQ(found->counts["items"], 20);
  EXPECT_EQ(found->parameters["kcore"], 5);
  EXPECT_GT(found->created_ms, 0);
  EXPECT_FALSE(store.FindDataset("nope"));

  auto prepare = store.StartRun(Start("Default", "prepare")).id;
  auto train = store.StartRun(Start("Default", "train")).id;
  store.LogLineage(prepare, "input", "raw_file", "raw1", "/raw/u.data");
  store.LogLineage(prepare, "output", "prepared", "abc123", "/data/ml");
  store.LogLineage(train, "input", "prepared", "abc123", "/data/ml");
  store.LogLineage(train, "input", "prepared", "abc123", "/data/ml");  // duplicate ignored
  auto edges = store.Lineage(prepare);
  ASSERT_EQ(edges.size(), 2u);
  EXPECT_EQ(edges[1].direction, "output");
  EXPECT_EQ(edges[1].kind, "prepared");
  EXPECT_EQ(edges[1].hash, "abc123");
  EXPECT_EQ(edges[1].path, "/data/ml");
  EXPECT_EQ(store.Lineage(train).size(), 1u);
  EXPECT_EQ(store.RunsWriting("abc123"), std::vector<std::string>{prepare});
  EXPECT_EQ(store.RunsReading("abc123"), std::vector<std::string>{train});
  auto bad = ErrorOf<InvalidArgument>([&] { store.LogLineage(train, "sideways", "x", "h", "p"); });
  EXPECT_NE(bad.find("sideways"), std::string::npos);
}

// ------------------------------------------------------------------ concurrency

TEST(Store, ConcurrentProcessesLoseNoMetric) {
  TempDir dir;
  auto location = LocationIn(dir);
  std::string run_id;
  {
    Store store(location);
    run_id = store.StartRun(Start("Default", "shared")).id;
  }  // no connection is open across fork()
  constexpr int kProcesses = 8;
  constexpr int kWrites = 200;
  std::vector<pid_t> children;
  for (int worker = 0; worker < kProcesses; ++worker) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      int code = 0;
      try {
        Store store(location);
        for (int i = 0; i < kWrites; ++i) store.LogMetric(run_id, "m", worker * 1000 + i, worker * kWrites + i);
        auto own = store.StartRun(Start("workers"));
        store.EndRun(own.id, RunStatus::kFinished);
      } catch (...) {
        code = 1;
      }
      _exit(code);
    }
    children.push_back(child);
  }
  for (pid_t child : children) EXPECT_EQ(WaitChild(child), 0);
  Store store(location);
  auto history = store.MetricHistory(run_id, "m");
  ASSERT_EQ(history.size(), static_cast<std::size_t>(kProcesses * kWrites));
  std::set<std::int64_t> steps;
  for (const auto& metric : history) steps.insert(metric.step);
  EXPECT_EQ(steps.size(), static_cast<std::size_t>(kProcesses * kWrites));
  EXPECT_EQ(store.ListRuns(Query("workers")).size(), static_cast<std::size_t>(kProcesses));
}

TEST(Store, ConcurrentFirstOpensMigrateOnce) {
  TempDir dir;
  auto location = LocationIn(dir);  // the file does not exist yet
  std::vector<pid_t> children;
  for (int worker = 0; worker < 8; ++worker) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      int code = 0;
      try {
        Store store(location);
        auto id = store.StartRun(Start("fresh")).id;
        store.LogMetrics(id, {{"a", 1, 0, 0}, {"b", 2, 0, 0}});
        store.EndRun(id, RunStatus::kFinished);
        code = store.schema_version() == Store::kSchemaVersion ? 0 : 2;
      } catch (...) {
        code = 1;
      }
      _exit(code);
    }
    children.push_back(child);
  }
  for (pid_t child : children) EXPECT_EQ(WaitChild(child), 0);
  Store store(location);
  auto runs = store.ListRuns(Query("fresh"));
  ASSERT_EQ(runs.size(), 8u);
  for (const auto& run : runs) EXPECT_EQ(run.metrics.size(), 2u);
  EXPECT_EQ(RawScalar(location.database, "SELECT count(*) FROM schema_version"),
            std::to_string(Store::kSchemaVersion));
  EXPECT_EQ(store.ListExperiments().size(), 1u);
}

// ------------------------------------------------------------------ dead runs

TEST(Store, RunOfAKilledProcessIsMarkedFailedOnNextOpen) {
  TempDir dir;
  auto location = LocationIn(dir);
  { Store store(location); }
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    try {
      Store store(location);
      auto id = store.StartRun(Start("Default", "doomed")).id;
      (void)!write(pipe_fds[1], id.data(), id.size());
    } catch (...) {
      _exit(1);
    }
    close(pipe_fds[1]);
    while (true) pause();
  }
  close(pipe_fds[1]);
  char buffer[32];
  std::size_t got = 0;
  while (got < sizeof buffer) {
    auto n = read(pipe_fds[0], buffer + got, sizeof buffer - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  close(pipe_fds[0]);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_EQ(got, 32u);
  std::string id(buffer, 32);

  Store store(location);
  auto run = store.GetRun(id);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_NE(run.status_reason.find(std::to_string(child)), std::string::npos) << run.status_reason;
  EXPECT_GT(run.end_ms, 0);
}

TEST(Store, StaleHeartbeatFailsTheRunFreshOneDoesNot) {
  TempDir dir;
  auto location = LocationIn(dir);
  std::string stale, fresh;
  {
    Store store(location);
    stale = store.StartRun(Start("Default", "stale")).id;  // this process: pid alive
    fresh = store.StartRun(Start("Default", "fresh")).id;
    store.Heartbeat(fresh);
  }
  auto old_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch() - Store::kStaleHeartbeat -
                    std::chrono::seconds(5))
                    .count();
  RawSql(location.database, "UPDATE runs SET heartbeat_ms = " + std::to_string(old_ms) + ", start_ms = " +
                                std::to_string(old_ms - 1000) + " WHERE id = '" + stale + "'");
  Store store(location);
  auto stale_run = store.GetRun(stale);
  EXPECT_EQ(stale_run.status, RunStatus::kFailed);
  EXPECT_NE(stale_run.status_reason.find("heartbeat"), std::string::npos) << stale_run.status_reason;
  EXPECT_EQ(stale_run.end_ms, old_ms);
  EXPECT_EQ(store.GetRun(fresh).status, RunStatus::kRunning);
}

// ------------------------------------------------------------------ recorder

TEST(RunRecorder, FinishFailAndAbort) {
  TempDir dir;
  auto location = LocationIn(dir);
  std::string finished, failed, aborted;
  {
    RunRecorder recorder(location, Start("rec", "ok"));
    recorder.store().LogMetric(recorder.run_id(), "loss", 1.5);
    recorder.Finish();
    finished = recorder.run_id();
  }
  {
    RunRecorder recorder(location, Start("rec", "bad"));
    recorder.Fail("diverged");
    failed = recorder.run_id();
  }
  try {
    RunRecorder recorder(location, Start("rec", "throws"));
    aborted = recorder.run_id();
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  Store store(location);
  EXPECT_EQ(store.GetRun(finished).status, RunStatus::kFinished);
  EXPECT_DOUBLE_EQ(store.GetRun(finished).metrics.at("loss"), 1.5);
  EXPECT_EQ(store.GetRun(failed).status, RunStatus::kFailed);
  EXPECT_EQ(store.GetRun(failed).status_reason, "diverged");
  auto run = store.GetRun(aborted);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_EQ(run.status_reason.rfind("aborted", 0), 0u) << run.status_reason;
}

TEST(RunRecorder, InterruptEndsTheRunKilled) {
  TempDir dir;
  auto location = LocationIn(dir);
  { Store store(location); }
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the flag is process-wide: keep it out of the test process
    int code = 0;
    try {
      RunRecorder::InstallInterruptHandlers();
      RunRecorder recorder(location, Start("interrupt", "ctrl-c"));
      raise(SIGINT);
      if (!RunRecorder::Interrupted()) code = 2;
    } catch (...) {
      code = 1;
    }
    _exit(code);
  }
  ASSERT_EQ(WaitChild(child), 0);
  Store store(location);
  auto runs = store.ListRuns(Query("interrupt"));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, RunStatus::kKilled);
  EXPECT_NE(runs[0].status_reason.find("SIGINT"), std::string::npos);
}

// ------------------------------------------------------------------ queries

class RunQueries : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(LocationIn(dir_));
    Add("a", "ials", "64", 0.30, RunStatus::kFinished, {{"stage", "prod"}});
    Add("b", "als", "128", 0.35, RunStatus::kFinished, {});
    Add("c", "ials", "9", 0.10, RunStatus::kFailed, {{"stage", "dev"}});
    auto d = store_->StartRun(Start("q", "d-nometrics"));
    ids_["d"] = d.id;
  }
  void Add(const std::string& name, const std::string& family, const std::string& factors, double ndcg,
           RunStatus status, std::map<std::string, std::string> tags) {
    auto run = store_->StartRun(Start("q", name, "", "", tags));
    store_->LogParams(run.id, {{"family", family}, {"factors", factors}});
    store_->LogMetric(run.id, "ndcg@10", ndcg);
    store_->EndRun(run.id, status);
    ids_[name] = run.id;
    RawSql(store_->location().database, "UPDATE runs SET start_ms = " + std::to_string(1000 + 100 * ids_.size()) +
                                            " WHERE id = '" + run.id + "'");
  }
  std::vector<std::string> Names(const std::string& filter, const std::string& order_by = "") {
    std::vector<std::string> names;
    for (const auto& run : store_->ListRuns(Query("q", filter, order_by))) {
      names.push_back(run.name);
    }
    return names;
  }
  std::string FilterError(const std::string& filter) {
    return ErrorOf<InvalidArgument>([&] { store_->ListRuns(Query("", filter)); });
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::map<std::string, std::string> ids_;
};

TEST_F(RunQueries, DefaultOrderIsNewestFirstAndLimitApplies) {
  EXPECT_EQ(Names(""), (std::vector<std::string>{"d-nometrics", "c", "b", "a"}));
  EXPECT_EQ(store_->ListRuns(Query("q", "", "", "", 2)).size(), 2u);
  EXPECT_THROW(store_->ListRuns(Query("missing")), NotFound);
}

TEST_F(RunQueries, FilterComparesNumbersNumericallyAndTextAsText) {
  EXPECT_EQ(Names("metrics.ndcg@10 > 0.2", "name"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Names("metrics.NDCG@10>=0.35"), (std::vector<std::string>{"b"}));
  // "9" < "64" numerically, though not as text.
  EXPECT_EQ(Names("params.factors < 64", "name"), (std::vector<std::string>{"c"}));
  EXPECT_EQ(Names("params.factors < '64'", "name"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(Names("params.family = 'ials'", "name"), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Names("params.family != \"ials\"", "name"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(Names("tags.stage = 'prod'"), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Names("attributes.status = 'failed'"), (std::vector<std::string>{"c"}));
  EXPECT_EQ(Names("attributes.status = 'RUNNING'"), (std::vector<std::string>{"d-nometrics"}));
  EXPECT_EQ(Names("attributes.name like 'd-%'"), (std::vector<std::string>{"d-nometrics"}));
  EXPECT_EQ(Names("params.family like '_ls'"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(Names("params.family like 'IA%'"), (std::vector<std::string>{}));
  EXPECT_EQ(Names("params.family ilike 'IA%'", "name"), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Names("attributes.run_id = '" + ids_["b"] + "'"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(Names("attributes.experiment = 'q' and attributes.start_ms <= 1200", "name"),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Names("attributes.end_ms > 0", "name"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(Names("attributes.duration >= 0").size(), 4u);
}

TEST_F(RunQueries, MissingKeysDoNotMatchAndAndBindsTighterThanOr) {
  EXPECT_EQ(Names("metrics.ndcg@10 != 5", "name"), (std::vector<std::string>{"a", "b", "c"}));  // d lacks it
  EXPECT_EQ(Names("tags.stage != 'prod'"), (std::vector<std::string>{"c"}));
  // or(a-ials, and(b-als, false)) -> a, c
  EXPECT_EQ(Names("params.family = 'ials' or params.family = 'als' and metrics.ndcg@10 < 0.2", "name"),
            (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Names("(params.family = 'ials' or params.family = 'als') and metrics.ndcg@10 < 0.2", "name"),
            (std::vector<std::string>{"c"}));
  EXPECT_EQ(Names("params.family='ials' AND (tags.stage='dev' OR tags.stage='prod')", "name"),
            (std::vector<std::string>{"a", "c"}));
}

TEST_F(RunQueries, OrderByMetricsParamsAndAttributes) {
  EXPECT_EQ(Names("", "metrics.ndcg@10 desc"), (std::vector<std::string>{"b", "a", "c", "d-nometrics"}));
  EXPECT_EQ(Names("", "metrics.ndcg@10"), (std::vector<std::string>{"c", "a", "b", "d-nometrics"}));
  EXPECT_EQ(Names("", "params.factors desc"), (std::vector<std::string>{"b", "a", "c", "d-nometrics"}));
  EXPECT_EQ(Names("", "params.family, metrics.ndcg@10 desc"),
            (std::vector<std::string>{"b", "a", "c", "d-nometrics"}));
  EXPECT_EQ(Names("", "attributes.start_ms"), (std::vector<std::string>{"a", "b", "c", "d-nometrics"}));
  EXPECT_EQ(Names("", "start_ms ASC"), (std::vector<std::string>{"a", "b", "c", "d-nometrics"}));
}

TEST_F(RunQueries, SyntaxErrorsNameTheProblemAndColumn) {
  auto missing_op = FilterError("metrics.ndcg@10 0.3");
  EXPECT_NE(missing_op.find("operator"), std::string::npos) << missing_op;
  EXPECT_NE(missing_op.find("column 17"), std::string::npos) << missing_op;

  auto bad_prefix = FilterError("metric.x > 1 and foo.bar = 2");
  EXPECT_NE(bad_prefix.find("foo.bar"), std::string::npos) << bad_prefix;
  EXPECT_NE(bad_prefix.find("column 18"), std::string::npos) << bad_prefix;

  auto unterminated = FilterError("params.family = 'ials");
  EXPECT_NE(unterminated.find("unterminated"), std::string::npos) << unterminated;
  EXPECT_NE(unterminated.find("column 17"), std::string::npos) << unterminated;

  auto unbalanced = FilterError("(params.family = 'ials'");
  EXPECT_NE(unbalanced.find("')'"), std::string::npos) << unbalanced;
  auto extra = FilterError("params.family = 'ials')");
  EXPECT_NE(extra.find("column 23"), std::string::npos) << extra;

  auto no_value = FilterError("params.family =");
  EXPECT_NE(no_value.find("expected a number or 'quoted text'"), std::string::npos) << no_value;
  auto bare_word = FilterError("params.family = ials");
  EXPECT_NE(bare_word.find("column 17"), std::string::npos) << bare_word;
  auto dangling = FilterError("params.family = 'ials' and");
  EXPECT_NE(dangling.find("expected a condition"), std::string::npos) << dangling;

  auto attribute = FilterError("attributes.colour = 'red'");
  EXPECT_NE(attribute.find("colour"), std::string::npos) << attribute;
  EXPECT_NE(attribute.find("start_ms"), std::string::npos) << attribute;  // lists the allowed ones
  auto metric_text = FilterError("metrics.loss = 'low'");
  EXPECT_NE(metric_text.find("numeric"), std::string::npos) << metric_text;
  auto like_number = FilterError("metrics.loss like '1%'");
  EXPECT_NE(like_number.find("like"), std::string::npos) << like_number;
  auto status = FilterError("attributes.status = 'done'");
  EXPECT_NE(status.find("FINISHED"), std::string::npos) << status;

  auto order = ErrorOf<InvalidArgument>([&] { store_->ListRuns(Query("", "", "metrics.x sideways")); });
  EXPECT_NE(order.find("sideways"), std::string::npos) << order;
  auto order_column = ErrorOf<InvalidArgument>([&] { store_->ListRuns(Query("", "", "start_ms, bogus.key")); });
  EXPECT_NE(order_column.find("bogus.key"), std::string::npos) << order_column;
  EXPECT_NE(order_column.find("column 11"), std::string::npos) << order_column;
}

// ------------------------------------------------------------------ registry

TEST(Registry, RegisterAliasResolveAndVerify) {
  TempDir dir;
  auto location = LocationIn(dir);
  Store store(location);
  auto no_model = store.StartRun(Start()).id;
  auto message = ErrorOf<NotFound>([&] { store.RegisterModel("recs", no_model); });
  EXPECT_NE(message.find(no_model), std::string::npos);

  auto run1 = store.StartRun(Start()).id;
  store.LogArtifact(run1, dir.Write("m1.bin", "model one"), "model.bin", "model");
  auto run2 = store.StartRun(Start()).id;
  auto artifact2 = store.LogArtifact(run2, dir.Write("m2.bin", "model two"), "model.bin", "model");

  auto v1 = store.RegisterModel("recs", run1, "first");
  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(v1.run_id, run1);
  EXPECT_EQ(v1.description, "first");
  EXPECT_EQ(fs::path(v1.artifact_path), location.artifacts / run1 / "model.bin");  // no second copy
  EXPECT_EQ(v1.sha256, Sha256File(v1.artifact_path));
  auto v2 = store.RegisterModel("recs", run2);
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v2.size, 9u);
  EXPECT_EQ(v2.sha256, artifact2.sha256);

  store.SetAlias("recs", "production", 1);
  store.SetAlias("recs", "staging", 2);
  EXPECT_EQ(store.ResolveModel("recs@production").version, 1);
  EXPECT_EQ(store.ResolveModel("recs@staging").run_id, run2);
  EXPECT_EQ(store.ResolveModel("recs/1").run_id, run1);
  EXPECT_EQ(store.ResolveModel("recs").version, 2);  // latest
  store.SetAlias("recs", "production", 2);  // move the alias
  EXPECT_EQ(store.ResolveModel("recs@production").version, 2);

  auto model = store.GetModel("recs");
  ASSERT_EQ(model.versions.size(), 2u);
  EXPECT_EQ(model.aliases, (std::map<std::string, std::int64_t>{{"production", 2}, {"staging", 2}}));
  EXPECT_EQ(model.versions[1].aliases, (std::vector<std::string>{"production", "staging"}));
  EXPECT_EQ(store.ListModels().size(), 1u);

  store.DeleteAlias("recs", "staging");
  EXPECT_THROW(store.ResolveModel("recs@staging"), NotFound);
  EXPECT_THROW(store.DeleteAlias("recs", "staging"), NotFound);
  EXPECT_THROW(store.SetAlias("recs", "x", 7), NotFound);
  EXPECT_THROW(store.ResolveModel("recs/7"), NotFound);
  EXPECT_THROW(store.ResolveModel("other"), NotFound);
  EXPECT_THROW(store.GetModel("other"), NotFound);
  EXPECT_THROW(store.RegisterModel("bad name", run1), InvalidArgument);
  // A run whose model is registered cannot be deleted from under the registry.
  EXPECT_THROW(store.DeleteRun(run1), InvalidArgument);

  store.VerifyModelVersion(store.ResolveModel("recs/1"));
}

TEST(Registry, ChecksumMismatchIsDetected) {
  TempDir dir;
  auto location = LocationIn(dir);
  Store store(location);
  auto run = store.StartRun(Start()).id;
  store.LogArtifact(run, dir.Write("m.bin", "model bytes"), "model.bin", "model");
  auto version = store.RegisterModel("recs", run);
  fs::path stored = location.artifacts / run / "model.bin";
  { std::ofstream(stored, std::ios::binary) << "model bytez"; }
  auto verify = ErrorOf<FormatError>([&] { store.VerifyModelVersion(version); });
  EXPECT_NE(verify.find(stored.string()), std::string::npos) << verify;
  auto again = ErrorOf<FormatError>([&] { store.RegisterModel("recs", run); });
  EXPECT_NE(again.find(stored.string()), std::string::npos) << again;
  EXPECT_EQ(store.GetModel("recs").versions.size(), 1u);
}

TEST(Registry, IsRegistryReference) {
  TempDir dir;
  EXPECT_TRUE(IsRegistryReference("recs@production"));
  EXPECT_TRUE(IsRegistryReference("recs/3"));
  EXPECT_FALSE(IsRegistryReference("recs"));
  EXPECT_FALSE(IsRegistryReference("models/model.bin"));
  EXPECT_FALSE(IsRegistryReference(""));
  EXPECT_FALSE(IsRegistryReference("recs/latest"));
  fs::create_directories(dir / "m");
  dir.Write("m/3", "x");
  EXPECT_FALSE(IsRegistryReference((dir / "m" / "3").string()));
  auto cwd = fs::current_path();
  fs::current_path(dir.path());
  EXPECT_FALSE(IsRegistryReference("m/3"));  // an existing file wins
  fs::current_path(cwd);
}

}  // namespace
}  // namespace recforge::tracking
