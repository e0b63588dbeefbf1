// recforge serve: the recommendation API daemon (issue 5) over a trained model and the
// prepared dataset it was trained on. The HTTP API lives in src/serve/server.cc; this
// file parses the options, resolves registry references, builds the loader and runs
// the daemon until SIGTERM / SIGINT.
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include <pthread.h>

#include "cli_common.h"
#include "recforge/core/error.h"
#include "recforge/data/dataset.h"
#include "recforge/models/model_io.h"
#include "recforge/serve/recommendation_service.h"
#include "recforge/serve/server.h"
#include "recforge/tracking/store.h"

namespace recforge::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string dataset;
  std::string host = "127.0.0.1";
  int port = 8000;
  int blocking_threads = 2;
  std::string admin_token;
  std::string events = "events.jsonl";
  bool no_events = false;
  double poll_alias = 0;
  std::string tracking_uri;
  double read_timeout = 5;
  bool no_access_log = false;
  std::string content_model;  // a hybrid model file for fallback:content (issue 6)
  serve::AnnOptions ann;
  bool no_ann = false;
};

serve::AnnOptions AnnOptionsOf(const ServeArgs& args) {
  serve::AnnOptions ann = args.ann;
  ann.enabled = !args.no_ann;
  return ann;
}

// A model reference -> the service built from it (the loader of the server).
std::shared_ptr<serve::RecommendationService> BuildService(const std::string& reference, const ServeArgs& args,
                                                           int threads) {
  serve::ServedModelInfo info;
  std::string path = reference;
  if (tracking::IsRegistryReference(reference)) {
    tracking::Store store(tracking::TrackingLocation::Resolve(args.tracking_uri));
    const tracking::ModelVersion version = store.ResolveModel(reference);
    store.VerifyModelVersion(version);
    path = version.artifact_path;
    info.name = version.name;
    info.version = std::to_string(version.version);
    info.sha256 = version.sha256;
  }
  const models::ModelHeader header = models::ReadModelHeader(path);
  if (info.name.empty()) {
    info.name = fs::path(path).stem().string();
    info.version = header.payload_sha256.substr(0, 12);
    info.sha256 = header.payload_sha256;
  }
  std::shared_ptr<const models::Recommender> model = models::LoadModel(path);
  data::PreparedDataset dataset = data::LoadPrepared(args.dataset);
  const std::string dataset_hash = dataset.meta.value("content_hash", std::string());
  if (!model->dataset_hash().empty() && !dataset_hash.empty() && model->dataset_hash() != dataset_hash) {
    throw InvalidArgument(fmt::format("model {} was trained on dataset {}, but --dataset {} is {}", path,
                                      model->dataset_hash().substr(0, 12), args.dataset,
                                      dataset_hash.substr(0, 12)));
  }
  info.spec = model->Spec();
  info.family = model->family();
  info.path = path;
  auto service = std::make_shared<serve::RecommendationService>(std::move(model), std::move(dataset), std::move(info),
                                                                serve::FallbackOptions{}, AnnOptionsOf(args), threads);
  if (!args.content_model.empty()) service->SetContentModel(models::LoadModel(args.content_model));
  return service;
}

int RunServe(const ServeArgs& args, GlobalOptions globals, bool log_format_given) {
  if (!log_format_given) globals.log_format = "json";  // a daemon logs JSON lines unless told otherwise
  Session session(globals);
  const int threads = session.ctx().threads;
  if (args.poll_alias < 0) throw InvalidArgument("--poll-alias must be >= 0 seconds");
  if (args.poll_alias > 0 && args.model.find('@') == std::string::npos) {
    throw InvalidArgument(fmt::format("--poll-alias needs --model NAME@ALIAS (got '{}')", args.model));
  }
  std::string admin_token = args.admin_token;
  if (admin_token.empty()) {
    if (const char* env = std::getenv("RECFORGE_ADMIN_TOKEN"); env) admin_token = env;
  }

  // SIGINT / SIGTERM are blocked before any thread exists (threads inherit the mask) and
  // taken synchronously below, so shutdown is an orderly drain, not a handler on a
  // random worker.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  serve::ServerOptions options;
  options.threads = threads;
  options.blocking_threads = args.blocking_threads;
  options.admin_token = admin_token;
  if (!args.no_events) options.events_path = args.events;
  options.read_timeout_ms = static_cast<int>(args.read_timeout * 1000);
  options.write_timeout_ms = static_cast<int>(args.read_timeout * 1000);
  options.access_log = !args.no_access_log;
  options.json_logs = globals.log_format == "json";
  options.logger = &session.log();
  serve::Server server(options, [&args, threads](const std::string& reference) {
    return BuildService(reference, args, threads);
  });
  server.Start(args.host, args.port);
  const bool ipv6 = args.host.find(':') != std::string::npos;
  const std::string url = fmt::format("http://{}:{}/", ipv6 ? "[" + args.host + "]" : args.host, server.port());
  // The URL is the command's report (stdout), so scripts and tests can use --port 0.
  std::cout << url << std::endl;
  session.log().Info("listening on {} ({} event-loop threads, {} for blocking requests); loading {}", url,
                     threads, args.blocking_threads, args.model);
  if (args.no_events) {
    session.log().Warn("--no-events: events are kept in memory only and lost on restart");
  } else {
    session.log().Info("event log: {}", args.events);
  }
  if (admin_token.empty()) session.log().Info("no --admin-token: POST /admin/reload answers 403");
  if (args.host != "127.0.0.1" && args.host != "localhost" && args.host != "::1") {
    session.log().Warn("--host {}: the API has no authentication except on /admin/*", args.host);
  }
  server.LoadModel(args.model);
  session.log().Info("ready: {} docs at {}docs", url, url);

  // --poll-alias: re-resolve NAME@ALIAS and reload when it points at another version.
  std::mutex poll_mutex;
  std::condition_variable poll_wake;
  bool stopping = false;
  std::thread poller;
  if (args.poll_alias > 0) {
    poller = std::thread([&] {
      const auto period = std::chrono::duration<double>(args.poll_alias);
      std::string served;
      try {
        tracking::Store store(tracking::TrackingLocation::Resolve(args.tracking_uri));
        served = std::to_string(store.ResolveModel(args.model).version);
      } catch (const std::exception& error) {
        session.log().Warn("--poll-alias: cannot resolve {}: {}", args.model, error.what());
      }
      std::unique_lock lock(poll_mutex);
      while (!poll_wake.wait_for(lock, period, [&] { return stopping; })) {
        lock.unlock();
        try {
          tracking::Store store(tracking::TrackingLocation::Resolve(args.tracking_uri));
          const std::string version = std::to_string(store.ResolveModel(args.model).version);
          if (version != served) {
            session.log().Info("--poll-alias: {} now points at version {} (was {}); reloading", args.model,
                               version, served.empty() ? "?" : served);
            server.LoadModel(args.model);
            served = version;
          }
        } catch (const std::exception& error) {
          session.log().Error("--poll-alias: reload of {} failed, old model still serving: {}", args.model,
                              error.what());
        }
        lock.lock();
      }
    });
  }

  int received = 0;
  sigwait(&signals, &received);
  session.log().Info("{}: draining in-flight requests and stopping", received == SIGINT ? "SIGINT" : "SIGTERM");
  {
    std::lock_guard lock(poll_mutex);
    stopping = true;
  }
  poll_wake.notify_all();
  if (poller.joinable()) poller.join();
  server.Drain();
  session.log().Info("stopped");
  return 0;
}

}  // namespace

void RegisterServeCommand(CLI::App& app, GlobalOptions& globals, CommandBody& selected) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Recommendation API daemon: a trained model (file or NAME@ALIAS) over HTTP/JSON");
  cmd->add_option("--model,-m", args->model, "Model file, or registry reference NAME@ALIAS / NAME/N")->required();
  cmd->add_option("--dataset,-d", args->dataset, "Prepared dataset the model was trained on")->required();
  cmd->add_option("--host", args->host, "Address to listen on (default loopback only)")->capture_default_str();
  cmd->add_option("--port,-p", args->port, "TCP port (0: any free port; the URL is printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--blocking-threads", args->blocking_threads,
                  "Threads for the requests that block (POST /events fsync, /admin/reload, /recommend/batch); "
                  "the others run on --threads event-loop threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--admin-token", args->admin_token,
                  "Bearer token for POST /admin/reload (else $RECFORGE_ADMIN_TOKEN; none: admin refused)");
  cmd->add_option("--events", args->events, "Durable event log (JSON lines, fsync'd before each answer)")
      ->capture_default_str();
  cmd->add_flag("--no-events", args->no_events, "Keep events in memory only (not durable)");
  cmd->add_option("--poll-alias", args->poll_alias,
                  "Re-resolve --model NAME@ALIAS every SECONDS and reload when its version changes (0: off)");
  cmd->add_option("--tracking-uri", args->tracking_uri,
                  "Tracking store for NAME@ALIAS (default: $RECFORGE_TRACKING_URI, else ./mlruns.db)");
  cmd->add_option("--read-timeout", args->read_timeout,
                  "Seconds a request may take to arrive from its first byte (a stalled client is closed), "
                  "and an answer to be written")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  cmd->add_flag("--no-access-log", args->no_access_log, "No log line per request");
  cmd->add_option("--content-model", args->content_model,
                  "A hybrid model file (trained on --dataset) that scores fallback:content and the similar items "
                  "of new items, instead of TF-IDF (automatic when --model is a hybrid)");
  // The HNSW retrieval of factor models with large catalogs (docs/benchmarks.md: the
  // graph search is most of a 1M-item request; fewer candidates trade recall for time).
  cmd->add_option("--ann-min-items", args->ann.min_items,
                  "Use the HNSW index for factor models with at least this many items (exact scoring below)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 40))
      ->capture_default_str();
  cmd->add_option("--ann-candidates", args->ann.candidates,
                  "Items retrieved from the index per request (the user's seen items are skipped inside the search); those that can still reach the top k are re-scored exactly")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  cmd->add_option("--ann-ef", args->ann.ef_search,
                  "HNSW ef at search time (the search list; at least the number retrieved is used)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--ann-m", args->ann.m, "HNSW graph degree M (a build option: a new value rebuilds the cache)")
      ->check(CLI::Range(2, 256))
      ->capture_default_str();
  cmd->add_option("--ann-ef-construction", args->ann.ef_construction,
                  "HNSW ef at build time (a build option: a new value rebuilds the cache)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_flag("--no-ann", args->no_ann, "Always score every item exactly");
  CLI::Option* log_format = app.get_option("--log-format");
  cmd->callback([args, &globals, &selected, log_format] {
    selected = [args, &globals, log_format] { return RunServe(*args, globals, log_format->count() > 0); };
  });
}

}  // namespace recforge::cli
