// recforge sweep | sweep-trial (hidden: one trial, run by `sweep` as a worker process)
//
// The parent expands the sweep file, prepares each preprocessing config once (in
// process, before its first trial), and runs every trial as a worker process: this
// same binary (/proc/self/exe) with `sweep-trial --spec FILE`. Workers run in their own
// process group (a terminal Ctrl-C reaches only the parent, which forwards SIGTERM and
// waits) and die with the parent (PR_SET_PDEATHSIG). The parent owns every child run:
// it creates it (parent_id = the sweep run, tag config_id, params) and ends it from the
// worker's exit status, so a crashed or killed worker never leaves a RUNNING run.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "cli_common.h"
#include "recforge/core/error.h"
#include "recforge/core/file_io.h"
#include "recforge/data/ingest.h"
#include "recforge/data/prepare.h"
#include "recforge/ops/resource_monitor.h"
#include "recforge/ops/sweep.h"
#include "recforge/tracking/recorder.h"
#include "recforge/tracking/store.h"
#include "tracking_cli.h"

extern char** environ;

namespace recforge::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// ---- worker processes ---------------------------------------------------------------

// Starts `args` (argv[0] included) as this binary in a new process group, stdout and
// stderr to `log`, SIGINT / SIGTERM at their defaults.
pid_t SpawnWorker(const std::vector<std::string>& args, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, mask;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigemptyset(&mask);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &mask);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (auto& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  // /proc/self/exe is resolved in the spawning process: the very binary that runs now,
  // even when the file was rebuilt since.
  int rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw IoError(fmt::format("cannot start a trial worker: {}", std::strerror(rc)));
  return pid;
}

// The last non-empty line of a worker log (its error message, usually).
std::string LastLine(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

// ---- sweep --------------------------------------------------------------------------

struct SweepArgs {
  std::string config;
  std::vector<std::string> inputs;
  std::string experiment;
  int max_parallel = 0;
  std::string memory_budget;
  std::string tracking_uri;
  std::string work_dir;
  bool keep_data = false;
  bool dry_run = false;
  bool json = false;
};

struct PrepareState {
  fs::path dir;
  bool owned = true;    // written by this sweep (removed after its trials)
  bool ready = false;
  std::string failure;  // non-empty: preparing failed
  std::size_t remaining = 0;  // trials not ended yet
  ops::DataShape shape;
  std::string hash;
};

struct RunningTrial {
  pid_t pid = 0;
  std::size_t trial = 0;
  std::string run_id;
  std::uint64_t estimate = 0;
  fs::path log, result;
  Clock::time_point started;
};

std::string ShortId(const std::string& id) { return id.substr(0, 8); }

std::string Direction(bool maximize) { return maximize ? "maximize" : "minimize"; }

int RunSweep(const SweepArgs& args, const GlobalOptions& globals) {
  Session session(globals);
  Logger& log = session.log();
  const auto sweep_start = Clock::now();

  ops::SweepConfig config = ops::LoadSweepConfig(args.config);
  if (!args.inputs.empty()) config.inputs = args.inputs;
  if (!args.experiment.empty()) config.experiment = args.experiment;
  if (args.max_parallel > 0) config.max_parallel = args.max_parallel;
  if (!args.memory_budget.empty()) config.memory_budget = ops::ParseByteSize(args.memory_budget);
  config.Validate();

  const ops::SweepInput input = ops::ResolveInput(config.inputs);
  const ops::SweepPlan plan = ops::ExpandSweep(config, input);
  const std::size_t n_trials = plan.trials.size();
  log.Info("sweep {}: {} trials ({} search; {} preprocessing x {} model configs{}), optimising {} ({})",
           args.config, n_trials, config.search == ops::SearchKind::kGrid ? "grid" : "random", plan.prepares.size(),
           plan.model_configs,
           config.search == ops::SearchKind::kRandom ? fmt::format(", {} drawn of {}", n_trials, plan.space_size)
                                                     : std::string(),
           config.metric, Direction(config.maximize));
  if (args.dry_run) {
    json trials = json::array();
    for (const auto& trial : plan.trials) {
      const auto& prepare = plan.prepares[trial.prepare_index];
      trials.push_back({{"trial", trial.index + 1},
                        {"config_id", trial.config_id},
                        {"model", trial.model.CanonicalSpec()},
                        {"prepare", prepare.ToJson()},
                        {"label", trial.label}});
      if (!args.json) {
        std::cout << fmt::format("{:>4}  {}  {}  [{}]\n", trial.index + 1, trial.config_id,
                                 trial.model.CanonicalSpec(), prepare.Label());
      }
    }
    if (args.json) {
      PrintJson({{"trials", trials}, {"preprocessing_configs", plan.prepares.size()},
                 {"model_configs", plan.model_configs}, {"space_size", plan.space_size}});
    }
    return 0;
  }

  ops::ResourceMonitor monitor;
  const ops::ResourceReadings first_look = monitor.Read();
  ops::SchedulerLimits limits;
  limits.max_parallel = config.max_parallel > 0 ? config.max_parallel : first_look.cpus;
  limits.memory_budget = config.memory_budget;
  limits.threads_per_trial = config.threads_per_trial;
  log.Info("machine: {} cores, load {:.1f}, {} free; max_parallel {}, {} thread(s) per trial, memory budget {}",
           first_look.cpus, first_look.load1, ops::FormatBytes(first_look.mem_available), limits.max_parallel,
           limits.threads_per_trial, limits.memory_budget > 0 ? ops::FormatBytes(limits.memory_budget) : "none");

  // The sweep run; its children are the trials.
  const tracking::TrackingLocation location = tracking::TrackingLocation::Resolve(args.tracking_uri);
  tracking::RunRecorder::InstallInterruptHandlers();
  tracking::RunStart start;
  start.experiment = config.experiment;
  start.name = fmt::format("sweep-{}", fs::path(args.config).stem().string());
  start.command = CommandLine();
  start.tags = {{"kind", "sweep"}, {"metric", config.metric}, {"direction", Direction(config.maximize)}};
  tracking::RunRecorder sweep_run(location, start);
  tracking::Store& store = sweep_run.store();
  const std::string sweep_id = sweep_run.run_id();
  store.LogParams(sweep_id, {{"config", args.config},
                             {"input", fmt::format("{}", fmt::join(config.inputs, " "))},
                             {"input_hash", input.hash},
                             {"metric", config.metric},
                             {"direction", Direction(config.maximize)},
                             {"search", config.search == ops::SearchKind::kGrid ? "grid" : "random"},
                             {"trials", std::to_string(n_trials)},
                             {"max_parallel", std::to_string(limits.max_parallel)},
                             {"memory_budget", std::to_string(limits.memory_budget)}});
  try {
    store.LogArtifact(sweep_id, args.config, "sweep.yaml", "config");
  } catch (const Error& error) {
    log.Warn("could not store the sweep file as an artifact: {}", error.what());
  }
  log.Info("sweep run {} in experiment '{}' ({})", sweep_id, config.experiment, location.database.string());

  // Resume: trials whose config_id already FINISHED in this experiment are skipped.
  std::vector<ops::TrialOutcome> outcomes(n_trials);
  std::vector<PrepareState> prepares(plan.prepares.size());
  std::deque<std::size_t> pending;
  std::size_t resumed = 0;
  for (const auto& trial : plan.trials) {
    auto& outcome = outcomes[trial.index];
    outcome.index = trial.index;
    outcome.config_id = trial.config_id;
    outcome.label = trial.label;
    outcome.params = trial.Params(plan.prepares[trial.prepare_index]);
    outcome.value = std::nan("");
    if (auto done = store.FindFinishedRunByTag(config.experiment, "config_id", trial.config_id)) {
      outcome.run_id = done->id;
      outcome.status = "RESUMED";
      if (auto found = done->metrics.find(config.metric); found != done->metrics.end()) outcome.value = found->second;
      log.Info("trial {}/{} [{}] {}: already FINISHED in run {} ({}={:.4f}), skipped", trial.index + 1, n_trials,
               trial.config_id, trial.label, ShortId(done->id), config.metric, outcome.value);
      ++resumed;
      continue;
    }
    pending.push_back(trial.index);
    ++prepares[trial.prepare_index].remaining;
  }
  if (resumed > 0) {
    log.Info("resume: {} of {} configs already FINISHED, skipped; {} to run", resumed, n_trials, pending.size());
  }

  // Where prepared data, trial specs and logs go.
  fs::path work = args.work_dir;
  const bool own_work = work.empty();
  if (own_work) {
    work = fs::temp_directory_path() /
           fmt::format("recforge-sweep-{}-{}", ::getpid(), ShortId(sweep_id));
  }
  fs::create_directories(work / "trials");
  for (std::size_t p = 0; p < prepares.size(); ++p) {
    if (plan.prepares[p].as_is) {
      prepares[p].dir = input.paths[0];
      prepares[p].owned = false;
    } else {
      prepares[p].dir = work / fmt::format("prepare-{}", p + 1);
    }
  }

  std::optional<data::Dataset> raw;  // loaded on first need, freed after the last prepare
  auto prepare_config = [&](std::size_t p) {
    PrepareState& state = prepares[p];
    const ops::PrepareConfig& prepare = plan.prepares[p];
    auto begin = Clock::now();
    try {
      if (!state.owned) {
        state.shape = ops::ReadShape(state.dir);
        state.hash = input.hash;
      } else {
        if (!raw) {
          data::IngestOptions ingest;
          ingest.format = data::ParseInputFormat(config.format);
          raw = data::IngestOrLoad(input.paths, ingest, session.ctx());
        }
        std::size_t later = 0;
        for (std::size_t q = p + 1; q < prepares.size(); ++q) later += prepares[q].remaining > 0 ? 1 : 0;
        data::PreparedDataset prepared = later == 0
                                             ? data::Prepare(std::move(*raw), prepare.options, session.ctx())
                                             : data::Prepare(*raw, prepare.options, session.ctx());
        if (later == 0) raw.reset();
        data::SavePrepared(prepared, state.dir);
        state.shape = ops::ShapeOf(prepared);
        state.hash = prepared.meta.value("content_hash", std::string());
      }
      state.ready = true;
      log.Info("prepared config {}/{} ({}): {} users, {} items, {} train / {} total rows in {:.2f}s", p + 1,
               prepares.size(), prepare.Label(), state.shape.n_users, state.shape.n_items, state.shape.train_rows,
               state.shape.total_rows, Seconds(begin));
    } catch (const Error& error) {
      state.failure = error.what();
      log.Error("preparing config {}/{} ({}) failed: {}", p + 1, prepares.size(), prepare.Label(), error.what());
    }
  };
  auto release_prepare = [&](std::size_t p) {
    PrepareState& state = prepares[p];
    if (state.remaining > 0 || !state.owned || args.keep_data) return;
    std::error_code ec;
    fs::remove_all(state.dir, ec);
    log.Debug("removed {} (config {} done)", state.dir.string(), p + 1);
  };

  auto start_child_run = [&](const ops::Trial& trial) {
    tracking::RunStart child;
    child.experiment = config.experiment;
    child.name = fmt::format("trial-{}-{}", trial.index + 1, trial.model.family());
    child.parent_id = sweep_id;
    child.command = fmt::format("recforge sweep-trial ({})", trial.model.CanonicalSpec());
    child.tags = {{"config_id", trial.config_id}, {"sweep", sweep_id}, {"trial", std::to_string(trial.index + 1)}};
    std::string run_id = store.StartRun(child).id;
    store.LogParams(run_id, trial.Params(plan.prepares[trial.prepare_index]));
    return run_id;
  };

  std::vector<RunningTrial> running;
  std::size_t max_concurrency = 0, finished = 0, failed = 0, killed = 0;
  ops::WaitReason last_wait = ops::WaitReason::kNone;
  auto last_heartbeat = Clock::now();

  auto end_trial = [&](const RunningTrial& job, int status, bool stopping) {
    const ops::Trial& trial = plan.trials[job.trial];
    auto& outcome = outcomes[job.trial];
    outcome.run_id = job.run_id;
    std::string reason;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      try {
        ops::TrialResult result = ops::TrialResult::FromJson(json::parse(ReadFileToString(job.result)));
        auto found = result.metrics.find(config.metric);
        if (found != result.metrics.end()) outcome.value = found->second;
        outcome.status = "FINISHED";
        store.EndRun(job.run_id, tracking::RunStatus::kFinished);
        ++finished;
        if (found == result.metrics.end()) {
          log.Warn("trial {}/{}: the report has no '{}' (does the model produce it?)", trial.index + 1, n_trials,
                   config.metric);
        }
        log.Info("trial {}/{} finished in {:.1f}s: {}={:.4f} ({}; run {})", trial.index + 1, n_trials,
                 Seconds(job.started), config.metric, outcome.value, trial.label, ShortId(job.run_id));
      } catch (const std::exception& error) {
        reason = fmt::format("no readable result: {}", error.what());
      }
    } else if (WIFSIGNALED(status) && (stopping || WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT)) {
      outcome.status = "KILLED";
      store.EndRun(job.run_id, tracking::RunStatus::kKilled,
                   stopping ? "sweep interrupted" : fmt::format("killed by signal {}", WTERMSIG(status)));
      ++killed;
      log.Warn("trial {}/{} stopped (run {} KILLED)", trial.index + 1, n_trials, ShortId(job.run_id));
    } else if (WIFSIGNALED(status)) {
      reason = fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
      reason = fmt::format("exit code {}: {}", WEXITSTATUS(status), LastLine(job.log));
    }
    if (!reason.empty()) {
      outcome.status = "FAILED";
      store.EndRun(job.run_id, tracking::RunStatus::kFailed, reason);
      ++failed;
      log.Error("trial {}/{} FAILED ({}; run {}): {}", trial.index + 1, n_trials, trial.label, ShortId(job.run_id),
                reason);
    }
    try {
      store.LogArtifact(job.run_id, job.log, "trial.log", "log");
    } catch (const Error& error) {
      log.Debug("trial log not stored: {}", error.what());
    }
    --prepares[trial.prepare_index].remaining;
    release_prepare(trial.prepare_index);
  };

  auto reap = [&](bool block, bool stopping) {
    bool any = false;
    for (std::size_t k = 0; k < running.size();) {
      int status = 0;
      pid_t got = ::waitpid(running[k].pid, &status, block ? 0 : WNOHANG);
      if (got == running[k].pid || (got < 0 && errno == ECHILD)) {
        if (got < 0) status = 0x7f00;  // unknown exit: reported as a failure
        RunningTrial job = running[k];
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
        end_trial(job, status, stopping);
        any = true;
      } else {
        ++k;
      }
    }
    return any;
  };

  const std::string threads_text = std::to_string(limits.threads_per_trial);
  while (!pending.empty() || !running.empty()) {
    if (tracking::RunRecorder::Interrupted()) break;
    bool progressed = reap(false, false);
    if (!pending.empty()) {
      const ops::Trial& trial = plan.trials[pending.front()];
      PrepareState& state = prepares[trial.prepare_index];
      if (!state.ready && state.failure.empty()) {
        prepare_config(trial.prepare_index);
        progressed = true;
      }
      if (!state.failure.empty()) {
        // Every trial of a config that could not be prepared fails, visibly.
        std::string run_id = start_child_run(trial);
        store.EndRun(run_id, tracking::RunStatus::kFailed, "prepare failed: " + state.failure);
        outcomes[trial.index].run_id = run_id;
        outcomes[trial.index].status = "FAILED";
        ++failed;
        --state.remaining;
        pending.pop_front();
        continue;
      }
      if (tracking::RunRecorder::Interrupted()) break;
      const std::uint64_t estimate = ops::EstimateTrialBytes(state.shape, trial.model, limits.threads_per_trial);
      ops::RunningTrials now;
      now.count = running.size();
      for (const auto& job : running) now.estimated_bytes += job.estimate;
      const ops::StartDecision decision = ops::DecideStart(monitor.Read(), limits, now, estimate);
      if (decision.verdict == ops::StartVerdict::kStart) {
        last_wait = ops::WaitReason::kNone;
        RunningTrial job;
        job.trial = trial.index;
        job.estimate = estimate;
        job.run_id = start_child_run(trial);
        const fs::path stem = work / "trials" / fmt::format("trial-{}", trial.index + 1);
        job.log = stem.string() + ".log";
        job.result = stem.string() + ".result.json";
        ops::TrialSpec spec;
        spec.run_id = job.run_id;
        spec.tracking = location.database.string();
        spec.artifacts = location.artifacts.string();
        spec.dataset = state.dir.string();
        spec.model = trial.model.CanonicalSpec();
        spec.eval = config.eval;
        spec.seed = config.train_seed;
        spec.result = job.result.string();
        json spec_json = spec.ToJson();
        spec_json["parent_pid"] = ::getpid();
        const fs::path spec_path = stem.string() + ".spec.json";
        WriteFileAtomic(spec_path, spec_json.dump(2));
        const auto message = fmt::format("starting trial {}/{} ({}): {} (run {})", trial.index + 1, n_trials,
                                         decision.message, trial.label, ShortId(job.run_id));
        if (decision.reason != ops::WaitReason::kNone) {
          log.Warn("{}", message);
        } else {
          log.Info("{}", message);
        }
        try {
          job.pid = SpawnWorker({"recforge", "--threads", threads_text, "--no-progress", "--log-format",
                                 globals.log_format, "sweep-trial", "--spec", spec_path.string()},
                                job.log);
        } catch (const Error& error) {
          store.EndRun(job.run_id, tracking::RunStatus::kFailed, error.what());
          throw;
        }
        job.started = Clock::now();
        running.push_back(job);
        pending.pop_front();
        max_concurrency = std::max(max_concurrency, running.size());
        progressed = true;
      } else if (decision.reason != last_wait) {
        last_wait = decision.reason;
        log.Info("{} (trial {}/{} est. {})", decision.message, trial.index + 1, n_trials,
                 ops::FormatBytes(estimate));
      }
    }
    if (Seconds(last_heartbeat) >= 30) {
      for (const auto& job : running) {
        try {
          store.Heartbeat(job.run_id);
        } catch (const Error&) {
          // The next heartbeat retries.
        }
      }
      last_heartbeat = Clock::now();
    }
    if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  const bool interrupted = tracking::RunRecorder::Interrupted();
  if (interrupted) {
    log.Warn("interrupted: stopping {} running trial(s); {} not started", running.size(), pending.size());
    for (const auto& job : running) ::kill(-job.pid, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!running.empty() && Clock::now() < deadline) {
      if (!reap(false, true)) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (const auto& job : running) ::kill(-job.pid, SIGKILL);
    reap(true, true);
  }

  // Clean up what this sweep wrote (prepared data is reproducible from its parameters).
  if (!args.keep_data) {
    std::error_code ec;
    if (own_work) {
      fs::remove_all(work, ec);
    } else {
      fs::remove_all(work / "trials", ec);
      for (std::size_t p = 0; p < prepares.size(); ++p) {
        if (prepares[p].owned) fs::remove_all(prepares[p].dir, ec);
      }
    }
  } else {
    log.Info("kept prepared data, trial specs and logs in {}", work.string());
  }

  const auto top = ops::RankOutcomes(outcomes, config.maximize, 5);
  const double seconds = Seconds(sweep_start);
  log.Info("sweep {}: {} trials: {} finished, {} resumed, {} failed, {} killed, {} not started; max concurrency {}; "
           "{:.1f}s",
           interrupted ? "interrupted" : "done", n_trials, finished, resumed, failed, killed,
           interrupted ? pending.size() : 0, max_concurrency, seconds);
  if (!top.empty()) {
    store.LogMetric(sweep_id, "best_" + config.metric, top.front().value);
    store.SetTags(sweep_id, {{"best_run_id", top.front().run_id}, {"best_config_id", top.front().config_id}});
  }
  store.LogMetrics(sweep_id, {{"trials_finished", static_cast<double>(finished), 0, 0},
                              {"trials_resumed", static_cast<double>(resumed), 0, 0},
                              {"trials_failed", static_cast<double>(failed), 0, 0},
                              {"max_concurrency", static_cast<double>(max_concurrency), 0, 0}});

  if (args.json) {
    auto row = [&](const ops::TrialOutcome& outcome) {
      return json{{"trial", outcome.index + 1}, {"run_id", outcome.run_id},   {"config_id", outcome.config_id},
                  {"status", outcome.status},    {"value", outcome.value},     {"label", outcome.label},
                  {"params", outcome.params}};
    };
    json top_rows = json::array(), all_rows = json::array();
    for (const auto& outcome : top) top_rows.push_back(row(outcome));
    for (const auto& outcome : outcomes) all_rows.push_back(row(outcome));
    PrintJson({{"sweep_run_id", sweep_id},
               {"experiment", config.experiment},
               {"metric", config.metric},
               {"direction", Direction(config.maximize)},
               {"status", interrupted ? "KILLED" : "FINISHED"},
               {"trials", n_trials},
               {"finished", finished},
               {"resumed", resumed},
               {"failed", failed},
               {"killed", killed},
               {"max_concurrency", max_concurrency},
               {"seconds", seconds},
               {"best_run_id", top.empty() ? json(nullptr) : json(top.front().run_id)},
               {"best_value", top.empty() ? json(nullptr) : json(top.front().value)},
               {"top", top_rows},
               {"outcomes", all_rows}});
  } else if (!top.empty()) {
    std::cout << fmt::format("top {} of {} configs by {} ({}):\n", top.size(), n_trials, config.metric,
                             Direction(config.maximize));
    std::size_t width = std::max<std::size_t>(config.metric.size(), 6);
    std::cout << fmt::format("  {:>4}  {:>{}}  {:<8}  {:<16}  {}\n", "rank", config.metric, width, "run",
                             "config_id", "params");
    for (std::size_t r = 0; r < top.size(); ++r) {
      std::cout << fmt::format("  {:>4}  {:>{}.4f}  {:<8}  {:<16}  {}\n", r + 1, top[r].value, width,
                               ShortId(top[r].run_id), top[r].config_id, top[r].label);
    }
    std::cout << "best run: " << top.front().run_id << "\n";
  } else {
    std::cout << "no trial produced " << config.metric << "\n";
  }

  if (interrupted) return 130;  // the recorder's destructor ends the sweep run KILLED
  if (failed > 0) {
    sweep_run.Fail(fmt::format("{} of {} trials failed", failed, n_trials));
    return 1;
  }
  sweep_run.Finish();
  return 0;
}

void AddSweep(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sweep", "Hyper-parameter sweep: preprocessing x model grids (or random search), trials in parallel "
               "worker processes, each a child run in tracking");
  cmd->add_option("--config,-c", args->config, "Sweep file (YAML; see README 'Sweeps' and examples/sweep.yaml)")
      ->required();
  cmd->add_option("--input,-i", args->inputs, "Override the file's input (raw files or a dataset directory)");
  cmd->add_option("--experiment", args->experiment, "Override the file's experiment");
  cmd->add_option("--max-parallel", args->max_parallel, "Override the file's max_parallel")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--memory-budget", args->memory_budget, "Override the file's memory_budget (e.g. 2GiB)");
  AddTrackingUriOption(cmd, args->tracking_uri);
  cmd->add_option("--work-dir", args->work_dir, "Where prepared data and trial logs go (default: a temp dir)");
  cmd->add_flag("--keep-data", args->keep_data, "Keep the prepared datasets and trial logs");
  cmd->add_flag("--dry-run", args->dry_run, "List the trials (with config ids) and stop");
  cmd->add_flag("--json", args->json, "Print the summary (best configs, best run id) as JSON on stdout");
  cmd->callback([args, &globals, &selected] { selected = [args, &globals] { return RunSweep(*args, globals); }; });
}

// ---- sweep-trial (hidden) -----------------------------------------------------------

int RunSweepTrial(const std::string& spec_path, const GlobalOptions& globals) {
  Session session(globals);
  const json spec_json = json::parse(ReadFileToString(spec_path));
  // Die with the sweep: a parent killed outright must not leave orphaned trials.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (spec_json.contains("parent_pid") && ::getppid() != spec_json["parent_pid"].get<pid_t>()) {
    throw Error("the sweep process is gone");
  }
  const ops::TrialSpec spec = ops::TrialSpec::FromJson(spec_json);
  std::unique_ptr<tracking::Store> store;
  if (!spec.tracking.empty()) {
    tracking::TrackingLocation location;
    location.database = spec.tracking;
    location.artifacts = spec.artifacts.empty() ? fs::path(spec.tracking).parent_path() / "artifacts"
                                                : fs::path(spec.artifacts);
    store = std::make_unique<tracking::Store>(location);
  }
  session.log().Info("trial: {} on {} (run {})", spec.model, spec.dataset, spec.run_id);
  ops::TrialResult result = ops::RunTrial(spec, session.ctx(), store.get());
  WriteFileAtomic(spec.result, result.ToJson().dump());
  return 0;
}

void AddSweepTrial(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto spec = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("sweep-trial", "One trial of a sweep (internal)");
  cmd->group("");  // hidden from --help
  cmd->add_option("--spec", *spec, "Trial spec JSON file")->required();
  cmd->callback([spec, &globals, &selected] {
    selected = [spec, &globals] { return RunSweepTrial(*spec, globals); };
  });
}

}  // namespace

void RegisterSweepCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  AddSweep(app, globals, selected);
  AddSweepTrial(app, globals, selected);
}

}  // namespace recforge::cli
