// recforge: the command-line entry point. This file is the subcommand table; each
// group of subcommands lives in its own cmd_*.cc.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "recforge/core/version.h"

namespace recforge::cli {
// models register | list | show | alias | delete-alias | promote (cmd_registry.cc)
void RegisterRegistryCommands(CLI::App& app, GlobalOptions& globals, CommandBody& selected);
}  // namespace recforge::cli

int main(int argc, char** argv) {
  using namespace recforge;
  CLI::App app{"RecForge: recommender systems from raw logs to a served API"};
  app.name("recforge");
  app.set_version_flag("--version,-V", std::string("recforge ") + Version() + " (" + GitCommit() + ")");
  app.require_subcommand(1);
  app.fallthrough();

  cli::GlobalOptions globals;
  cli::AddGlobalOptions(app, globals);
  cli::CommandBody selected;
  cli::RegisterDataCommands(app, globals, selected);
  cli::RegisterModelCommands(app, globals, selected);
  cli::RegisterRegistryCommands(app, globals, selected);  // needs the "models" group above
  cli::RegisterEvalCommands(app, globals, selected);
  cli::RegisterUiCommand(app, globals, selected);
  cli::RegisterSweepCommands(app, globals, selected);
  cli::RegisterRunsCommands(app, globals, selected);
  cli::RegisterServeCommand(app, globals, selected);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // usage error
  }
  if (!selected) {
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }
  return cli::RunGuarded(selected);
}
