// A small tracking store with real runs for the dashboard tests: two experiments,
// three runs with params, per-step metric curves, tags, an artifact, lineage, a child
// run and a registered model with an alias. Values are short decimals so tests can
// look for their exact text in JSON and in the rendered page.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "recforge/tracking/store.h"
#include "testlib/testlib.h"

namespace recforge::testing {

struct DashboardStore {
  tracking::TrackingLocation location;
  std::string ials;   // movielens / "ials-64": ndcg@10 0.3125, loss curve over 5 epochs
  std::string als;    // movielens / "als-32":  ndcg@10 0.2468
  std::string other;  // "other" experiment, FAILED
  std::string child;  // child of `ials`
  std::string dataset_hash = "5f1e0c3a9b7d2e4f6a8c0b1d3e5f7a9c";
};

inline const std::vector<double> kIalsLoss = {0.9, 0.7, 0.55, 0.5, 0.4875};
inline const std::vector<double> kIalsValNdcg = {0.1, 0.2, 0.25, 0.28, 0.3};

inline DashboardStore PopulateDashboardStore(const TempDir& dir) {
  DashboardStore out;
  out.location = tracking::TrackingLocation::Resolve((dir.path() / "store").string());
  tracking::Store store(out.location);

  tracking::RunStart start;
  start.experiment = "movielens";
  start.name = "ials-64";
  start.command = "recforge train --dataset ml100k --model ials:factors=64";
  start.tags = {{"stage", "dev"}};
  out.ials = store.StartRun(start).id;
  store.LogParams(out.ials, {{"family", "ials"}, {"factors", "64"}, {"reg", "0.05"}});
  for (std::size_t epoch = 0; epoch < kIalsLoss.size(); ++epoch) {
    store.LogMetric(out.ials, "loss", kIalsLoss[epoch], static_cast<std::int64_t>(epoch));
    store.LogMetric(out.ials, "val_ndcg@10", kIalsValNdcg[epoch], static_cast<std::int64_t>(epoch));
  }
  store.LogMetric(out.ials, "ndcg@10", 0.3125);
  store.LogMetric(out.ials, "recall@10", 0.4375);
  store.SetTags(out.ials, {{"owner", "dashboard-test"}});
  const auto model_file = dir.Write("model.bin", std::string(4096, 'm'));
  store.LogArtifact(out.ials, model_file, "model.bin", "model");
  store.LogLineage(out.ials, "input", "prepared", out.dataset_hash, "/data/ml100k-prepared");
  store.EndRun(out.ials, tracking::RunStatus::kFinished);

  start.name = "als-32";
  start.command = "recforge train --dataset ml100k --model als:factors=32";
  out.als = store.StartRun(start).id;
  store.LogParams(out.als, {{"family", "als"}, {"factors", "32"}, {"reg", "0.05"}});
  for (std::size_t epoch = 0; epoch < 3; ++epoch) {
    store.LogMetric(out.als, "loss", 1.0 - 0.125 * static_cast<double>(epoch), static_cast<std::int64_t>(epoch));
  }
  store.LogMetric(out.als, "ndcg@10", 0.2468);
  store.LogMetric(out.als, "recall@10", 0.375);
  store.LogLineage(out.als, "input", "prepared", out.dataset_hash, "/data/ml100k-prepared");
  store.EndRun(out.als, tracking::RunStatus::kFinished);

  tracking::RunStart child;
  child.experiment = "movielens";
  child.name = "ials-64-fold1";
  child.parent_id = out.ials;
  out.child = store.StartRun(child).id;
  store.LogMetric(out.child, "ndcg@10", 0.3);
  store.EndRun(out.child, tracking::RunStatus::kFinished);

  tracking::RunStart other;
  other.experiment = "other";
  other.name = "pop-baseline";
  out.other = store.StartRun(other).id;
  store.LogParams(out.other, {{"family", "pop"}});
  store.EndRun(out.other, tracking::RunStatus::kFailed, "exit code 1");

  store.RegisterModel("ml100k-ials", out.ials, "first iALS");
  store.SetAlias("ml100k-ials", "production", 1);
  return out;
}

}  // namespace recforge::testing
