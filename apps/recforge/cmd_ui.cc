// recforge ui: the experiment dashboard over the tracking store (read-only).
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include <pthread.h>

#include "cli_common.h"
#include "recforge/tracking/dashboard.h"

namespace recforge::cli {
namespace {

struct UiArgs {
  std::string host = "127.0.0.1";
  int port = 5000;
  std::string tracking_uri;
};

int RunUi(const UiArgs& args, const GlobalOptions& globals) {
  Session session(globals);
  const auto location = tracking::TrackingLocation::Resolve(args.tracking_uri);

  // SIGINT / SIGTERM are blocked before any server thread exists (threads inherit the
  // mask), then taken synchronously below: the server stops cleanly, no handler runs
  // on a random worker thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  tracking::Dashboard dashboard(location);
  dashboard.Start(args.host, args.port);
  const bool ipv6 = args.host.find(':') != std::string::npos;
  const std::string url =
      fmt::format("http://{}:{}/", ipv6 ? "[" + args.host + "]" : args.host, dashboard.port());
  session.log().Info("dashboard of {} at {} (Ctrl-C to stop)", location.database.string(), url);
  if (args.host != "127.0.0.1" && args.host != "localhost" && args.host != "::1") {
    session.log().Warn("--host {}: the dashboard has no authentication; anyone who can reach {} can read "
                       "every run, parameter and artifact path in the store", args.host, url);
  }
  // The URL is the command's report (stdout), so scripts can start it with --port 0.
  std::cout << url << std::endl;

  int received = 0;
  sigwait(&signals, &received);
  session.log().Info("{}: stopping the dashboard", received == SIGINT ? "SIGINT" : "SIGTERM");
  dashboard.Stop();
  return 0;
}

}  // namespace

void RegisterUiCommand(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<UiArgs>();
  CLI::App* cmd = app.add_subcommand(
      "ui", "Experiment dashboard: runs, metrics curves, comparisons and models in a browser");
  cmd->add_option("--port,-p", args->port, "TCP port (0: any free port; the URL is printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--host", args->host,
                  "Address to listen on (default loopback only; the dashboard has no authentication)")
      ->capture_default_str();
  cmd->add_option("--tracking-uri", args->tracking_uri,
                  "Tracking store: a .db file, a directory (mlruns.db + artifacts/) or sqlite:///path.db "
                  "(default: $RECFORGE_TRACKING_URI, else ./mlruns.db)");
  cmd->callback([args, &globals, &selected] {
    selected = [args, &globals] { return RunUi(*args, globals); };
  });
}

}  // namespace recforge::cli
