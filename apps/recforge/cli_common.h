// Shared plumbing of the recforge CLI: global options, the Context built from them,
// and the single place where library errors become messages and exit codes
// (0 ok, 1 runtime failure, 2 usage error).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "recforge/core/context.h"
#include "recforge/core/progress.h"

namespace recforge::cli {

// Options every subcommand accepts (they may appear before or after the subcommand).
struct GlobalOptions {
  int threads = 0;  // 0 = all hardware threads
  std::string log_level = "info";
  std::string log_format = "text";
  bool quiet = false;
  bool no_progress = false;
};

// Owns the logger and progress bar behind a Context for one command.
class Session {
 public:
  explicit Session(const GlobalOptions& options);
  Context& ctx() { return ctx_; }
  Logger& log() { return logger_; }
  void FinishProgress() { progress_.Finish(); }

 private:
  Logger logger_;
  ProgressBar progress_;
  Context ctx_;
};

// Registers --threads, --log-level, --log-format, --quiet, --no-progress on `app`.
void AddGlobalOptions(CLI::App& app, GlobalOptions& options);

// Prints JSON to stdout (pretty, one document).
void PrintJson(const nlohmann::json& value);

// Runs a subcommand body, mapping exceptions to one stderr line and an exit code.
int RunGuarded(const std::function<int()>& body);

// Each file registers one group of subcommands; the callback stores the body to run.
using CommandBody = std::function<int()>;
void RegisterDataCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected);
void RegisterModelCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected);  // train, recommend
void RegisterEvalCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected);   // evaluate, baselines
void RegisterUiCommand(CLI::App& app, GlobalOptions& globals, CommandBody& selected);      // ui (cmd_ui.cc)
void RegisterSweepCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected);  // sweep (cmd_sweep.cc)
void RegisterRunsCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected);   // runs, experiments (cmd_runs.cc)
void RegisterServeCommand(CLI::App& app, GlobalOptions& globals, CommandBody& selected);   // serve (cmd_serve.cc)

}  // namespace recforge::cli
