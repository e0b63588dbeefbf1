// The event-driven HTTP/1.1 front end of `recforge serve` (Boost.Beast over Boost.Asio,
// header-only: Debian libboost-dev). A few event-loop threads (about one per core) share
// one io_context: they accept, parse (Beast's parser: limits on header and body size),
// run the request handler inline and write the answer, one strand per connection, so
// requests are served in arrival order with no more runnable threads than cores.
// Handlers that block (an fsync, a model load) are marked by `Handlers::blocking` and
// run on a small separate pool instead, so they never stall an event loop.
//
// Connection rules: keep-alive (HTTP/1.1 default, up to keep_alive_max requests); an
// idle connection closes after keep_alive_timeout; from the first byte of a request the
// whole request must arrive within read_timeout (a slow or stalled client holds no
// thread, only its socket, and is closed when the deadline fires, without an answer);
// an answer must be written within write_timeout. `Expect: 100-continue` is answered.
// Errors of the framing layer (400 malformed, 413 body over max_body_bytes, 431 header
// too large) are filled by `Handlers::fail` and close the connection.
//
// Drain(): the listening socket closes, idle keep-alive connections close, requests
// already started (bytes received) finish and are answered with `Connection: close`,
// then the threads are joined.
//
// The listening socket is bound exclusively (SO_REUSEADDR, never SO_REUSEPORT), like
// the httplib front end of `recforge ui` (http_listener.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recforge::net {

// Header and query lookups are by name (headers case-insensitive).
struct HttpRequest {
  std::string method;                                          // "GET", "POST", ... as sent
  std::string target;                                          // the raw request target
  std::string path;                                            // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;      // decoded ('+' is a space)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  bool has_header(std::string_view name) const;
  std::string get_header_value(std::string_view name) const;  // "" when absent
  bool has_param(std::string_view name) const;
  std::string get_param_value(std::string_view name) const;   // "" when absent (first value)
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;

  void set_header(std::string name, std::string value);
  void set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
};

// One request and its answer, reused across the requests of a connection (no
// per-request allocation of the exchange itself). `route` and `id` are the handler's.
struct HttpExchange {
  HttpRequest req;
  HttpResponse res;
  std::chrono::steady_clock::time_point start;  // first byte of the request received
  std::size_t route = 0;
  std::string id;
  bool close = false;  // set by the front end when the connection closes after this answer
};

struct HttpFrontOptions {
  int threads = 2;                 // event-loop threads
  int blocking_threads = 2;        // the pool for Handlers::blocking requests
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  std::chrono::milliseconds keep_alive_timeout{2000};
  std::size_t keep_alive_max_requests = 100000;
};

struct HttpHandlers {
  // Called once the whole request is parsed, on an event-loop thread; true: run
  // `handle` on the blocking pool.
  std::function<bool(HttpExchange&)> blocking;
  // Fills ex.res. Must not throw (the caller turns an escape into a bare 500).
  std::function<void(HttpExchange&)> handle;
  // Fills ex.res for an error of the framing layer (status, a message); ex.req holds
  // what was parsed (possibly nothing).
  std::function<void(HttpExchange&, int status, std::string_view message)> fail;
  // After the answer was written (or its write failed): metrics, the access log.
  std::function<void(const HttpExchange&)> finish;
};

class HttpFrontEnd {
 public:
  HttpFrontEnd(HttpFrontOptions options, HttpHandlers handlers);
  ~HttpFrontEnd();  // Drain()s
  HttpFrontEnd(const HttpFrontEnd&) = delete;
  HttpFrontEnd& operator=(const HttpFrontEnd&) = delete;

  // Binds host:port (0: an ephemeral port) and starts the threads; returns the bound
  // port. Throws IoError when the address cannot be bound (in use, not of this host).
  int Start(const std::string& host, int port);
  bool draining() const;
  // See the header comment. Idempotent; waits at most read + write timeout for the
  // requests in flight.
  void Drain();

  struct Impl;  // http_front.cc (public only for the connection sessions there)

 private:
  std::shared_ptr<Impl> impl_;
};

// "%41b+c" -> "Ab c" when `plus_is_space`; a malformed escape is kept as is.
std::string PercentDecode(std::string_view text, bool plus_is_space);

}  // namespace recforge::net
