// The HTTP daemon of `recforge serve`: the JSON API of issue 5 over a
// RecommendationService, plus the demo page, /docs, /openapi.json and /metrics.
//
//   GET  /health /livez                 {"status": "ok"} while the process runs
//   GET  /ready /readyz                 200 once a model is loaded and warm, else 503
//   POST /recommend                     {"user_id", "top_k", "exclude_seen", "filter": {"categories",
//                                        "exclude_items"}, "context_items"} -> {"user_id", "items":
//                                        [{"item_id", "score", "title"?, "categories"?}], "model":
//                                        {"name", "version", "spec"}, "source"}
//   GET  /recommend/{user_id}?k=        the same for a user with defaults
//   POST /recommend/batch               {"requests": [<recommend body>, ...]} -> {"results": [...], "model"}
//   GET  /items/{item_id}/similar?k=    {"item_id", "items", "model"}
//   GET  /popular?k=&category=          {"items", "category"?}
//   GET  /users/{user_id}/history?limit= {"user_id", "known", "items" (newest first)}
//   GET  /info                          {"model", "users", "items", "categories", "ann", "events"}
//   POST /events                        one event or an array of them: {"user_id", "item_id", "rating"?,
//                                        "timestamp"?} -> {"stored": n}, after the log is fsync'd
//   POST /admin/reload                  Authorization: Bearer TOKEN; body optional {"model": REF}
//   GET  /metrics                       Prometheus text
//   GET  /openapi.json /docs /          the embedded web assets (web_assets.h)
//
// Errors are {"error": {"code": N, "message": "..."}}: malformed JSON 400, missing or
// wrong-typed fields and top_k / k outside 1..1000 422, unknown user in history-free
// routes 404, body over max_body_bytes 413, unknown route 404, wrong method 405, no
// admin token 401 / wrong token 403 (also when the server has none), a model that is
// not loaded yet 503. Nothing a request carries can crash the process: every handler
// runs under one catch that answers 500.
//
// Models: the serving RecommendationService is held by a shared_ptr swapped
// atomically; a request keeps the one it started with, so a reload never fails an
// in-flight request. Reload loads the new model beside the old one (through the
// ModelLoader), replays the event log into it and swaps; a load that throws leaves
// the old one serving.
//
// Threading: `threads` event-loop threads (src/net/http_front.h) accept, parse and run
// the handlers inline (const service calls of microseconds, no nested parallelism), in
// arrival order, with no more runnable threads than cores; any number of keep-alive
// connections costs only sockets. Handlers that block (an fsync'd event append, a
// reload, a batch) run on a pool of `blocking_threads`. Thread-safe: every public method.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "recforge/core/log.h"
#include "recforge/serve/recommendation_service.h"

namespace recforge::serve {

// Builds a service for a model reference (a model file path, or NAME@ALIAS / NAME/N).
// Throws: InvalidArgument, NotFound, FormatError, IoError, ConfigError for a model
// that cannot be served (answered 422 by /admin/reload), anything else for 500.
using ModelLoader = std::function<std::shared_ptr<RecommendationService>(const std::string& reference)>;

struct ServerOptions {
  int threads = 0;                      // event-loop threads; 0: the number of hardware threads
  int blocking_threads = 2;             // pool for POST /events (fsync), /admin/reload, /recommend/batch
  std::string admin_token;              // empty: /admin/* always answers 403
  std::filesystem::path events_path;    // the durable event log; empty: events kept in memory only
  std::size_t max_body_bytes = 1 << 20; // larger bodies: 413
  int read_timeout_ms = 5000;           // a request must arrive within this from its first byte (else closed)
  int write_timeout_ms = 5000;          // an answer must be taken by the client within this
  int keep_alive_timeout_ms = 2000;     // idle keep-alive connections close after this
  std::size_t keep_alive_max_requests = 100000;
  bool access_log = true;               // one line per request (info level)
  bool json_logs = true;                // access log as JSON lines (else text)
  Logger* logger = nullptr;             // non-owning; nullptr: no logs
};

class Server {
 public:
  Server(ServerOptions options, ModelLoader loader);
  ~Server();  // Stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (0: any free port, see port()) and serves on background threads.
  // /health answers at once; model routes answer 503 until LoadModel succeeded.
  // Throws IoError when the address cannot be bound, InvalidArgument for a bad port.
  void Start(const std::string& host, int port);
  int port() const;
  const std::string& host() const;

  // Loads `reference` beside the serving model (if any), replays the event log into
  // it, warms it (one Recommend) and swaps it in; returns its info. Throws what the
  // loader throws, leaving the previous model serving. Serialised: one load at a time.
  // An empty reference reloads the current one.
  ServedModelInfo LoadModel(const std::string& reference);
  std::string model_reference() const;  // what the serving model was loaded from
  bool ready() const;                   // a model is loaded and the server is not draining

  // Stops accepting connections, lets in-flight requests finish (readiness turns 503
  // first), joins the workers. Idempotent.
  void Drain();
  void Stop() { Drain(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recforge::serve
