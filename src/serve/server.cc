// The HTTP daemon of `recforge serve` (see server.h for the API).
//
// HTTP is the event-driven front end of src/net/http_front.h (Boost.Beast): it parses,
// caps bodies (413) and times out slow clients; this file routes and answers. Routing
// matches the path once (a few string compares), which gives every request a route
// template for the metrics and logs, and 404 vs 405 from one table. Requests that
// block (POST /events fsyncs, /admin/reload loads a model, /recommend/batch may score
// a thousand users) run on the front end's blocking pool; every other handler runs
// inline on an event-loop thread (microseconds), so a slow one never stalls the loop.
#include "recforge/serve/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "access_log.h"
#include "event_log.h"
#include "http_metrics.h"
#include "net/host_check.h"
#include "net/http_front.h"
#include "recforge/core/error.h"
#include "recforge/serve/web_assets.h"

namespace recforge::serve {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxTopK = 1000;
constexpr std::size_t kDefaultTopK = 10;
constexpr std::size_t kMaxBatch = 1000;
constexpr std::size_t kMaxEventsPerRequest = 10000;
constexpr std::size_t kMaxIdLength = 1024;
constexpr std::size_t kMaxListLength = 10000;
constexpr int kMaxJsonDepth = 32;
constexpr std::size_t kDefaultHistoryLimit = 50;
constexpr std::size_t kMaxHistoryLimit = 10000;

enum Route : std::size_t {
  kHealth, kLivez, kReady, kReadyz, kRecommend, kRecommendUser, kRecommendBatch, kSimilar, kPopular,
  kHistory, kInfo, kEvents, kAdminReload, kMetrics, kOpenApi, kDocs, kPage, kUnmatched, kRouteCount
};

const std::vector<std::string>& RouteTemplates() {
  static const std::vector<std::string> kTemplates = {"/health", "/livez", "/ready", "/readyz", "/recommend", "/recommend/{user_id}", "/recommend/batch",
          "/items/{item_id}/similar", "/popular", "/users/{user_id}/history", "/info", "/events",
          "/admin/reload", "/metrics", "/openapi.json", "/docs", "/", "unmatched"};
  return kTemplates;
}

std::vector<std::string> SourceNames() {
  std::vector<std::string> names;
  for (Source source : {Source::kModel, Source::kPopular, Source::kItemToItem, Source::kContent}) {
    names.emplace_back(Name(source));
  }
  return names;
}

// Routes whose handler may block for long (fsync, a model load, a batch of up to
// kMaxBatch users): run on the blocking pool, never on an event-loop thread.
bool IsBlockingRoute(Route route) { return route == kEvents || route == kAdminReload || route == kRecommendBatch; }

bool IsPostRoute(Route route) {
  return route == kRecommend || route == kRecommendBatch || route == kEvents || route == kAdminReload;
}

struct RouteMatch {
  Route route = kUnmatched;
  std::string_view param;  // {user_id} / {item_id}
};

RouteMatch MatchRoute(std::string_view path) {
  if (path == "/recommend") return {kRecommend, {}};
  if (path == "/recommend/batch") return {kRecommendBatch, {}};
  if (path.starts_with("/recommend/") && path.size() > 11) return {kRecommendUser, path.substr(11)};
  if (path == "/events") return {kEvents, {}};
  if (path == "/popular") return {kPopular, {}};
  constexpr std::string_view kItems = "/items/", kSimilarSuffix = "/similar";
  if (path.starts_with(kItems) && path.ends_with(kSimilarSuffix) &&
      path.size() > kItems.size() + kSimilarSuffix.size()) {
    return {kSimilar, path.substr(kItems.size(), path.size() - kItems.size() - kSimilarSuffix.size())};
  }
  constexpr std::string_view kUsers = "/users/", kHistorySuffix = "/history";
  if (path.starts_with(kUsers) && path.ends_with(kHistorySuffix) &&
      path.size() > kUsers.size() + kHistorySuffix.size()) {
    return {kHistory, path.substr(kUsers.size(), path.size() - kUsers.size() - kHistorySuffix.size())};
  }
  if (path == "/health") return {kHealth, {}};
  if (path == "/livez") return {kLivez, {}};
  if (path == "/ready") return {kReady, {}};
  if (path == "/readyz") return {kReadyz, {}};
  if (path == "/info") return {kInfo, {}};
  if (path == "/metrics") return {kMetrics, {}};
  if (path == "/admin/reload") return {kAdminReload, {}};
  if (path == "/openapi.json") return {kOpenApi, {}};
  if (path == "/docs" || path.starts_with("/docs/")) return {FindAsset(path) ? kDocs : kUnmatched, {}};
  if (FindAsset(path)) return {kPage, {}};
  return {kUnmatched, {}};
}

// A request error: becomes {"error": {"code": status, "message": message}}.
struct HttpError {
  int status;
  std::string message;
};

// Text from the request shown in a message: cut and made printable.
std::string Shown(std::string_view text, std::size_t max = 120) {
  std::string out;
  for (char c : text.substr(0, max)) out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
  if (text.size() > max) out += "...";
  return out;
}

void SendJson(net::HttpResponse& res, const json& body, int status = 200) {
  res.status = status;
  // Ids and titles are user text: invalid UTF-8 must never turn an answer into a 500.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void SendError(net::HttpResponse& res, int status, const std::string& message) {
  SendJson(res, json{{"error", {{"code", status}, {"message", message}}}}, status);
}

// ---- request bodies
// Rejects JSON nested deeper than kMaxJsonDepth before parsing (no request shape
// needs more than 4 levels; this bounds the parser's and the destructor's work).
void CheckDepth(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        throw HttpError{400, fmt::format("malformed JSON: nested deeper than {} levels", kMaxJsonDepth)};
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

json ParseBody(const net::HttpRequest& req) {
  if (req.body.empty()) throw HttpError{400, "malformed JSON: the request body is empty"};
  CheckDepth(req.body);
  try {
    return json::parse(req.body);
  } catch (const json::parse_error& error) {
    std::string_view what = error.what();
    if (auto close = what.find("] "); what.starts_with("[json.exception") && close != std::string_view::npos) {
      what.remove_prefix(close + 2);
    }
    throw HttpError{400, fmt::format("malformed JSON: {}", what)};
  }
}

const char* TypeName(const json& value) { return value.type_name(); }

void CheckKeys(const json& object, std::initializer_list<std::string_view> allowed, const std::string& where) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (auto name : allowed) list += (list.empty() ? "" : ", ") + std::string(name);
      throw HttpError{422, fmt::format("unknown field '{}' in {} (allowed: {})", Shown(key, 64), where, list)};
    }
  }
}

std::string IdField(const json& value, const std::string& name) {
  if (!value.is_string()) throw HttpError{422, fmt::format("{} must be a string, not {}", name, TypeName(value))};
  const auto& text = value.get_ref<const std::string&>();
  if (text.empty() || text.size() > kMaxIdLength) {
    throw HttpError{422, fmt::format("{} must be 1 to {} characters", name, kMaxIdLength)};
  }
  return text;
}

std::vector<std::string> IdList(const json& value, const std::string& name) {
  if (!value.is_array()) {
    throw HttpError{422, fmt::format("{} must be an array of strings, not {}", name, TypeName(value))};
  }
  if (value.size() > kMaxListLength) {
    throw HttpError{422, fmt::format("{} has more than {} entries", name, kMaxListLength)};
  }
  std::vector<std::string> out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) out.push_back(IdField(value[i], fmt::format("{}[{}]", name, i)));
  return out;
}

std::size_t TopK(const json& value, const std::string& name) {
  if (!value.is_number_integer()) {
    throw HttpError{422, fmt::format("{} must be an integer in 1..{}, not {}", name, kMaxTopK, TypeName(value))};
  }
  const auto k = value.get<std::int64_t>();
  if (k < 1 || k > static_cast<std::int64_t>(kMaxTopK)) {
    throw HttpError{422, fmt::format("{} must be an integer in 1..{} (got {})", name, kMaxTopK, k)};
  }
  return static_cast<std::size_t>(k);
}

// `where` names the object in messages: "request body", "requests[3]".
RecommendRequest ParseRecommendRequest(const json& body, const std::string& where) {
  if (!body.is_object()) throw HttpError{422, fmt::format("{} must be a JSON object, not {}", where, TypeName(body))};
  CheckKeys(body, {"user_id", "top_k", "exclude_seen", "filter", "context_items"}, where);
  const std::string prefix = where == "request body" ? "" : where + ".";
  RecommendRequest request;
  if (auto it = body.find("user_id"); it != body.end() && !it->is_null()) {
    request.user_id = IdField(*it, prefix + "user_id");
  }
  if (auto it = body.find("top_k"); it != body.end()) request.top_k = TopK(*it, prefix + "top_k");
  if (auto it = body.find("exclude_seen"); it != body.end()) {
    if (!it->is_boolean()) {
      throw HttpError{422, fmt::format("{}exclude_seen must be a boolean, not {}", prefix, TypeName(*it))};
    }
    request.exclude_seen = it->get<bool>();
  }
  if (auto it = body.find("filter"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      throw HttpError{422, fmt::format("{}filter must be an object, not {}", prefix, TypeName(*it))};
    }
    CheckKeys(*it, {"categories", "exclude_items"}, prefix + "filter");
    if (auto f = it->find("categories"); f != it->end()) {
      request.filter_categories = IdList(*f, prefix + "filter.categories");
    }
    if (auto f = it->find("exclude_items"); f != it->end()) {
      request.exclude_items = IdList(*f, prefix + "filter.exclude_items");
    }
  }
  if (auto it = body.find("context_items"); it != body.end() && !it->is_null()) {
    request.context_items = IdList(*it, prefix + "context_items");
  }
  if (request.user_id.empty() && request.context_items.empty()) {
    throw HttpError{422, fmt::format("{}user_id is required (a string), unless context_items are given", prefix)};
  }
  return request;
}

StoredEvent ParseEvent(const json& body, const std::string& where) {
  if (!body.is_object()) throw HttpError{422, fmt::format("{} must be a JSON object, not {}", where, TypeName(body))};
  CheckKeys(body, {"user_id", "item_id", "rating", "timestamp"}, where);
  StoredEvent event;
  auto required = [&](const char* key) -> const json& {
    auto it = body.find(key);
    if (it == body.end()) throw HttpError{422, fmt::format("{}.{} is required", where, key)};
    return *it;
  };
  event.user_id = IdField(required("user_id"), where + ".user_id");
  event.item_id = IdField(required("item_id"), where + ".item_id");
  if (auto it = body.find("rating"); it != body.end() && !it->is_null()) {
    if (!it->is_number() || !std::isfinite(it->get<double>())) {
      throw HttpError{422, fmt::format("{}.rating must be a finite number, not {}", where, TypeName(*it))};
    }
    event.rating = it->get<float>();
  }
  if (auto it = body.find("timestamp"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      throw HttpError{422, fmt::format("{}.timestamp must be an integer (Unix seconds), not {}", where,
                                       TypeName(*it))};
    }
    event.timestamp = it->get<std::int64_t>();
  } else {
    event.timestamp =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
  }
  return event;
}

// ?name=N with N in 1..max (default when absent).
std::size_t CountParam(const net::HttpRequest& req, const char* name, std::size_t fallback, std::size_t max) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  std::size_t value = 0;
  bool ok = !text.empty() && text.size() <= 7;
  for (char c : text) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    value = value * 10 + static_cast<std::size_t>(c - '0');
  }
  if (!ok || value < 1 || value > max) {
    throw HttpError{422, fmt::format("query parameter '{}' must be an integer in 1..{} (got '{}')", name, max,
                                     Shown(text, 20))};
  }
  return value;
}

// ---- response bodies
json ModelJson(const ServedModelInfo& info) {
  return json{{"name", info.name}, {"version", info.version}, {"spec", info.spec}};
}

json ItemsJson(const std::vector<RecommendedItem>& items) {
  json out = json::array();
  for (const auto& item : items) {
    json entry{{"item_id", item.item_id}, {"score", item.score}};
    if (!item.title.empty()) entry["title"] = item.title;
    if (!item.categories.empty()) entry["categories"] = std::vector<std::string>(item.categories.begin(), item.categories.end());
    out.push_back(std::move(entry));
  }
  return out;
}

json RecommendJson(const RecommendResponse& response, const json& model) {
  return json{{"user_id", response.user_id},
              {"items", ItemsJson(response.items)},
              {"model", model},
              {"source", std::string(Name(response.source))}};
}

// The hot answers (/recommend, /recommend/{user_id}) are written straight into one
// string: no json tree of 10 items x 4 fields to build, sort and free per request.
// Same content as RecommendJson(...).dump() with error_handler_t::replace (invalid
// UTF-8 becomes U+FFFD), keys in insertion order.
std::size_t Utf8Length(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > text.size() || (n == 2 && c < 0xc2)) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 0;
  }
  const auto c1 = static_cast<unsigned char>(n > 1 ? text[i + 1] : 0);
  if (n == 3 && ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0))) return 0;  // overlong, surrogate
  if (n == 4 && ((c == 0xf0 && c1 < 0x90) || c > 0xf4 || (c == 0xf4 && c1 >= 0x90))) return 0;
  return n;
}

void AppendJsonText(std::string& out, std::string_view text) {
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    // Runs of printable ASCII other than '"' and '\\' (nearly all of an id or a title)
    // are appended at once.
    std::size_t run = i;
    while (run < text.size()) {
      const auto u = static_cast<unsigned char>(text[run]);
      if (u < 0x20 || u >= 0x80 || u == '"' || u == '\\') break;
      ++run;
    }
    if (run > i) {
      out.append(text.data() + i, run - i);
      i = run;
      continue;
    }
    const char c = text[i];
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default: fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(u));
      }
      ++i;
      continue;
    }
    const std::size_t n = Utf8Length(text, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD for an invalid byte
      ++i;
    } else {
      out.append(text.data() + i, n);
      i += n;
    }
  }
  out += '"';
}

void AppendItemsJson(std::string& out, const std::vector<RecommendedItem>& items) {
  out += '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    if (i > 0) out += ',';
    out += "{\"item_id\":";
    AppendJsonText(out, item.item_id);
    out += ",\"score\":";
    if (std::isfinite(item.score)) {
      fmt::format_to(std::back_inserter(out), "{}", item.score);
    } else {
      out += "null";
    }
    if (!item.title.empty()) {
      out += ",\"title\":";
      AppendJsonText(out, item.title);
    }
    if (!item.categories.empty()) {
      out += ",\"categories\":[";
      for (std::size_t c = 0; c < item.categories.size(); ++c) {
        if (c > 0) out += ',';
        AppendJsonText(out, item.categories[c]);
      }
      out += ']';
    }
    out += '}';
  }
  out += ']';
}

std::string RecommendBody(const RecommendResponse& response, const ServedModelInfo& info) {
  std::string out;
  out.reserve(256 + response.items.size() * 96);
  out += "{\"user_id\":";
  AppendJsonText(out, response.user_id);
  out += ",\"items\":";
  AppendItemsJson(out, response.items);
  out += ",\"model\":{\"name\":";
  AppendJsonText(out, info.name);
  out += ",\"version\":";
  AppendJsonText(out, info.version);
  out += ",\"spec\":";
  AppendJsonText(out, info.spec);
  out += "},\"source\":";
  AppendJsonText(out, Name(response.source));
  out += '}';
  return out;
}

bool ValidRequestId(std::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':';
  });
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

}  // namespace

struct Server::Impl {
  Impl(ServerOptions opts, ModelLoader load)
      : options(std::move(opts)),
        loader(std::move(load)),
        metrics(RouteTemplates(), SourceNames()) {
    if (!options.events_path.empty()) events = std::make_unique<EventLog>(options.events_path);
    std::random_device device;
    id_prefix = device();
  }

  std::shared_ptr<RecommendationService> Current() const {
    auto service = current.load();
    if (!service) throw HttpError{503, "no model is loaded yet (see GET /ready)"};
    return service;
  }

  void Dispatch(const net::HttpRequest& req, net::HttpResponse& res);
  void Handle(const RouteMatch& match, const net::HttpRequest& req, net::HttpResponse& res);
  void Recommend(const net::HttpRequest& req, net::HttpResponse& res);
  void RecommendUser(std::string_view user_id, const net::HttpRequest& req, net::HttpResponse& res);
  void RecommendBatch(const net::HttpRequest& req, net::HttpResponse& res);
  void Events(const net::HttpRequest& req, net::HttpResponse& res);
  void AdminReload(const net::HttpRequest& req, net::HttpResponse& res);
  void Info(net::HttpResponse& res);
  void CheckAdmin(const net::HttpRequest& req, net::HttpResponse& res) const;
  void OnRequest(net::HttpExchange& ex);
  void OnFail(net::HttpExchange& ex, int status, std::string_view message);
  void OnFinish(const net::HttpExchange& ex);
  void AccessLog(const net::HttpExchange& ex, double seconds);
  ServedModelInfo Load(const std::string& reference);
  void Replay(RecommendationService& service, std::uint64_t& offset, std::size_t& memory_offset);

  ServerOptions options;
  ModelLoader loader;
  HttpMetrics metrics;
  std::unique_ptr<EventLog> events;        // null: events kept in memory only
  std::vector<StoredEvent> memory_events;  // without a log (guarded by event_mutex)
  std::atomic<std::shared_ptr<RecommendationService>> current;
  std::mutex event_mutex;  // orders event appends against model swaps
  std::mutex load_mutex;   // one load at a time
  mutable std::mutex reference_mutex;
  std::string reference;
  std::atomic<bool> draining{false};

  std::unique_ptr<AccessLogWriter> access_log;  // JSON access lines, written off the request path
  std::unique_ptr<net::HttpFrontEnd> front;
  std::string host;
  int port = 0;
  bool loopback = true;
  std::uint32_t id_prefix = 0;
  std::atomic<std::uint64_t> request_counter{0};
};

// ---- model loading
void Server::Impl::Replay(RecommendationService& service, std::uint64_t& offset, std::size_t& memory_offset) {
  if (events) {
    std::uint64_t skipped = 0;
    for (const auto& event : events->ReadFrom(offset, &offset, &skipped)) {
      service.AddEvent(event.user_id, event.item_id, event.rating, event.timestamp);
    }
    if (skipped > 0 && options.logger) {
      options.logger->Warn("event log {}: {} unreadable lines skipped", events->path().string(), skipped);
    }
  } else {
    for (; memory_offset < memory_events.size(); ++memory_offset) {
      const auto& event = memory_events[memory_offset];
      service.AddEvent(event.user_id, event.item_id, event.rating, event.timestamp);
    }
  }
}

ServedModelInfo Server::Impl::Load(const std::string& requested) {
  std::lock_guard load_lock(load_mutex);
  std::string ref = requested;
  if (ref.empty()) {
    std::lock_guard lock(reference_mutex);
    ref = reference;
  }
  if (ref.empty()) throw InvalidArgument("no model reference given and no model loaded yet");
  const auto started = Clock::now();
  std::shared_ptr<RecommendationService> fresh;
  std::uint64_t offset = 0;
  std::size_t memory_offset = 0;
  try {
    fresh = loader(ref);
    if (!fresh) throw InvalidArgument(fmt::format("model '{}' could not be loaded", ref));
    // Replay the bulk of the event log without blocking /events, then the tail under
    // the lock together with the swap, so no event is missed by the new model.
    if (events) Replay(*fresh, offset, memory_offset);
    // Warm: touch the fallback and the model paths once before taking traffic.
    RecommendRequest warm;
    warm.user_id = "\x01recforge-warmup";
    auto popular = fresh->Recommend(warm);
    if (!popular.items.empty()) {
      RecommendRequest context;
      context.context_items = {popular.items.front().item_id};
      fresh->Recommend(context);
    }
  } catch (...) {
    metrics.CountReload(false);
    throw;
  }
  std::shared_ptr<RecommendationService> previous;
  {
    std::lock_guard lock(event_mutex);
    Replay(*fresh, offset, memory_offset);
    previous = current.exchange(fresh);
  }
  const ServedModelInfo info = fresh->info();
  {
    std::lock_guard lock(reference_mutex);
    reference = ref;
  }
  metrics.SetModelInfo(info.name, info.version, info.spec);
  metrics.CountReload(true);
  if (options.logger) {
    options.logger->Info("serving model {} version {} ({}) from {}: {} users, {} items{}, loaded in {:.2f} s",
                         info.name, info.version, info.spec, ref, fresh->n_users(), fresh->n_items(),
                         fresh->ann_enabled() ? ", ANN retrieval: " + fresh->ann_status() : std::string(),
                         std::chrono::duration<double>(Clock::now() - started).count());
  }
  // `previous` is released here, or by the last in-flight request that still holds it.
  return info;
}

// ---- handlers
void Server::Impl::Recommend(const net::HttpRequest& req, net::HttpResponse& res) {
  const RecommendRequest request = ParseRecommendRequest(ParseBody(req), "request body");
  const auto service = Current();
  const RecommendResponse response = service->Recommend(request);
  metrics.CountRecommendation(static_cast<std::size_t>(response.source));
  res.status = 200;
  res.set_content(RecommendBody(response, service->info()), "application/json");
}

void Server::Impl::RecommendUser(std::string_view user_id, const net::HttpRequest& req, net::HttpResponse& res) {
  RecommendRequest request;
  request.user_id = IdField(json(std::string(user_id)), "user_id");
  request.top_k = CountParam(req, "k", kDefaultTopK, kMaxTopK);
  const auto service = Current();
  const RecommendResponse response = service->Recommend(request);
  metrics.CountRecommendation(static_cast<std::size_t>(response.source));
  res.status = 200;
  res.set_content(RecommendBody(response, service->info()), "application/json");
}

void Server::Impl::RecommendBatch(const net::HttpRequest& req, net::HttpResponse& res) {
  const json body = ParseBody(req);
  if (!body.is_object()) {
    throw HttpError{422, fmt::format("request body must be a JSON object {{\"requests\": [...]}}, not {}",
                                     TypeName(body))};
  }
  CheckKeys(body, {"requests"}, "request body");
  auto it = body.find("requests");
  if (it == body.end()) throw HttpError{422, "requests is required (an array of recommend requests)"};
  if (!it->is_array()) throw HttpError{422, fmt::format("requests must be an array, not {}", TypeName(*it))};
  if (it->empty() || it->size() > kMaxBatch) {
    throw HttpError{422, fmt::format("requests must hold 1 to {} requests (got {})", kMaxBatch, it->size())};
  }
  std::vector<RecommendRequest> requests;
  requests.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    requests.push_back(ParseRecommendRequest((*it)[i], fmt::format("requests[{}]", i)));
  }
  const auto service = Current();
  const json model = ModelJson(service->info());
  json results = json::array();
  for (const auto& request : requests) {
    const RecommendResponse response = service->Recommend(request);
    metrics.CountRecommendation(static_cast<std::size_t>(response.source));
    results.push_back(RecommendJson(response, model));
  }
  SendJson(res, json{{"results", std::move(results)}, {"model", model}});
}

void Server::Impl::Events(const net::HttpRequest& req, net::HttpResponse& res) {
  const json body = ParseBody(req);
  std::vector<StoredEvent> parsed;
  if (body.is_array()) {
    if (body.empty() || body.size() > kMaxEventsPerRequest) {
      throw HttpError{422, fmt::format("an events array must hold 1 to {} events (got {})", kMaxEventsPerRequest,
                                       body.size())};
    }
    parsed.reserve(body.size());
    for (std::size_t i = 0; i < body.size(); ++i) parsed.push_back(ParseEvent(body[i], fmt::format("events[{}]", i)));
  } else if (body.is_object()) {
    parsed.push_back(ParseEvent(body, "event"));
  } else {
    throw HttpError{422, fmt::format("request body must be an event object or an array of events, not {}",
                                     TypeName(body))};
  }
  Current();  // 503 before a model is loaded
  {
    std::lock_guard lock(event_mutex);
    // Durable first (write + fdatasync): only then is the event applied and answered.
    if (events) {
      events->Append(parsed);
    } else {
      memory_events.insert(memory_events.end(), parsed.begin(), parsed.end());
    }
    const auto service = current.load();
    for (const auto& event : parsed) service->AddEvent(event.user_id, event.item_id, event.rating, event.timestamp);
  }
  metrics.AddEventsStored(parsed.size());
  SendJson(res, json{{"stored", parsed.size()}, {"durable", events != nullptr}});
}

void Server::Impl::CheckAdmin(const net::HttpRequest& req, net::HttpResponse& res) const {
  if (options.admin_token.empty()) {
    throw HttpError{403, "admin endpoints are disabled (start the server with --admin-token)"};
  }
  const std::string header = req.get_header_value("Authorization");
  if (header.empty()) {
    res.set_header("WWW-Authenticate", "Bearer");
    throw HttpError{401, "admin endpoint: send 'Authorization: Bearer TOKEN'"};
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (!std::string_view(header).starts_with(kBearer)) {
    res.set_header("WWW-Authenticate", "Bearer");
    throw HttpError{401, "admin endpoint: the Authorization header must be 'Bearer TOKEN'"};
  }
  if (!ConstantTimeEqual(std::string_view(header).substr(kBearer.size()), options.admin_token)) {
    throw HttpError{403, "admin endpoint: invalid token"};
  }
}

void Server::Impl::AdminReload(const net::HttpRequest& req, net::HttpResponse& res) {
  CheckAdmin(req, res);
  std::string requested;
  if (!req.body.empty()) {
    const json body = ParseBody(req);
    if (!body.is_object()) throw HttpError{422, fmt::format("request body must be a JSON object, not {}", TypeName(body))};
    CheckKeys(body, {"model"}, "request body");
    if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
      if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
        throw HttpError{422, "model must be a non-empty string (a model file path or NAME@ALIAS)"};
      }
      requested = it->get<std::string>();
    }
  }
  const auto old_service = current.load();
  const json previous = old_service ? ModelJson(old_service->info()) : json(nullptr);
  const std::string shown = requested.empty() ? "the current model" : "'" + Shown(requested, 200) + "'";
  ServedModelInfo info;
  try {
    info = Load(requested);
  } catch (const HttpError&) {
    throw;
  } catch (const Error& error) {
    const bool user_fault = dynamic_cast<const InvalidArgument*>(&error) || dynamic_cast<const NotFound*>(&error) ||
                            dynamic_cast<const FormatError*>(&error) || dynamic_cast<const IoError*>(&error) ||
                            dynamic_cast<const ConfigError*>(&error);
    if (options.logger) options.logger->Error("reload of {} failed, old model still serving: {}", shown, error.what());
    throw HttpError{user_fault ? 422 : 500,
                    fmt::format("cannot load {} (the previous model is still serving): {}", shown, error.what())};
  } catch (const std::exception& error) {
    if (options.logger) options.logger->Error("reload of {} failed, old model still serving: {}", shown, error.what());
    throw HttpError{500, fmt::format("cannot load {} (the previous model is still serving): {}", shown, error.what())};
  }
  json model = ModelJson(info);
  model["family"] = info.family;
  model["sha256"] = info.sha256;
  std::string ref;
  {
    std::lock_guard lock(reference_mutex);
    ref = reference;
  }
  SendJson(res, json{{"status", "reloaded"}, {"model", model}, {"previous", previous}, {"reference", ref}});
}

void Server::Impl::Info(net::HttpResponse& res) {
  const auto service = Current();
  const auto& info = service->info();
  json model = ModelJson(info);
  model["family"] = info.family;
  model["sha256"] = info.sha256;
  SendJson(res, json{{"model", std::move(model)},
                     {"users", service->n_users()},
                     {"items", service->n_items()},
                     {"categories", service->Categories()},
                     {"ann", service->ann_enabled()},
                     {"events", {{"durable", events != nullptr},
                                 {"path", events ? events->path().string() : std::string()}}}});
}

void Server::Impl::Handle(const RouteMatch& match, const net::HttpRequest& req, net::HttpResponse& res) {
  switch (match.route) {
    case kHealth:
    case kLivez:
      SendJson(res, json{{"status", "ok"}});
      return;
    case kReady:
    case kReadyz: {
      const auto service = current.load();
      if (!service) throw HttpError{503, "not ready: the model is still loading"};
      if (draining) throw HttpError{503, "not ready: the server is shutting down"};
      SendJson(res, json{{"status", "ready"}, {"model", ModelJson(service->info())}});
      return;
    }
    case kRecommend: Recommend(req, res); return;
    case kRecommendUser: RecommendUser(match.param, req, res); return;
    case kRecommendBatch: RecommendBatch(req, res); return;
    case kSimilar: {
      const std::string item_id = IdField(json(std::string(match.param)), "item_id");
      const std::size_t k = CountParam(req, "k", kDefaultTopK, kMaxTopK);
      const auto service = Current();
      SendJson(res, json{{"item_id", item_id},
                         {"items", ItemsJson(service->SimilarItems(item_id, k))},
                         {"model", ModelJson(service->info())}});
      return;
    }
    case kPopular: {
      const std::size_t k = CountParam(req, "k", kDefaultTopK, kMaxTopK);
      const std::string category = req.get_param_value("category");
      if (category.size() > kMaxIdLength) throw HttpError{422, "query parameter 'category' is too long"};
      const auto service = Current();
      json body{{"items", ItemsJson(service->Popular(k, category))}, {"model", ModelJson(service->info())}};
      body["category"] = category.empty() ? json(nullptr) : json(category);
      SendJson(res, body);
      return;
    }
    case kHistory: {
      const std::string user_id = IdField(json(std::string(match.param)), "user_id");
      const std::size_t limit = CountParam(req, "limit", kDefaultHistoryLimit, kMaxHistoryLimit);
      const auto service = Current();
      SendJson(res, json{{"user_id", user_id},
                         {"known", service->KnowsUser(user_id)},
                         {"items", ItemsJson(service->History(user_id, limit))}});
      return;
    }
    case kInfo: Info(res); return;
    case kEvents: Events(req, res); return;
    case kAdminReload: AdminReload(req, res); return;
    case kMetrics:
      res.status = 200;
      res.set_content(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
      return;
    case kOpenApi:
      res.status = 200;
      res.set_header("Cache-Control", "no-cache");
      res.set_content(OpenApiJson(), "application/json");
      return;
    case kDocs:
    case kPage: {
      auto asset = FindAsset(req.path);
      if (!asset) throw HttpError{404, fmt::format("no such page: {}", Shown(req.path))};
      res.status = 200;
      res.set_header("Cache-Control", "no-cache");
      res.set_content(std::string(asset->body.data(), asset->body.size()), std::string(asset->content_type));
      return;
    }
    case kUnmatched:
    case kRouteCount:
      break;
  }
  throw HttpError{404, fmt::format("no route {} {}", Shown(req.method, 16), Shown(req.path))};
}

// The single place where request handling errors become HTTP statuses (STYLE.md §4).
void Server::Impl::Dispatch(const net::HttpRequest& req, net::HttpResponse& res) {
  try {
    const RouteMatch match = MatchRoute(req.path);
    if (match.route == kUnmatched) {
      throw HttpError{404, fmt::format("no route {} {}", Shown(req.method, 16), Shown(req.path))};
    }
    const bool post = IsPostRoute(match.route);
    const bool allowed = post ? req.method == "POST" : (req.method == "GET" || req.method == "HEAD");
    if (!allowed) {
      res.set_header("Allow", post ? "POST" : "GET, HEAD");
      throw HttpError{405, fmt::format("method {} not allowed on {} (allowed: {})", Shown(req.method, 16),
                                       RouteTemplates()[match.route], post ? "POST" : "GET, HEAD")};
    }
    Handle(match, req, res);
  } catch (const HttpError& error) {
    SendError(res, error.status, error.message);
  } catch (const NotFound& error) {
    SendError(res, 404, error.what());
  } catch (const InvalidArgument& error) {
    SendError(res, 422, error.what());
  } catch (const std::exception& error) {
    if (options.logger) options.logger->Error("request {} {} failed: {}", req.method, Shown(req.path), error.what());
    SendError(res, 500, fmt::format("internal error: {}", error.what()));
  } catch (...) {
    SendError(res, 500, "internal error");
  }
}

void Server::Impl::AccessLog(const net::HttpExchange& ex, double seconds) {
  if (!options.access_log || !options.logger || !options.logger->Enabled(LogLevel::kInfo)) return;
  const auto& req = ex.req;
  const auto& res = ex.res;
  const std::string& route = RouteTemplates()[ex.route];
  if (!options.json_logs || !access_log) {
    options.logger->Info("{} {} {} {:.3f}ms id={}", Shown(req.method, 16), Shown(req.path), res.status,
                         seconds * 1e3, ex.id);
    return;
  }
  thread_local std::string line;
  line.clear();
  fmt::format_to(std::back_inserter(line), "{{\"ts\":{:.3f},\"level\":\"info\",\"msg\":\"request\",\"request_id\":",
                 std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  AppendJsonText(line, ex.id);
  line += ",\"method\":";
  AppendJsonText(line, Shown(req.method, 16));
  line += ",\"route\":";
  AppendJsonText(line, route);
  line += ",\"path\":";
  AppendJsonText(line, Shown(req.path, 200));
  fmt::format_to(std::back_inserter(line), ",\"status\":{},\"latency_ms\":{:.3f}}}\n", res.status, seconds * 1e3);
  access_log->Append(line);  // buffered; a background thread writes (never blocks the request)
}

void Server::Impl::OnRequest(net::HttpExchange& ex) {
  auto& req = ex.req;
  auto& res = ex.res;
  ex.route = MatchRoute(req.path).route;
  const std::string given = req.get_header_value("X-Request-Id");
  ex.id = ValidRequestId(given) ? given
                                : fmt::format("{:08x}{:08x}", id_prefix,
                                              request_counter.fetch_add(1, std::memory_order_relaxed) & 0xffffffffu);
  res.set_header("X-Request-Id", ex.id);
  res.set_header("X-Content-Type-Options", "nosniff");
  if (loopback) {
    // A page on another site must not reach a loopback daemon through DNS rebinding.
    const std::string host_header = req.get_header_value("Host");
    if (!host_header.empty() && !net::IsLoopbackHost(net::HostName(host_header))) {
      SendError(res, 403, "Host header is not a loopback name (bind with --host to serve other names)");
      return;
    }
  }
  Dispatch(req, res);
}

void Server::Impl::OnFail(net::HttpExchange& ex, int status, std::string_view message) {
  ex.route = kUnmatched;
  ex.id = fmt::format("{:08x}{:08x}", id_prefix, request_counter.fetch_add(1, std::memory_order_relaxed) & 0xffffffffu);
  ex.res.set_header("X-Request-Id", ex.id);
  SendError(ex.res, status, std::string(message));
}

void Server::Impl::OnFinish(const net::HttpExchange& ex) {
  const double seconds = std::chrono::duration<double>(Clock::now() - ex.start).count();
  metrics.ObserveRequest(ex.route, ex.res.status, seconds);
  AccessLog(ex, seconds);
}

// ---- Server
Server::Server(ServerOptions options, ModelLoader loader)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(loader))) {}

Server::~Server() { Drain(); }

void Server::Start(const std::string& host, int port) {
  if (port < 0 || port > 65535) throw InvalidArgument(fmt::format("--port {} is outside 0..65535", port));
  auto& impl = *impl_;
  if (impl.front) throw InvalidArgument("the server is already started");
  // Set before the first request can arrive: the Host check reads `loopback`.
  impl.host = host;
  impl.loopback = net::IsLoopbackHost(host);
  if (impl.options.access_log && impl.options.json_logs && impl.options.logger &&
      impl.options.logger->Enabled(LogLevel::kInfo)) {
    impl.access_log = std::make_unique<AccessLogWriter>(STDERR_FILENO);
  }
  net::HttpFrontOptions front;
  front.threads = impl.options.threads > 0 ? impl.options.threads
                                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  front.blocking_threads = std::max(1, impl.options.blocking_threads);
  front.max_body_bytes = impl.options.max_body_bytes;
  front.read_timeout = std::chrono::milliseconds(impl.options.read_timeout_ms);
  front.write_timeout = std::chrono::milliseconds(impl.options.write_timeout_ms);
  front.keep_alive_timeout = std::chrono::milliseconds(impl.options.keep_alive_timeout_ms);
  front.keep_alive_max_requests = impl.options.keep_alive_max_requests;
  net::HttpHandlers handlers;
  Impl* self = &impl;
  handlers.blocking = [](net::HttpExchange& ex) { return IsBlockingRoute(MatchRoute(ex.req.path).route); };
  handlers.handle = [self](net::HttpExchange& ex) { self->OnRequest(ex); };
  handlers.fail = [self](net::HttpExchange& ex, int status, std::string_view message) {
    self->OnFail(ex, status, message);
  };
  handlers.finish = [self](const net::HttpExchange& ex) { self->OnFinish(ex); };
  impl.front = std::make_unique<net::HttpFrontEnd>(front, std::move(handlers));
  impl.port = impl.front->Start(host, port);
}

int Server::port() const { return impl_->port; }

const std::string& Server::host() const { return impl_->host; }

ServedModelInfo Server::LoadModel(const std::string& reference) { return impl_->Load(reference); }

std::string Server::model_reference() const {
  std::lock_guard lock(impl_->reference_mutex);
  return impl_->reference;
}

bool Server::ready() const { return impl_->current.load() != nullptr && !impl_->draining; }

void Server::Drain() {
  impl_->draining = true;
  // Idle keep-alive connections close, requests already started finish (answered with
  // Connection: close), then the event loops and the blocking pool are joined.
  if (impl_->front) impl_->front->Drain();
  if (impl_->access_log) impl_->access_log->Flush();
}

}  // namespace recforge::serve
