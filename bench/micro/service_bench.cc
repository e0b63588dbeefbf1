// The in-process cost of one `/recommend` answer (issue 5), without HTTP: a known user
// on a 50k-item ials model (the exact-scoring path: no ANN below AnnIndex's min_items),
// with and without a category filter, and an unknown user (the popular fallback).
// The HTTP figures against the FastAPI peer are bench/peer/serve_bench.py's.
//
//   recforge_bench_service [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "recforge/models/registry.h"
#include "recforge/serve/recommendation_service.h"

namespace {

using namespace recforge;

constexpr int kUsers = 4000;
constexpr int kItems = 50000;

// 20 interactions per user with a popularity skew (low item indices are frequent) and
// a category on every 50th item; built once for all benchmarks.
serve::RecommendationService& Service() {
  static std::unique_ptr<serve::RecommendationService> service = [] {
    data::PreparedDataset prepared;
    std::vector<std::string> users, items;
    for (int u = 0; u < kUsers; ++u) users.push_back(fmt::format("u{}", u));
    for (int i = 0; i < kItems; ++i) items.push_back(fmt::format("i{}", i));
    prepared.users = data::IdMap(users);
    prepared.items = data::IdMap(items);
    for (int u = 0; u < kUsers; ++u) {
      for (int j = 0; j < 20; ++j) {
        const auto item = static_cast<ItemIndex>((static_cast<std::uint64_t>(u) * 7919 + j * j * 104729) % kItems *
                                                 (j % 3 == 0 ? 1 : (j + 1)) % kItems);
        prepared.train.Append(static_cast<UserIndex>(u), item, 1.0f, j);
      }
    }
    for (int i = 0; i < kItems; i += 50) {
      data::ItemInfo info;
      info.item_id = items[static_cast<std::size_t>(i)];
      info.categories = {fmt::format("c{}", i % 20)};
      prepared.item_info.push_back(info);
    }
    auto data = models::TrainingData::FromPrepared(prepared, 2);
    Context ctx;
    ctx.threads = 2;
    std::shared_ptr<models::Recommender> model = models::CreateModel("ials:factors=32,iters=2");
    model->Fit(data, ctx);
    return std::make_unique<serve::RecommendationService>(model, std::move(prepared), serve::ServedModelInfo{},
                                                          serve::FallbackOptions{}, serve::AnnOptions{}, 2);
  }();
  return *service;
}

void Recommend(benchmark::State& state, const std::vector<std::string>& categories, bool known) {
  auto& service = Service();
  serve::RecommendRequest request;
  request.top_k = 10;
  request.filter_categories = categories;
  int u = 0;
  for (auto _ : state) {
    request.user_id = known ? fmt::format("u{}", u++ % kUsers) : "nobody";
    auto response = service.Recommend(request);
    benchmark::DoNotOptimize(response.items.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_KnownUser50kItems(benchmark::State& state) { Recommend(state, {}, true); }
void BM_KnownUser50kItemsCategoryFilter(benchmark::State& state) { Recommend(state, {"c10"}, true); }
void BM_UnknownUserPopular(benchmark::State& state) { Recommend(state, {}, false); }

BENCHMARK(BM_KnownUser50kItems)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_KnownUser50kItemsCategoryFilter)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_UnknownUserPopular)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
