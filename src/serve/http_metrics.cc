#include "http_metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace recforge::serve {
namespace {

// Label values: backslash, double quote and newline escaped (exposition format).
std::string Label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

HttpMetrics::HttpMetrics(std::vector<std::string> routes, std::vector<std::string> sources)
    : routes_(std::move(routes)),
      sources_(std::move(sources)),
      stats_(std::make_unique<RouteStats[]>(routes_.size())),
      recommendations_(std::make_unique<std::atomic<std::uint64_t>[]>(sources_.size())) {
  for (std::size_t i = 0; i < sources_.size(); ++i) recommendations_[i] = 0;
}

void HttpMetrics::ObserveRequest(std::size_t route, int status, double seconds) {
  if (route >= routes_.size()) return;
  auto& stats = stats_[route];
  if (status >= kMinCode && status < kMinCode + kCodes) {
    stats.codes[static_cast<std::size_t>(status - kMinCode)].fetch_add(1, std::memory_order_relaxed);
  }
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds) - kBuckets.begin());
  stats.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  stats.count.fetch_add(1, std::memory_order_relaxed);
  stats.sum_ns.fetch_add(static_cast<std::uint64_t>(std::max(0.0, seconds) * 1e9), std::memory_order_relaxed);
}

void HttpMetrics::CountRecommendation(std::size_t source, std::uint64_t n) {
  if (source < sources_.size()) recommendations_[source].fetch_add(n, std::memory_order_relaxed);
}

void HttpMetrics::AddEventsStored(std::uint64_t n) { events_stored_.fetch_add(n, std::memory_order_relaxed); }

void HttpMetrics::CountReload(bool ok) { (ok ? reloads_ok_ : reloads_failed_).fetch_add(1, std::memory_order_relaxed); }

void HttpMetrics::SetModelInfo(const std::string& name, const std::string& version, const std::string& spec) {
  std::lock_guard lock(model_mutex_);
  model_name_ = name;
  model_version_ = version;
  model_spec_ = spec;
}

std::string HttpMetrics::Render() const {
  std::string out;
  out.reserve(16384);
  auto append = [&out](std::string_view text) { out.append(text); };

  append("# HELP http_requests_total HTTP requests by route template and status code.\n");
  append("# TYPE http_requests_total counter\n");
  for (std::size_t route = 0; route < routes_.size(); ++route) {
    for (int code = 0; code < kCodes; ++code) {
      const auto n = stats_[route].codes[static_cast<std::size_t>(code)].load(std::memory_order_relaxed);
      if (n == 0) continue;
      out += fmt::format("http_requests_total{{handler=\"{}\",code=\"{}\"}} {}\n", Label(routes_[route]),
                         code + kMinCode, n);
    }
  }

  append("# HELP http_request_duration_seconds Time from the request's headers to the end of the response.\n");
  append("# TYPE http_request_duration_seconds histogram\n");
  for (std::size_t route = 0; route < routes_.size(); ++route) {
    const auto& stats = stats_[route];
    const auto count = stats.count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    const std::string handler = Label(routes_[route]);
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += stats.buckets[b].load(std::memory_order_relaxed);
      out += fmt::format("http_request_duration_seconds_bucket{{handler=\"{}\",le=\"{}\"}} {}\n", handler,
                         kBuckets[b], cumulative);
    }
    cumulative += stats.buckets[kBuckets.size()].load(std::memory_order_relaxed);
    out += fmt::format("http_request_duration_seconds_bucket{{handler=\"{}\",le=\"+Inf\"}} {}\n", handler,
                       cumulative);
    out += fmt::format("http_request_duration_seconds_sum{{handler=\"{}\"}} {:.9f}\n", handler,
                       static_cast<double>(stats.sum_ns.load(std::memory_order_relaxed)) / 1e9);
    out += fmt::format("http_request_duration_seconds_count{{handler=\"{}\"}} {}\n", handler, cumulative);
  }

  append("# HELP recommendations_total Recommendation lists answered, by source.\n");
  append("# TYPE recommendations_total counter\n");
  for (std::size_t source = 0; source < sources_.size(); ++source) {
    out += fmt::format("recommendations_total{{source=\"{}\"}} {}\n", Label(sources_[source]),
                       recommendations_[source].load(std::memory_order_relaxed));
  }

  append("# HELP model_info The model being served.\n");
  append("# TYPE model_info gauge\n");
  {
    std::lock_guard lock(model_mutex_);
    if (!model_name_.empty() || !model_spec_.empty()) {
      out += fmt::format("model_info{{name=\"{}\",version=\"{}\",spec=\"{}\"}} 1\n", Label(model_name_),
                         Label(model_version_), Label(model_spec_));
    }
  }

  append("# HELP model_reloads_total Model reloads (POST /admin/reload and alias polls) by result.\n");
  append("# TYPE model_reloads_total counter\n");
  out += fmt::format("model_reloads_total{{result=\"ok\"}} {}\n", reloads_ok_.load(std::memory_order_relaxed));
  out += fmt::format("model_reloads_total{{result=\"failed\"}} {}\n",
                     reloads_failed_.load(std::memory_order_relaxed));

  append("# HELP events_stored_total Events durably stored by this process.\n");
  append("# TYPE events_stored_total counter\n");
  out += fmt::format("events_stored_total {}\n", events_stored_.load(std::memory_order_relaxed));
  return out;
}

}  // namespace recforge::serve
