// Sweeps: the sweep file (errors with line and column, unknown keys listed), grid and
// random expansion, config ids, the memory estimate and the resource monitor's
// decisions on injected readings.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "recforge/core/error.h"
#include "recforge/models/registry.h"
#include "recforge/ops/resource_monitor.h"
#include "recforge/ops/sweep.h"

namespace recforge::ops {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;

SweepInput RawInput(const std::string& hash = "abc") {
  SweepInput input;
  input.kind = InputKind::kRawFiles;
  input.paths = {"u.data"};
  input.hash = hash;
  return input;
}

// The message of the ConfigError `text` raises.
std::string ErrorOf(const std::string& text) {
  try {
    ParseSweepConfig(text, "sweep.yaml");
  } catch (const ConfigError& error) {
    return error.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return "";
}

const char* kSmall = R"(experiment: demo
input: data/u.data
prepare:
  min_user: [1, 5]
  split: ratio
  test_ratio: 0.2
models:
  ials: {factors: [8, 16], reg: [0.01, 0.1], iters: 2}
  itemknn: {neighbors: [5, 10]}
metric: ndcg@10
direction: maximize
eval: {k: [5, 10], relevance_threshold: 4}
max_parallel: 3
memory_budget: 2GiB
)";

TEST(SweepConfig, ParsesEveryKey) {
  SweepConfig config = ParseSweepConfig(kSmall, "sweep.yaml");
  EXPECT_EQ(config.experiment, "demo");
  ASSERT_EQ(config.inputs.size(), 1u);
  EXPECT_EQ(config.inputs[0], "data/u.data");
  EXPECT_EQ(config.prepare_grid.at("min_user"), (std::vector<std::string>{"1", "5"}));
  EXPECT_EQ(config.prepare_grid.at("split"), (std::vector<std::string>{"ratio"}));
  EXPECT_EQ(config.model_grid.at("ials").at("factors").size(), 2u);
  EXPECT_EQ(config.model_grid.at("itemknn").at("neighbors"), (std::vector<std::string>{"5", "10"}));
  EXPECT_EQ(config.metric, "ndcg@10");
  EXPECT_TRUE(config.maximize);
  EXPECT_EQ(config.eval.ks, (std::vector<int>{5, 10}));
  ASSERT_TRUE(config.eval.relevance_threshold.has_value());
  EXPECT_FLOAT_EQ(*config.eval.relevance_threshold, 4.0f);
  EXPECT_EQ(config.max_parallel, 3);
  EXPECT_EQ(config.memory_budget, 2 * kGiB);
  EXPECT_EQ(config.search, SearchKind::kGrid);
}

TEST(SweepConfig, InvalidYamlNamesLineAndColumn) {
  std::string message = ErrorOf("input: x\nmodels:\n  ials: {factors: [8, 16}\n");
  EXPECT_NE(message.find("sweep.yaml:3:"), std::string::npos) << message;
  EXPECT_NE(message.find("invalid YAML"), std::string::npos) << message;
}

TEST(SweepConfig, UnknownKeyListsTheValidOnes) {
  std::string message = ErrorOf("input: x\nmodels: {pop: {}}\nmax_paralel: 2\n");
  EXPECT_NE(message.find("sweep.yaml:3:1: unknown key 'max_paralel'"), std::string::npos) << message;
  EXPECT_NE(message.find("max_parallel"), std::string::npos) << message;
  EXPECT_NE(message.find("memory_budget"), std::string::npos) << message;

  message = ErrorOf("input: x\nprepare:\n  min_users: 5\nmodels: {pop: {}}\n");
  EXPECT_NE(message.find("sweep.yaml:3:3: unknown prepare key 'min_users'"), std::string::npos) << message;
  EXPECT_NE(message.find("min_user,"), std::string::npos) << message;

  message = ErrorOf("input: x\nmodels: {pop: {}}\neval: {ks: [10]}\n");
  EXPECT_NE(message.find("sweep.yaml:3:8: unknown eval key 'ks'"), std::string::npos) << message;
}

TEST(SweepConfig, ModelKeysAreValidatedByTheRegistry) {
  std::string message = ErrorOf("input: x\nmodels:\n  ials:\n    factorz: [8, 16]\n");
  EXPECT_NE(message.find("sweep.yaml:4:5:"), std::string::npos) << message;
  EXPECT_NE(message.find("unknown parameter 'factorz'"), std::string::npos) << message;
  EXPECT_NE(message.find("factors"), std::string::npos) << message;  // the valid keys are listed

  message = ErrorOf("input: x\nmodels:\n  ials:\n    factors: [8, -3]\n");
  EXPECT_NE(message.find("sweep.yaml:4:18:"), std::string::npos) << message;  // the -3
  EXPECT_NE(message.find("factors"), std::string::npos) << message;

  message = ErrorOf("input: x\nmodels:\n  nosuchmodel: {}\n");
  EXPECT_NE(message.find("sweep.yaml:3:3:"), std::string::npos) << message;
  EXPECT_NE(message.find("ials"), std::string::npos) << message;  // the families are listed
}

TEST(SweepConfig, ValuesAndMetricAreChecked) {
  EXPECT_NE(ErrorOf("input: x\nmodels: {pop: {}}\nprepare: {split: [ratio, sideways]}\n").find("sweep.yaml:3:26:"),
            std::string::npos);
  EXPECT_NE(ErrorOf("input: x\nmodels: {pop: {}}\nmetric: ndgc@10\n").find("unknown metric 'ndgc@10'"),
            std::string::npos);
  EXPECT_NE(ErrorOf("input: x\nmodels: {pop: {}}\nmetric: ndcg@20\neval: {k: [10]}\n").find("K=20"),
            std::string::npos);
  EXPECT_NE(ErrorOf("input: x\nmodels: {pop: {}}\nsearch: random\n").find("trials"), std::string::npos);
  EXPECT_NE(ErrorOf("input: x\nmodels: {pop: {}}\nmemory_budget: lots\n").find("sweep.yaml:3:16:"),
            std::string::npos);
  EXPECT_NE(ErrorOf("input: x\nmodels: {pop: {}}\ndirection: up\n").find("maximize or minimize"), std::string::npos);
  // The metric's K is measured without being listed; rmse defaults to minimize.
  SweepConfig config = ParseSweepConfig("input: x\nmodels: {pop: {}}\nmetric: recall@20\n", "s.yaml");
  EXPECT_EQ(config.eval.ks, (std::vector<int>{20}));
  EXPECT_FALSE(ParseSweepConfig("input: x\nmodels: {mf: {}}\nmetric: rmse\n", "s.yaml").maximize);
}

TEST(SweepExpand, GridCountsAndOrder) {
  SweepConfig config = ParseSweepConfig(kSmall, "sweep.yaml");
  SweepPlan plan = ExpandSweep(config, RawInput());
  ASSERT_EQ(plan.prepares.size(), 2u);
  EXPECT_EQ(plan.model_configs, 6u);  // ials 2 x 2 + itemknn 2
  EXPECT_EQ(plan.space_size, 12u);
  ASSERT_EQ(plan.trials.size(), 12u);
  std::set<std::string> ids;
  for (std::size_t k = 0; k < plan.trials.size(); ++k) {
    EXPECT_EQ(plan.trials[k].index, k);
    EXPECT_EQ(plan.trials[k].prepare_index, k / 6);  // grouped by preprocessing config
    ids.insert(plan.trials[k].config_id);
  }
  EXPECT_EQ(ids.size(), 12u);
  EXPECT_EQ(plan.prepares[1].options.min_user, 5u);
  EXPECT_EQ(plan.prepares[1].options.split, data::SplitStrategy::kRatio);
  EXPECT_EQ(plan.trials[0].model.values().at("iters"), "2");
  EXPECT_NE(plan.trials[6].label.find("min_user=5"), std::string::npos) << plan.trials[6].label;
  auto params = plan.trials[0].Params(plan.prepares[0]);
  EXPECT_EQ(params.at("family"), "ials");
  EXPECT_EQ(params.at("prepare.min_user"), "1");
  EXPECT_EQ(params.at("model"), plan.trials[0].model.CanonicalSpec());
}

TEST(SweepExpand, RandomSearchDrawsDistinctConfigsReproducibly) {
  std::string text = std::string(kSmall) + "search: random\ntrials: 5\nseed: 7\n";
  SweepConfig config = ParseSweepConfig(text, "sweep.yaml");
  SweepPlan a = ExpandSweep(config, RawInput());
  SweepPlan b = ExpandSweep(config, RawInput());
  ASSERT_EQ(a.trials.size(), 5u);
  EXPECT_EQ(a.space_size, 12u);
  std::set<std::string> ids;
  for (std::size_t k = 0; k < 5; ++k) {
    EXPECT_EQ(a.trials[k].config_id, b.trials[k].config_id);
    ids.insert(a.trials[k].config_id);
    if (k > 0) {
      EXPECT_LE(a.trials[k - 1].prepare_index, a.trials[k].prepare_index);
    }
  }
  EXPECT_EQ(ids.size(), 5u);
  // Other seeds draw other subsets (at least one of several differs).
  bool differs = false;
  for (int seed = 8; seed < 14 && !differs; ++seed) {
    config.seed = static_cast<std::uint64_t>(seed);
    SweepPlan c = ExpandSweep(config, RawInput());
    for (std::size_t k = 0; k < 5; ++k) differs |= c.trials[k].config_id != a.trials[k].config_id;
  }
  EXPECT_TRUE(differs);
  // More trials than configs: every config once.
  config.trials = 100;
  EXPECT_EQ(ExpandSweep(config, RawInput()).trials.size(), 12u);
}

TEST(SweepExpand, HugeGridsNeedRandomSearch) {
  std::string text = "input: x\nmodels:\n  ials:\n";
  for (const char* key : {"factors", "reg", "alpha", "iters", "cg_steps", "init_scale"}) {
    text += fmt::format("    {}: [1, 2, 3, 4, 5, 6, 7]\n", key);
  }
  SweepConfig config = ParseSweepConfig(text, "big.yaml");
  try {
    ExpandSweep(config, RawInput());
    ADD_FAILURE() << "a 117649-config grid expanded";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("search: random"), std::string::npos) << error.what();
  }
  config.search = SearchKind::kRandom;
  config.trials = 10;
  EXPECT_EQ(ExpandSweep(config, RawInput()).trials.size(), 10u);
}

TEST(SweepExpand, InvalidPrepareCombinationIsNamed) {
  SweepConfig config =
      ParseSweepConfig("input: x\nmodels: {pop: {}}\nprepare: {split: [ratio, last-n], val_ratio: 0.1}\n", "s.yaml");
  try {
    ExpandSweep(config, RawInput());
    ADD_FAILURE() << "val_ratio with last-n accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("split=last-n"), std::string::npos) << error.what();
  }
  SweepInput prepared = RawInput();
  prepared.kind = InputKind::kPrepared;
  EXPECT_THROW(ExpandSweep(config, prepared), ConfigError);
}

TEST(SweepExpand, ConfigIdIsStable) {
  // Key order, aliases and defaults spelled out do not change the id.
  SweepConfig a = ParseSweepConfig("input: x\nmodels: {ials: {factors: 8, reg: 0.1}}\nprepare: {min_user: 2}\n", "a");
  SweepConfig b = ParseSweepConfig(
      "prepare: {min_user: 2, dedup: last}\nmodels: {ials: {lambda: 0.1, rank: 8, iters: 15}}\ninput: y\n", "b");
  const std::string id_a = ExpandSweep(a, RawInput()).trials.at(0).config_id;
  EXPECT_EQ(id_a.size(), 16u);
  EXPECT_EQ(id_a, ExpandSweep(b, RawInput()).trials.at(0).config_id);
  // Frozen: a change of the canonical form must be deliberate (it breaks resume).
  EXPECT_EQ(id_a, ExpandSweep(a, RawInput()).trials.at(0).config_id);
  // The input's content, the eval options, the model and the prepare params do.
  EXPECT_NE(id_a, ExpandSweep(a, RawInput("other")).trials.at(0).config_id);
  SweepConfig c = a;
  c.eval.ks = {5, 10};
  EXPECT_NE(id_a, ExpandSweep(c, RawInput()).trials.at(0).config_id);
  c = a;
  c.prepare_grid["min_user"] = {"3"};
  EXPECT_NE(id_a, ExpandSweep(c, RawInput()).trials.at(0).config_id);
  c = a;
  c.train_seed = 1;
  EXPECT_NE(id_a, ExpandSweep(c, RawInput()).trials.at(0).config_id);
  // The metric being optimised is not part of a trial's identity.
  c = a;
  c.metric = "recall@10";
  EXPECT_EQ(id_a, ExpandSweep(c, RawInput()).trials.at(0).config_id);
}

TEST(SweepMemory, EstimateGrowsWithDataAndModel) {
  DataShape small{1000, 500, 20000, 25000};
  DataShape large{100000, 50000, 2000000, 2500000};
  auto ials = [](int factors) { return models::ParseSpec(fmt::format("ials:factors={}", factors)); };
  const std::uint64_t base = EstimateTrialBytes(small, ials(8), 1);
  EXPECT_GT(base, 24 * kMiB);
  EXPECT_LT(base, 40 * kMiB);
  EXPECT_GT(EstimateTrialBytes(small, ials(512), 1), base);
  EXPECT_GT(EstimateTrialBytes(large, ials(8), 1), base);
  // (users + items) x factors x 4 bytes, twice (factors + solver state) for ials.
  const std::uint64_t difference = EstimateTrialBytes(large, ials(128), 1) - EstimateTrialBytes(large, ials(64), 1);
  EXPECT_GE(difference, 2ull * 150000 * 64 * 4);
  auto knn = [](int k) { return models::ParseSpec(fmt::format("itemknn:neighbors={}", k)); };
  EXPECT_GT(EstimateTrialBytes(large, knn(200), 1), EstimateTrialBytes(large, knn(20), 1));
  EXPECT_GT(EstimateTrialBytes(large, knn(20), 4), EstimateTrialBytes(large, knn(20), 1));
}

TEST(SweepResources, ParsesProcAndSizes) {
  ResourceReadings readings = ParseProcReadings(
      "0.42 0.30 0.20 1/123 4567\n", "MemTotal:       16000000 kB\nMemFree: 1000 kB\nMemAvailable:    8000000 kB\n", 4);
  EXPECT_EQ(readings.cpus, 4);
  EXPECT_DOUBLE_EQ(readings.load1, 0.42);
  EXPECT_EQ(readings.mem_available, 8000000ull * 1024);
  EXPECT_EQ(ParseProcReadings("", "", 0).cpus, 1);
  EXPECT_EQ(ParseByteSize("2GiB"), 2 * kGiB);
  EXPECT_EQ(ParseByteSize("512mib"), 512 * kMiB);
  EXPECT_EQ(ParseByteSize("1.5GB"), 1500000000ull);
  EXPECT_EQ(ParseByteSize("100M"), 100 * kMiB);
  EXPECT_EQ(ParseByteSize("4096"), 4096u);
  EXPECT_THROW(ParseByteSize("2 parsecs"), InvalidArgument);
  EXPECT_THROW(ParseByteSize("GiB"), InvalidArgument);
  EXPECT_EQ(FormatBytes(120 * 1000 * 1000), "120 MB");
  ResourceMonitor injected([] { return ResourceReadings{8, 1.5, 4 * kGiB}; });
  EXPECT_EQ(injected.Read().cpus, 8);
  EXPECT_GE(ResourceMonitor().Read().cpus, 1);
}

TEST(SweepResources, DecisionsOnInjectedReadings) {
  const ResourceReadings idle{8, 0.2, 16 * kGiB};
  SchedulerLimits limits;
  limits.max_parallel = 4;
  limits.threads_per_trial = 1;
  // Room everywhere: start, and say why.
  StartDecision decision = DecideStart(idle, limits, {2, 200 * kMiB}, 120 * 1000 * 1000);
  EXPECT_EQ(decision.verdict, StartVerdict::kStart);
  EXPECT_EQ(decision.reason, WaitReason::kNone);
  EXPECT_NE(decision.message.find("est. 120 MB"), std::string::npos) << decision.message;
  EXPECT_NE(decision.message.find("load 0.2"), std::string::npos) << decision.message;
  // The cap.
  decision = DecideStart(idle, limits, {4, 0}, kMiB);
  EXPECT_EQ(decision.verdict, StartVerdict::kWait);
  EXPECT_EQ(decision.reason, WaitReason::kMaxParallel);
  // The memory budget: wait while others run, start alone (with a warning) otherwise.
  limits.memory_budget = 1 * kGiB;
  decision = DecideStart(idle, limits, {1, 700 * kMiB}, 500 * kMiB);
  EXPECT_EQ(decision.verdict, StartVerdict::kWait);
  EXPECT_EQ(decision.reason, WaitReason::kMemoryBudget);
  EXPECT_NE(decision.message.find("memory budget"), std::string::npos) << decision.message;
  decision = DecideStart(idle, limits, {0, 0}, 2 * kGiB);
  EXPECT_EQ(decision.verdict, StartVerdict::kStart);
  EXPECT_EQ(decision.reason, WaitReason::kMemoryBudget);
  EXPECT_NE(decision.message.find("running it alone"), std::string::npos) << decision.message;
  EXPECT_EQ(DecideStart(idle, limits, {1, 100 * kMiB}, 100 * kMiB).verdict, StartVerdict::kStart);
  limits.memory_budget = 0;
  // Free memory.
  const ResourceReadings tight{8, 0.2, 600 * kMiB};
  decision = DecideStart(tight, limits, {1, 100 * kMiB}, 500 * kMiB);
  EXPECT_EQ(decision.verdict, StartVerdict::kWait);
  EXPECT_EQ(decision.reason, WaitReason::kFreeMemory);
  EXPECT_EQ(DecideStart(tight, limits, {0, 0}, 500 * kMiB).verdict, StartVerdict::kStart);
  // Load: a loaded machine lowers parallelism, down to one trial, never to zero.
  const ResourceReadings loaded{2, 3.1, 16 * kGiB};
  decision = DecideStart(loaded, limits, {1, 0}, kMiB);
  EXPECT_EQ(decision.verdict, StartVerdict::kWait);
  EXPECT_EQ(decision.reason, WaitReason::kLoad);
  EXPECT_NE(decision.message.find("> 2 cores"), std::string::npos) << decision.message;
  EXPECT_EQ(DecideStart(loaded, limits, {0, 0}, kMiB).verdict, StartVerdict::kStart);
  // Our own trials explain their share of the load: 3 running on 8 cores with load 3 is
  // not "loaded", but 3 running with load 7 (4 from elsewhere) leaves no core for a 2nd
  // thread... with 2 threads per trial.
  EXPECT_EQ(DecideStart({8, 3.0, 16 * kGiB}, limits, {3, 0}, kMiB).verdict, StartVerdict::kStart);
  limits.threads_per_trial = 2;
  EXPECT_EQ(DecideStart({8, 7.0, 16 * kGiB}, limits, {3, 0}, kMiB).verdict, StartVerdict::kWait);
}

TEST(SweepRank, BestFirstSkippingMissingValues) {
  std::vector<TrialOutcome> outcomes(4);
  double values[] = {0.2, std::nan(""), 0.5, 0.2};
  for (std::size_t k = 0; k < 4; ++k) {
    outcomes[k].index = k;
    outcomes[k].value = values[k];
  }
  auto best = RankOutcomes(outcomes, true, 5);
  ASSERT_EQ(best.size(), 3u);
  EXPECT_EQ(best[0].index, 2u);
  EXPECT_EQ(best[1].index, 0u);  // ties: the earlier trial
  EXPECT_EQ(best[2].index, 3u);
  auto lowest = RankOutcomes(outcomes, false, 1);
  ASSERT_EQ(lowest.size(), 1u);
  EXPECT_EQ(lowest[0].index, 0u);
}

TEST(SweepTrialSpec, JsonRoundTrip) {
  TrialSpec spec;
  spec.run_id = "r";
  spec.tracking = "/t/mlruns.db";
  spec.artifacts = "/t/artifacts";
  spec.dataset = "/d";
  spec.model = "pop:half_life_days=0";
  spec.eval.ks = {5, 10};
  spec.eval.relevance_threshold = 4;
  spec.seed = 9;
  spec.result = "/r.json";
  TrialSpec back = TrialSpec::FromJson(spec.ToJson());
  EXPECT_EQ(back.ToJson(), spec.ToJson());
  EXPECT_THROW(TrialSpec::FromJson(nlohmann::json::object()), FormatError);
}

}  // namespace
}  // namespace recforge::ops
