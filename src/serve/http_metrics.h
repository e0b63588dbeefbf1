// The Prometheus metrics of `recforge serve` (text exposition format 0.0.4):
//
//   http_requests_total{handler, code}            counter per route template and status
//   http_request_duration_seconds{handler}        histogram per route template
//   recommendations_total{source}                 answers by source (model, fallback:*)
//   model_info{name, version, spec} 1             the model being served
//   model_reloads_total{result}                   ok | failed
//   events_stored_total                           events made durable by this process
//
// Recording is lock-free (relaxed atomics; a request touches three counters), so it
// costs nothing next to the request. Thread-safety: every method is safe to call
// concurrently.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace recforge::serve {

class HttpMetrics {
 public:
  // Upper bounds (seconds) of the latency histogram buckets; +Inf is implicit.
  static constexpr std::array<double, 14> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                      0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   5.0};

  // `routes`: the route templates ("/recommend", "/items/{item_id}/similar", ...);
  // ObserveRequest takes an index into it. `sources`: the recommendation sources.
  HttpMetrics(std::vector<std::string> routes, std::vector<std::string> sources);

  void ObserveRequest(std::size_t route, int status, double seconds);
  void CountRecommendation(std::size_t source, std::uint64_t n = 1);
  void AddEventsStored(std::uint64_t n);
  void CountReload(bool ok);
  void SetModelInfo(const std::string& name, const std::string& version, const std::string& spec);

  // The whole exposition (Content-Type: text/plain; version=0.0.4).
  std::string Render() const;

 private:
  static constexpr int kMinCode = 100;
  static constexpr int kCodes = 500;  // 100..599
  struct RouteStats {
    std::array<std::atomic<std::uint64_t>, kCodes> codes{};
    std::array<std::atomic<std::uint64_t>, kBuckets.size() + 1> buckets{};
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_ns{0};
  };

  std::vector<std::string> routes_;
  std::vector<std::string> sources_;
  std::unique_ptr<RouteStats[]> stats_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> recommendations_;
  std::atomic<std::uint64_t> events_stored_{0};
  std::atomic<std::uint64_t> reloads_ok_{0};
  std::atomic<std::uint64_t> reloads_failed_{0};
  mutable std::mutex model_mutex_;
  std::string model_name_, model_version_, model_spec_;
};

}  // namespace recforge::serve
