// The experiment dashboard server (see dashboard.h for the API it serves).
//
// httplib's Debian build is a compiled library whose class layouts depend on the
// CPPHTTPLIB_{OPENSSL,ZLIB,BROTLI}_SUPPORT macros, so this file must be compiled with
// exactly the flags pkg-config gives (the CMake target does that); the dashboard's
// public header never includes <httplib.h>.
#include "recforge/tracking/dashboard.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <initializer_list>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "dashboard_assets.h"
#include "net/http_listener.h"
#include "recforge/core/error.h"
#include "recforge/core/version.h"

namespace recforge::tracking {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxTextParam = 4000;     // filter / order_by
constexpr std::size_t kMaxNameParam = 256;      // experiment, metric key
constexpr std::size_t kDefaultRunLimit = 1000;  // runs per listing unless ?limit=
constexpr std::size_t kMaxRunLimit = 100000;
constexpr std::size_t kMaxCompare = 50;

// A request error: becomes {"error": message, "status": status}.
struct HttpError {
  int status;
  std::string message;
};

// ---- store pool: one connection per concurrent request, reused afterwards.
class StorePool {
 public:
  explicit StorePool(const TrackingLocation& location) : location_(location) {
    free_.push_back(std::make_unique<Store>(location_));  // fail early on a bad location
  }

  // Returns its Store to the pool on destruction. The dashboard only reads, and the
  // Store finalises its statements itself, so a connection whose request ended in an
  // error (unknown run, bad filter) is still fine to reuse.
  class Lease {
   public:
    Lease(StorePool& pool, std::unique_ptr<Store> store) : pool_(pool), store_(std::move(store)) {}
    ~Lease() { pool_.Release(std::move(store_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Store* operator->() { return store_.get(); }
    Store& operator*() { return *store_; }

   private:
    StorePool& pool_;
    std::unique_ptr<Store> store_;
  };

  Lease Acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        auto store = std::move(free_.back());
        free_.pop_back();
        return Lease(*this, std::move(store));
      }
    }
    return Lease(*this, std::make_unique<Store>(location_));
  }

 private:
  void Release(std::unique_ptr<Store> store) {
    std::lock_guard lock(mutex_);
    if (free_.size() < static_cast<std::size_t>(Dashboard::kWorkerThreads)) {
      free_.push_back(std::move(store));
    }
  }

  TrackingLocation location_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Store>> free_;
};

// ---- JSON of store records
json ToJson(const Run& run) {
  return json{{"id", run.id},
              {"name", run.name},
              {"experiment", run.experiment},
              {"experiment_id", run.experiment_id},
              {"status", std::string(Name(run.status))},
              {"status_reason", run.status_reason},
              {"start_ms", run.start_ms},
              {"end_ms", run.end_ms},
              {"heartbeat_ms", run.heartbeat_ms},
              {"duration_s", run.duration_seconds()},
              {"parent_id", run.parent_id},
              {"user", run.user},
              {"host", run.host},
              {"pid", run.pid},
              {"command", run.command},
              {"recforge_version", run.recforge_version},
              {"git_commit", run.git_commit},
              {"params", run.params},
              {"tags", run.tags},
              {"metrics", run.metrics}};
}

json ToJson(const Experiment& experiment) {
  return json{{"id", experiment.id},
              {"name", experiment.name},
              {"created_ms", experiment.created_ms},
              {"run_count", experiment.run_count}};
}

json ToJson(const ModelVersion& version) {
  return json{{"name", version.name},       {"version", version.version},
              {"run_id", version.run_id},   {"artifact_path", version.artifact_path},
              {"sha256", version.sha256},   {"size", version.size},
              {"created_ms", version.created_ms}, {"description", version.description},
              {"aliases", version.aliases}};
}

// ---- parameter validation
bool HasControlCharacters(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// Rejects parameters the endpoint does not know and repeated ones, so a typo is a 400
// rather than silently ignored.
void CheckParams(const httplib::Request& req, std::initializer_list<std::string_view> allowed) {
  std::set<std::string> seen;
  for (const auto& [name, value] : req.params) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string list;
      for (auto key : allowed) list += (list.empty() ? "" : ", ") + std::string(key);
      throw HttpError{400, fmt::format("unknown parameter '{}' (allowed: {})", name,
                                       list.empty() ? "none" : list)};
    }
    if (!seen.insert(name).second) throw HttpError{400, fmt::format("parameter '{}' repeated", name)};
  }
}

std::string TextParam(const httplib::Request& req, const char* name, std::size_t max_length) {
  if (!req.has_param(name)) return "";
  std::string value = req.get_param_value(name);
  if (value.size() > max_length) {
    throw HttpError{400, fmt::format("parameter '{}' is longer than {} characters", name, max_length)};
  }
  if (HasControlCharacters(value)) {
    throw HttpError{400, fmt::format("parameter '{}' contains control characters", name)};
  }
  return value;
}

// A full run id or a unique prefix: 6 to 32 hex characters.
std::string RunId(std::string value, const char* what) {
  std::transform(value.begin(), value.end(), value.begin(),
                 [](char c) { return static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c); });
  const bool hex = std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (!hex || value.size() < 6 || value.size() > 32) {
    std::string shown = value.size() > 40 ? value.substr(0, 40) + "..." : value;
    if (HasControlCharacters(shown)) shown = "(unprintable)";
    throw HttpError{400, fmt::format("{} '{}' is not a run id (6 to 32 hex characters)", what, shown)};
  }
  return value;
}

std::size_t LimitParam(const httplib::Request& req) {
  if (!req.has_param("limit")) return kDefaultRunLimit;
  const std::string text = req.get_param_value("limit");
  std::size_t value = 0;
  bool ok = !text.empty() && text.size() <= 7;
  for (char c : text) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    value = value * 10 + static_cast<std::size_t>(c - '0');
  }
  if (!ok || value < 1 || value > kMaxRunLimit) {
    throw HttpError{400, fmt::format("parameter 'limit' must be an integer in 1..{}", kMaxRunLimit)};
  }
  return value;
}

Run FindRun(Store& store, const std::string& id) {
  try {
    return store.GetRun(id);
  } catch (const NotFound&) {
    throw HttpError{404, fmt::format("run '{}' not found", id)};
  }
}

// ---- responses
void SendJson(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  // Param values are user text: never let invalid UTF-8 turn a listing into a 500.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, json{{"error", message}, {"status", status}}, status);
}

// The single place where request handling errors become HTTP statuses (STYLE.md §4).
template <typename Body>
httplib::Server::Handler Guarded(Body body) {
  return [body](const httplib::Request& req, httplib::Response& res) {
    try {
      body(req, res);
    } catch (const HttpError& error) {
      SendError(res, error.status, error.message);
    } catch (const InvalidArgument& error) {  // e.g. a filter syntax error
      SendError(res, 400, error.what());
    } catch (const ConfigError& error) {
      SendError(res, 400, error.what());
    } catch (const NotFound& error) {
      SendError(res, 404, error.what());
    } catch (const std::exception& error) {
      SendError(res, 500, error.what());
    } catch (...) {
      SendError(res, 500, "internal error");
    }
  };
}

std::string MimeType(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

struct Dashboard::Impl {
  explicit Impl(const TrackingLocation& location) : location(location), pool(location) {}

  void Routes();
  void ListRuns(const httplib::Request& req, httplib::Response& res);
  void ShowRun(const httplib::Request& req, httplib::Response& res);
  void MetricHistory(const httplib::Request& req, httplib::Response& res);
  void Compare(const httplib::Request& req, httplib::Response& res);
  void Models(const httplib::Request& req, httplib::Response& res);

  TrackingLocation location;
  StorePool pool;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> thread_done{false};
  std::string host;
  int port = 0;
  bool loopback = true;
};

void Dashboard::Impl::ListRuns(const httplib::Request& req, httplib::Response& res) {
  CheckParams(req, {"experiment", "filter", "order_by", "parent", "limit"});
  RunQuery query;
  query.filter = TextParam(req, "filter", kMaxTextParam);
  query.order_by = TextParam(req, "order_by", kMaxTextParam);
  const std::string experiment = TextParam(req, "experiment", kMaxNameParam);
  const std::size_t limit = LimitParam(req);
  auto store = pool.Acquire();
  if (!experiment.empty()) {
    auto found = store->FindExperiment(experiment);
    if (!found) throw HttpError{404, fmt::format("experiment '{}' not found", experiment)};
    query.experiment = found->name;
  }
  if (req.has_param("parent")) {
    query.parent_id = FindRun(*store, RunId(req.get_param_value("parent"), "parent")).id;
  }
  query.limit = limit + 1;  // one more tells whether the listing was cut
  std::vector<Run> runs = store->ListRuns(query);
  const bool truncated = runs.size() > limit;
  if (truncated) runs.resize(limit);

  std::set<std::string> param_keys, metric_keys, tag_keys;
  json items = json::array();
  for (const auto& run : runs) {
    for (const auto& [key, value] : run.params) param_keys.insert(key);
    for (const auto& [key, value] : run.metrics) metric_keys.insert(key);
    for (const auto& [key, value] : run.tags) tag_keys.insert(key);
    items.push_back(ToJson(run));
  }
  SendJson(res, json{{"runs", std::move(items)},
                     {"count", runs.size()},
                     {"truncated", truncated},
                     {"param_keys", param_keys},
                     {"metric_keys", metric_keys},
                     {"tag_keys", tag_keys}});
}

void Dashboard::Impl::ShowRun(const httplib::Request& req, httplib::Response& res) {
  CheckParams(req, {});
  const std::string id = RunId(req.matches[1], "run");
  auto store = pool.Acquire();
  const Run run = FindRun(*store, id);
  json body = ToJson(run);
  body["metric_keys"] = store->MetricKeys(run.id);
  json artifacts = json::array();
  for (const auto& artifact : store->Artifacts(run.id)) {
    artifacts.push_back(json{{"path", artifact.path},
                             {"kind", artifact.kind},
                             {"size", artifact.size},
                             {"sha256", artifact.sha256}});
  }
  body["artifacts"] = std::move(artifacts);
  json lineage = json::array();
  for (const auto& edge : store->Lineage(run.id)) {
    json item{{"direction", edge.direction}, {"kind", edge.kind}, {"hash", edge.hash}, {"path", edge.path}};
    // The runs on the other side of the edge: who wrote what this run read, who read
    // what it wrote.
    item["runs"] = edge.direction == "input" ? store->RunsWriting(edge.hash) : store->RunsReading(edge.hash);
    auto& others = item["runs"];
    others.erase(std::remove(others.begin(), others.end(), json(run.id)), others.end());
    lineage.push_back(std::move(item));
  }
  body["lineage"] = std::move(lineage);
  RunQuery children;
  children.parent_id = run.id;
  json child_items = json::array();
  for (const auto& child : store->ListRuns(children)) {
    child_items.push_back(json{{"id", child.id},
                               {"name", child.name},
                               {"status", std::string(Name(child.status))},
                               {"metrics", child.metrics}});
  }
  body["children"] = std::move(child_items);
  SendJson(res, body);
}

void Dashboard::Impl::MetricHistory(const httplib::Request& req, httplib::Response& res) {
  CheckParams(req, {});
  const std::string id = RunId(req.matches[1], "run");
  const std::string key = req.matches[2];
  if (key.empty() || key.size() > kMaxNameParam || HasControlCharacters(key)) {
    throw HttpError{400, fmt::format("metric key must be 1 to {} printable characters", kMaxNameParam)};
  }
  auto store = pool.Acquire();
  const Run run = FindRun(*store, id);
  const auto keys = store->MetricKeys(run.id);
  if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
    throw HttpError{404, fmt::format("run {} has no metric '{}'", run.id, key)};
  }
  json history = json::array();
  for (const auto& metric : store->MetricHistory(run.id, key)) {
    history.push_back(
        json{{"step", metric.step}, {"value", metric.value}, {"timestamp_ms", metric.timestamp_ms}});
  }
  SendJson(res, json{{"run_id", run.id}, {"run_name", run.name}, {"key", key}, {"history", history}});
}

void Dashboard::Impl::Compare(const httplib::Request& req, httplib::Response& res) {
  CheckParams(req, {"ids"});
  if (!req.has_param("ids")) throw HttpError{400, "parameter 'ids' is required (ids=RUN,RUN,...)"};
  const std::string text = TextParam(req, "ids", kMaxCompare * 33);
  std::vector<std::string> ids;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    std::size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    ids.push_back(RunId(text.substr(begin, end - begin), "ids item"));
    begin = end + 1;
  }
  if (ids.size() > kMaxCompare) {
    throw HttpError{400, fmt::format("at most {} runs can be compared", kMaxCompare)};
  }
  auto store = pool.Acquire();
  std::vector<Run> runs;
  for (const auto& id : ids) {
    Run run = FindRun(*store, id);
    if (std::none_of(runs.begin(), runs.end(), [&](const Run& seen) { return seen.id == run.id; })) {
      runs.push_back(std::move(run));
    }
  }
  // One row per key: the value of each run (null when missing) and whether they differ.
  auto table = [&](auto member) {
    std::set<std::string> keys;
    for (const auto& run : runs) {
      for (const auto& [key, value] : run.*member) keys.insert(key);
    }
    json rows = json::array();
    for (const auto& key : keys) {
      json values = json::array();
      for (const auto& run : runs) {
        auto found = (run.*member).find(key);
        values.push_back(found == (run.*member).end() ? json(nullptr) : json(found->second));
      }
      const bool differs =
          std::any_of(values.begin(), values.end(), [&](const json& value) { return value != values.front(); });
      rows.push_back(json{{"key", key}, {"values", std::move(values)}, {"differs", differs}});
    }
    return rows;
  };
  json items = json::array();
  for (const auto& run : runs) {
    json item = ToJson(run);
    item["metric_keys"] = store->MetricKeys(run.id);
    items.push_back(std::move(item));
  }
  SendJson(res, json{{"runs", std::move(items)},
                     {"params", table(&Run::params)},
                     {"metrics", table(&Run::metrics)},
                     {"tags", table(&Run::tags)}});
}

void Dashboard::Impl::Models(const httplib::Request& req, httplib::Response& res) {
  CheckParams(req, {});
  auto store = pool.Acquire();
  json models = json::array();
  for (const auto& model : store->ListModels()) {
    json versions = json::array();
    for (const auto& version : model.versions) versions.push_back(ToJson(version));
    models.push_back(json{{"name", model.name},
                          {"created_ms", model.created_ms},
                          {"aliases", model.aliases},
                          {"versions", std::move(versions)}});
  }
  SendJson(res, json{{"models", std::move(models)}});
}

void Dashboard::Impl::Routes() {
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server.set_payload_max_length(64 * 1024);  // the API takes no bodies
  net::UseExclusivePort(server);
  server.set_read_timeout(10, 0);
  server.set_default_headers({
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"Content-Security-Policy",
       "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
  });

  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "GET" && req.method != "HEAD") {
      res.set_header("Allow", "GET, HEAD");
      SendError(res, 405, fmt::format("method {} not allowed (the dashboard is read-only)",
                                      req.method.size() > 16 ? "?" : req.method));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (loopback) {
      const std::string host_header = req.get_header_value("Host");
      if (!host_header.empty() && !net::IsLoopbackHost(net::HostName(host_header))) {
        SendError(res, 403, "Host header is not a loopback name (bind with --host to serve other names)");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Unrouted paths (and any handler that set a status without a body).
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                  httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string path = req.path.size() > 200 ? req.path.substr(0, 200) + "..." : req.path;
    if (res.status == 404) {
      SendError(res, 404, fmt::format("no such {}: {}", req.path.starts_with("/api/") ? "endpoint" : "page",
                                      HasControlCharacters(path) ? "(unprintable)" : path));
    } else {
      const char* reason = res.status == 414 ? "request URI too long"
                           : res.status == 413 ? "request body too large"
                           : res.status == 400 ? "malformed request"
                                               : "request failed";
      SendError(res, res.status, fmt::format("{} (HTTP {})", reason, res.status));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, 500, "internal error");
  });

  server.Get("/api/info", Guarded([this](const httplib::Request& req, httplib::Response& res) {
               CheckParams(req, {});
               SendJson(res, json{{"recforge_version", Version()},
                                  {"git_commit", GitCommit()},
                                  {"database", location.database.string()},
                                  {"artifacts", location.artifacts.string()}});
             }));
  server.Get("/api/experiments", Guarded([this](const httplib::Request& req, httplib::Response& res) {
               CheckParams(req, {});
               auto store = pool.Acquire();
               json items = json::array();
               for (const auto& experiment : store->ListExperiments()) items.push_back(ToJson(experiment));
               SendJson(res, json{{"experiments", std::move(items)}});
             }));
  server.Get("/api/runs", Guarded([this](const auto& req, auto& res) { ListRuns(req, res); }));
  server.Get(R"(/api/runs/([^/]*))", Guarded([this](const auto& req, auto& res) { ShowRun(req, res); }));
  server.Get(R"(/api/runs/([^/]*)/metrics/(.*))",
             Guarded([this](const auto& req, auto& res) { MetricHistory(req, res); }));
  server.Get("/api/compare", Guarded([this](const auto& req, auto& res) { Compare(req, res); }));
  server.Get("/api/models", Guarded([this](const auto& req, auto& res) { Models(req, res); }));

  for (std::size_t index = 0; index < dashboard_assets::kAssetCount; ++index) {
    const auto& asset = dashboard_assets::kAssets[index];
    const std::string name = asset.name;
    const std::string route = name == "index.html" ? "/" : "/" + name;
    auto handler = [asset, name](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-cache");
      res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, MimeType(name));
    };
    server.Get(route, handler);
    if (name == "index.html") server.Get("/index.html", handler);
  }
}

Dashboard::Dashboard(const TrackingLocation& location) : impl_(std::make_unique<Impl>(location)) {
  impl_->Routes();
}

Dashboard::~Dashboard() { Stop(); }

void Dashboard::Start(const std::string& host, int port) {
  if (port < 0 || port > 65535) {
    throw InvalidArgument(fmt::format("--port {} is outside 0..65535", port));
  }
  if (impl_->thread.joinable()) throw InvalidArgument("the dashboard is already started");
  // Set before the first request can arrive: the Host check reads `loopback`.
  impl_->host = host;
  impl_->loopback = net::IsLoopbackHost(host);
  impl_->port = net::StartListening(impl_->server, host, port, impl_->thread, impl_->thread_done);
}

int Dashboard::port() const { return impl_->port; }

const std::string& Dashboard::host() const { return impl_->host; }

bool Dashboard::running() const { return impl_->thread.joinable() && !impl_->thread_done; }

void Dashboard::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace recforge::tracking
