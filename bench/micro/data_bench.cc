// Micro-benchmarks of the data module (Google Benchmark, pinned thread counts).
//   RECFORGE_BENCH_PREPARED=DIR  BM_LoadPrepared reads a prepared dataset back
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "recforge/data/dataset.h"
#include "recforge/data/id_interner.h"
#include "recforge/data/text_fields.h"

namespace {

void BM_LoadPrepared(benchmark::State& state) {
  const char* dir = std::getenv("RECFORGE_BENCH_PREPARED");
  if (dir == nullptr) {
    state.SkipWithError("set RECFORGE_BENCH_PREPARED to a prepared dataset directory");
    return;
  }
  std::uint64_t rows = 0;
  for (auto _ : state) {
    auto prepared = recforge::data::LoadPrepared(dir);
    rows = prepared.train.size() + prepared.test.size() + (prepared.val ? prepared.val->size() : 0);
    benchmark::DoNotOptimize(prepared.train.users.data());
  }
  state.counters["rows"] = static_cast<double>(rows);
  state.SetItemsProcessed(static_cast<std::int64_t>(rows) * state.iterations());
}
BENCHMARK(BM_LoadPrepared)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_InternNumericIds(benchmark::State& state) {
  std::vector<std::string> ids;
  for (int k = 0; k < 1'000'000; ++k) ids.push_back(std::to_string((k * 7919) % 200'000));
  for (auto _ : state) {
    recforge::data::IdInterner interner;
    for (const auto& id : ids) benchmark::DoNotOptimize(interner.Intern(id));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(ids.size()) * state.iterations());
}
BENCHMARK(BM_InternNumericIds)->Unit(benchmark::kMillisecond);

void BM_ParseTime(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(recforge::data::ParseTime("2005-09-06", recforge::data::TimeFormat::kDate));
    benchmark::DoNotOptimize(recforge::data::ParseTime("881250949", recforge::data::TimeFormat::kUnixSeconds));
  }
}
BENCHMARK(BM_ParseTime);

}  // namespace

BENCHMARK_MAIN();
