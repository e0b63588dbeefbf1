// The experiment dashboard: a small read-only HTTP server over the tracking store.
// It serves a single-page UI (HTML/JS/CSS embedded in the binary at build time, no
// CDN, no npm) and the JSON API the page uses:
//
//   GET /api/info                          store location, version
//   GET /api/experiments                   [{id, name, created_ms, run_count}]
//   GET /api/runs?experiment=&filter=&order_by=&parent=&limit=
//                                          {runs: [...], param_keys, metric_keys}
//   GET /api/runs/{id}                     one run + metric_keys, artifacts, lineage, children
//   GET /api/runs/{id}/metrics/{key}       {run_id, key, history: [{step, value, timestamp_ms}]}
//   GET /api/compare?ids=a,b[,...]         runs side by side, differing keys listed
//   GET /api/models                        registered models, versions, aliases
//
// Every parameter is validated: a malformed one is 400, an unknown run, experiment,
// metric or path is 404, always as {"error": "...", "status": N}. Nothing a request
// carries can crash the server. Only GET (and HEAD) is served; the store is never
// written. When bound to a loopback address, requests whose Host header is not a
// loopback name are refused (403) so a web page cannot reach the store through DNS
// rebinding.
//
// Threading: requests run on a small pool of worker threads (kWorkerThreads). SQLite
// connections are not shared between threads at once, so each request leases a Store
// from a pool (opened on demand, at most one per worker) and returns it afterwards.
#pragma once

#include <memory>
#include <string>

#include "recforge/tracking/store.h"

namespace recforge::tracking {

class Dashboard {
 public:
  static constexpr int kWorkerThreads = 4;

  // Opens the store once (creating it if missing) so a bad location fails here.
  explicit Dashboard(const TrackingLocation& location);
  ~Dashboard();  // Stop()s
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // Binds host:port (port 0: any free port, see port()) and serves on a background
  // thread until Stop(). Throws IoError when the address cannot be bound and
  // InvalidArgument for a port outside 0..65535 or a second Start().
  void Start(const std::string& host, int port);
  int port() const;  // the bound port; 0 before Start()
  const std::string& host() const;
  bool running() const;
  // Stops accepting, finishes in-flight requests and joins the server thread.
  // Idempotent; safe to call without Start().
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recforge::tracking
