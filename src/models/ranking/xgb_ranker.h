// A thin owner of one XGBoost booster trained with LambdaMART (objective rank:ndcg)
// through XGBoost's C API (Debian libxgboost-dev 1.7). two-stage's second stage.
//
// Rows are dense float32 feature vectors (NaN = missing, routed by XGBoost's learned
// default direction); a "group" is one user's candidate list. Training is deterministic
// for a fixed seed and thread count (tree_method=hist, XGBoost's seed/nthread params).
//
// Thread-safety: Predict is const and may be called concurrently (it uses XGBoost's
// in-place prediction, whose result buffer is thread-local); after Train / Load the
// booster predicts with one thread (callers parallelise over users). Train / Load need
// exclusive access.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace recforge::models {

struct RankerOptions {
  int trees = 300;            // boosting rounds
  double eta = 0.05;          // learning rate
  int max_depth = 6;
  double min_child_weight = 1;
  double subsample = 1;
  double colsample = 1;       // colsample_bytree
  double reg_lambda = 1;      // L2 on leaf weights
  std::uint64_t seed = 42;
  int threads = 1;
};

// Importance of one feature (XGBoost's "gain" = mean gain of its splits, "total_gain"
// = their sum, "weight" = number of splits); features never split on are listed with 0.
struct FeatureImportance {
  std::string name;
  double gain = 0;
  double total_gain = 0;
  double splits = 0;
};

class XgbRanker {
 public:
  XgbRanker() = default;
  ~XgbRanker();
  XgbRanker(const XgbRanker&) = delete;
  XgbRanker& operator=(const XgbRanker&) = delete;

  bool trained() const { return booster_ != nullptr; }

  // Trains on `n_rows` rows of `n_features` (row-major), labels in {0, 1} and groups
  // (consecutive row counts, one per query, summing to n_rows). Throws Error with
  // XGBoost's message on failure.
  void Train(std::span<const float> features, std::size_t n_features, std::span<const float> labels,
             std::span<const std::uint32_t> groups, const RankerOptions& options);

  // Margins of `n_rows` rows of n_features() into out[0, n_rows).
  void Predict(const float* features, std::size_t n_rows, float* out) const;

  // Importance per feature, in feature order; `names` has n_features() entries.
  std::vector<FeatureImportance> Importance(const std::vector<std::string>& names) const;

  std::size_t n_features() const { return n_features_; }

  // The booster in XGBoost's UBJSON model format (XGBoosterSaveModelToBuffer).
  std::string Serialize() const;
  // Restores a booster written by Serialize; `source` names the file in errors.
  void Deserialize(const std::string& bytes, std::size_t n_features, const std::string& source);

 private:
  void Reset();
  void* booster_ = nullptr;  // BoosterHandle
  std::size_t n_features_ = 0;
};

}  // namespace recforge::models
