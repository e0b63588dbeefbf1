// The event-driven HTTP front end (see http_front.h).
#include "net/http_front.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "recforge/core/error.h"

namespace recforge::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string_view Std(boost::beast::string_view text) { return {text.data(), text.size()}; }

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void SplitTarget(HttpRequest& req) {
  std::string_view target = req.target;
  const auto question = target.find('?');
  req.path = PercentDecode(target.substr(0, question), false);
  req.query.clear();
  if (question == std::string_view::npos) return;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    req.query.emplace_back(PercentDecode(pair.substr(0, eq), true),
                           eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1), true));
  }
}

}  // namespace

std::string PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      const int hi = HexValue(text[i + 1]), lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += plus_is_space && c == '+' ? ' ' : c;
  }
  return out;
}

bool HttpRequest::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return EqualsNoCase(h.first, name); });
}

std::string HttpRequest::get_header_value(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsNoCase(key, name)) return value;
  }
  return {};
}

bool HttpRequest::has_param(std::string_view name) const {
  return std::any_of(query.begin(), query.end(), [&](const auto& q) { return q.first == name; });
}

std::string HttpRequest::get_param_value(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return {};
}

void HttpResponse::set_header(std::string name, std::string value) {
  for (auto& [key, old] : headers) {
    if (EqualsNoCase(key, name)) {
      old = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

class Session;

struct HttpFrontEnd::Impl : std::enable_shared_from_this<HttpFrontEnd::Impl> {
  Impl(HttpFrontOptions opts, HttpHandlers hs)
      : options(std::move(opts)),
        handlers(std::move(hs)),
        io(std::max(1, options.threads)),
        acceptor(asio::make_strand(io)),
        pool(static_cast<std::size_t>(std::max(1, options.blocking_threads))) {}

  void Accept();
  void Register(Session* session, const std::weak_ptr<Session>& weak);
  void Unregister(Session* session);

  HttpFrontOptions options;
  HttpHandlers handlers;
  asio::io_context io;
  tcp::acceptor acceptor;
  asio::thread_pool pool;
  std::vector<std::thread> threads;
  std::atomic<bool> draining{false};
  bool stopped = false;

  std::mutex sessions_mutex;
  std::condition_variable sessions_done;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
};

// One connection. Every step runs on the connection's strand; the request handler
// runs inline there (or on the blocking pool, posting the write back to the strand).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpFrontEnd::Impl> front)
      : stream_(std::move(socket)), front_(std::move(front)) {}
  ~Session() { front_->Unregister(this); }

  void Start() {
    front_->Register(this, weak_from_this());
    beast::error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->NextRequest(); });
  }

  // From Drain(), on the strand: an idle connection closes now; one inside a request
  // finishes it first (see Finish).
  void OnDrain() {
    if (state_ == State::kIdle) Close();
  }
  auto executor() { return stream_.get_executor(); }

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kClosed };

  void NextRequest() {
    if (state_ == State::kClosed) return;
    if (front_->draining && buffer_.size() == 0) return Close();
    parser_.emplace();
    parser_->body_limit(front_->options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(front_->options.max_header_bytes));
    continue_sent_ = false;
    state_ = buffer_.size() > 0 ? State::kReading : State::kIdle;
    if (state_ == State::kReading) ex_.start = std::chrono::steady_clock::now();
    stream_.expires_after(state_ == State::kIdle ? (served_ == 0 ? front_->options.read_timeout
                                                                  : front_->options.keep_alive_timeout)
                                                 : front_->options.read_timeout);
    Read();
  }

  void Read() {
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (state_ == State::kIdle && (parser_->got_some() || buffer_.size() > 0)) {
      // The first bytes of a request: from now on the whole request has read_timeout.
      state_ = State::kReading;
      ex_.start = std::chrono::steady_clock::now();
      stream_.expires_after(front_->options.read_timeout);
    }
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      if (state_ == State::kIdle || ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
          ec == asio::error::connection_reset || ec == asio::error::eof) {
        return Close();  // the client went away, or an idle keep-alive connection timed out
      }
      // A request not received in time: Beast closes the socket when the deadline
      // fires, so there is no answer to write; the connection just ends.
      if (ec == beast::error::timeout) return Close();
      if (ec == http::error::body_limit) {
        return Fail(413, fmt::format("request body too large (the limit is {} bytes)",
                                     front_->options.max_body_bytes));
      }
      if (ec == http::error::header_limit) return Fail(431, "request header fields too large");
      return Fail(400, fmt::format("malformed HTTP request: {}", ec.message()));
    }
    if (!parser_->is_done()) {
      if (parser_->is_header_done() && !continue_sent_) {
        const auto& header = parser_->get();
        auto expect = header.find(http::field::expect);
        if (expect != header.end() && EqualsNoCase(Std(expect->value()), "100-continue")) {
          continue_sent_ = true;
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                            [self = shared_from_this()](beast::error_code wec, std::size_t) {
                              if (wec) return self->Close();
                              self->Read();
                            });
          return;
        }
      }
      return Read();
    }
    stream_.expires_never();
    Dispatch();
  }

  void FillRequest() {
    auto& message = parser_->get();
    auto& req = ex_.req;
    req.method.assign(message.method_string().data(), message.method_string().size());
    req.target.assign(message.target().data(), message.target().size());
    SplitTarget(req);
    req.headers.clear();
    for (const auto& field : message) {
      req.headers.emplace_back(std::string(Std(field.name_string())), std::string(Std(field.value())));
    }
    req.body = std::move(message.body());
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    head_ = message.method() == http::verb::head;
  }

  void ResetResponse() {
    ex_.res.status = 200;
    ex_.res.body.clear();
    ex_.res.content_type.clear();
    ex_.res.headers.clear();
    ex_.route = 0;
    ex_.id.clear();
  }

  void Dispatch() {
    state_ = State::kHandling;
    FillRequest();
    ResetResponse();
    ++served_;
    ex_.close = !keep_alive_ || served_ >= front_->options.keep_alive_max_requests;
    bool blocking = false;
    try {
      blocking = front_->handlers.blocking && front_->handlers.blocking(ex_);
    } catch (...) {
      blocking = false;
    }
    if (!blocking) {
      Handle();
      return Write();
    }
    asio::post(front_->pool, [self = shared_from_this()] {
      self->Handle();
      asio::post(self->stream_.get_executor(), [self] { self->Write(); });
    });
  }

  void Handle() {
    try {
      front_->handlers.handle(ex_);
    } catch (...) {
      ex_.res.status = 500;
      ex_.res.body = R"({"error": {"code": 500, "message": "internal error"}})";
      ex_.res.content_type = "application/json";
    }
  }

  // A framing error: answer it and close (what follows on the connection is unknown).
  void Fail(int status, std::string_view message) {
    if (state_ != State::kReading) ex_.start = std::chrono::steady_clock::now();
    state_ = State::kHandling;
    auto& req = ex_.req;
    req.method.clear();
    req.target.clear();
    req.path.clear();
    req.query.clear();
    req.headers.clear();
    req.body.clear();
    if (parser_ && parser_->is_header_done()) {
      const auto& header = parser_->get();
      req.method.assign(header.method_string().data(), header.method_string().size());
      req.target.assign(header.target().data(), header.target().size());
      SplitTarget(req);
      version_ = header.version();
    } else {
      version_ = 11;
    }
    head_ = false;
    ResetResponse();
    ex_.close = true;
    linger_ = true;
    try {
      front_->handlers.fail(ex_, status, message);
    } catch (...) {
      ex_.res.status = status;
    }
    Write();
  }

  void Write() {
    if (state_ == State::kClosed) return;
    state_ = State::kWriting;
    if (front_->draining) ex_.close = true;
    auto& res = ex_.res;
    response_.emplace();
    response_->version(version_);
    response_->result(static_cast<unsigned>(res.status));
    for (auto& [name, value] : res.headers) response_->set(beast::string_view(name.data(), name.size()), value);
    if (!res.content_type.empty()) response_->set(http::field::content_type, res.content_type);
    response_->keep_alive(!ex_.close);
    response_->content_length(res.body.size());
    if (!head_) response_->body() = std::move(res.body);
    stream_.expires_after(front_->options.write_timeout);
    http::async_write(stream_, *response_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->OnWrite(ec);
    });
  }

  void OnWrite(beast::error_code ec) {
    if (!head_ && response_) ex_.res.body = std::move(response_->body());  // keep the capacity
    try {
      if (front_->handlers.finish) front_->handlers.finish(ex_);
    } catch (...) {
    }
    response_.reset();
    if (!ec && linger_) return Linger();
    if (ec || ex_.close) return Close();
    NextRequest();
  }

  // After a framing error the client may still be sending (a body over the limit).
  // Closing with unread input makes the kernel send RST, which can discard the error
  // response before the client reads it; so stop sending, read and drop what still
  // arrives for a short while, then close (nginx's lingering close).
  void Linger() {
    state_ = State::kWriting;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.consume(buffer_.size());
    linger_until_ = std::chrono::steady_clock::now() + kLingerTime;
    LingerRead();
  }

  void LingerRead() {
    stream_.expires_after(kLingerIdle);
    stream_.async_read_some(buffer_.prepare(kLingerChunk),
                            [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                              self->lingered_ += bytes;
                              if (ec || self->lingered_ > kLingerMaxBytes ||
                                  std::chrono::steady_clock::now() >= self->linger_until_) {
                                return self->Close();
                              }
                              self->LingerRead();
                            });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  std::shared_ptr<HttpFrontEnd::Impl> front_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  HttpExchange ex_;
  State state_ = State::kIdle;
  std::size_t served_ = 0;
  bool keep_alive_ = true;
  bool continue_sent_ = false;
  bool head_ = false;
  bool linger_ = false;
  std::size_t lingered_ = 0;
  std::chrono::steady_clock::time_point linger_until_{};
  static constexpr auto kLingerTime = std::chrono::seconds(2);
  static constexpr auto kLingerIdle = std::chrono::milliseconds(500);
  static constexpr std::size_t kLingerChunk = 64 * 1024;
  static constexpr std::size_t kLingerMaxBytes = 64 * 1024 * 1024;
  unsigned version_ = 11;
};

void HttpFrontEnd::Impl::Register(Session* session, const std::weak_ptr<Session>& weak) {
  std::lock_guard lock(sessions_mutex);
  sessions.emplace(session, weak);
}

void HttpFrontEnd::Impl::Unregister(Session* session) {
  std::lock_guard lock(sessions_mutex);
  sessions.erase(session);
  if (sessions.empty()) sessions_done.notify_all();
}

void HttpFrontEnd::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (self->draining || !self->acceptor.is_open()) return;
    if (!ec) {
      std::make_shared<Session>(std::move(socket), self)->Start();
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
      // Out of file descriptors: back off briefly instead of spinning on accept.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    self->Accept();
  });
}

HttpFrontEnd::HttpFrontEnd(HttpFrontOptions options, HttpHandlers handlers)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(handlers))) {}

HttpFrontEnd::~HttpFrontEnd() { Drain(); }

bool HttpFrontEnd::draining() const { return impl_->draining; }

int HttpFrontEnd::Start(const std::string& host, int port) {
  auto& impl = *impl_;
  if (!impl.threads.empty()) throw InvalidArgument("the HTTP front end is already started");
  beast::error_code ec;
  tcp::resolver resolver(impl.io);
  const auto endpoints = resolver.resolve(host, std::to_string(port),
                                          tcp::resolver::numeric_service | tcp::resolver::passive, ec);
  std::string reason = ec ? ec.message() : "no address";
  bool bound = false;
  for (const auto& entry : endpoints) {
    beast::error_code step;
    impl.acceptor.open(entry.endpoint().protocol(), step);
    // SO_REUSEADDR (a quick restart after TIME_WAIT) but never SO_REUSEPORT: a second
    // server on the same port is an error, not a silent share of the traffic.
    if (!step) impl.acceptor.set_option(asio::socket_base::reuse_address(true), step);
    if (!step) impl.acceptor.bind(entry.endpoint(), step);
    if (!step) impl.acceptor.listen(asio::socket_base::max_listen_connections, step);
    if (!step) {
      bound = true;
      break;
    }
    reason = step.message();
    beast::error_code ignored;
    impl.acceptor.close(ignored);
  }
  if (!bound) {
    throw IoError(fmt::format("cannot listen on {}:{} ({}; address in use, or not an address of this host)", host,
                              port, reason));
  }
  const int bound_port = impl.acceptor.local_endpoint().port();
  impl.Accept();
  for (int t = 0; t < std::max(1, impl.options.threads); ++t) {
    impl.threads.emplace_back([&impl] {
      for (;;) {
        try {
          impl.io.run();
          return;
        } catch (...) {
          // A handler escaped: keep the loop alive (Session catches request errors).
        }
      }
    });
  }
  return bound_port;
}

void HttpFrontEnd::Drain() {
  auto& impl = *impl_;
  impl.draining = true;
  if (impl.stopped) return;
  impl.stopped = true;
  if (impl.threads.empty()) {
    impl.pool.join();
    return;
  }
  asio::post(impl.acceptor.get_executor(), [&impl] {
    beast::error_code ignored;
    impl.acceptor.close(ignored);
  });
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(impl.sessions_mutex);
    for (auto& [raw, weak] : impl.sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  for (auto& session : live) {
    auto* raw = session.get();
    asio::post(raw->executor(), [session] { session->OnDrain(); });
  }
  live.clear();
  {
    std::unique_lock lock(impl.sessions_mutex);
    impl.sessions_done.wait_for(lock, impl.options.read_timeout + impl.options.write_timeout +
                                          std::chrono::seconds(1),
                                [&] { return impl.sessions.empty(); });
  }
  impl.pool.join();
  impl.io.stop();
  for (auto& thread : impl.threads) thread.join();
  impl.threads.clear();
}

}  // namespace recforge::net
