#include "xgb_ranker.h"

#include <xgboost/c_api.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "recforge/core/error.h"

namespace recforge::models {
namespace {

// XGBoost's C API returns -1 on failure and keeps the message per thread.
void Check(int status, const char* call) {
  if (status != 0) throw Error(fmt::format("two-stage ranker: {} failed: {}", call, XGBGetLastError()));
}

class DMatrix {
 public:
  DMatrix(const float* rows, std::size_t n_rows, std::size_t n_cols) {
    Check(XGDMatrixCreateFromMat(rows, n_rows, n_cols, std::numeric_limits<float>::quiet_NaN(), &handle_),
          "XGDMatrixCreateFromMat");
  }
  ~DMatrix() { XGDMatrixFree(handle_); }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
  DMatrixHandle get() const { return handle_; }

 private:
  DMatrixHandle handle_ = nullptr;
};

void SetParam(BoosterHandle booster, const char* name, const std::string& value) {
  Check(XGBoosterSetParam(booster, name, value.c_str()), "XGBoosterSetParam");
}

}  // namespace

XgbRanker::~XgbRanker() { Reset(); }

void XgbRanker::Reset() {
  if (booster_ != nullptr) XGBoosterFree(booster_);
  booster_ = nullptr;
  n_features_ = 0;
}

void XgbRanker::Train(std::span<const float> features, std::size_t n_features, std::span<const float> labels,
                      std::span<const std::uint32_t> groups, const RankerOptions& options) {
  Reset();
  const std::size_t n_rows = labels.size();
  if (n_features == 0 || features.size() != n_rows * n_features || n_rows == 0) {
    throw InvalidArgument(fmt::format("two-stage ranker: {} feature values for {} rows of {} features",
                                      features.size(), n_rows, n_features));
  }
  DMatrix train(features.data(), n_rows, n_features);
  Check(XGDMatrixSetFloatInfo(train.get(), "label", labels.data(), n_rows), "XGDMatrixSetFloatInfo(label)");
  Check(XGDMatrixSetUIntInfo(train.get(), "group", groups.data(), groups.size()), "XGDMatrixSetUIntInfo(group)");
  DMatrixHandle handles[1] = {train.get()};
  BoosterHandle booster = nullptr;
  Check(XGBoosterCreate(handles, 1, &booster), "XGBoosterCreate");
  booster_ = booster;
  n_features_ = n_features;
  SetParam(booster, "objective", "rank:ndcg");
  SetParam(booster, "eval_metric", "ndcg@10");
  SetParam(booster, "tree_method", "hist");
  SetParam(booster, "verbosity", "0");
  SetParam(booster, "eta", fmt::format("{}", options.eta));
  SetParam(booster, "max_depth", std::to_string(options.max_depth));
  SetParam(booster, "min_child_weight", fmt::format("{}", options.min_child_weight));
  SetParam(booster, "subsample", fmt::format("{}", options.subsample));
  SetParam(booster, "colsample_bytree", fmt::format("{}", options.colsample));
  SetParam(booster, "lambda", fmt::format("{}", options.reg_lambda));
  // XGBoost's seed is a 32-bit int; fold ours into its positive range.
  SetParam(booster, "seed", std::to_string((options.seed ^ (options.seed >> 31)) & 0x7fffffffULL));
  SetParam(booster, "nthread", std::to_string(options.threads < 1 ? 1 : options.threads));
  for (int iter = 0; iter < options.trees; ++iter) {
    Check(XGBoosterUpdateOneIter(booster, iter, train.get()), "XGBoosterUpdateOneIter");
  }
  // Prediction is called per user from many threads: no nested parallelism.
  SetParam(booster, "nthread", "1");
}

void XgbRanker::Predict(const float* features, std::size_t n_rows, float* out) const {
  if (n_rows == 0) return;
  if (booster_ == nullptr) throw Error("two-stage ranker: predict before training");
  // In-place prediction over a dense array (__array_interface__ JSON, read-only data).
  const std::string array = fmt::format(
      R"({{"data": [{}, true], "shape": [{}, {}], "typestr": "<f4", "version": 3}})",
      reinterpret_cast<std::uintptr_t>(features), n_rows, n_features_);
  static const char* kConfig =
      R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false, "cache_id": 0, "missing": NaN})";
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  Check(XGBoosterPredictFromDense(booster_, array.c_str(), kConfig, nullptr, &shape, &dims, &result),
        "XGBoosterPredictFromDense");
  std::memcpy(out, result, n_rows * sizeof(float));
}

std::vector<FeatureImportance> XgbRanker::Importance(const std::vector<std::string>& names) const {
  std::vector<FeatureImportance> importance(names.size());
  for (std::size_t f = 0; f < names.size(); ++f) importance[f].name = names[f];
  if (booster_ == nullptr) return importance;
  std::string names_json = "[";
  for (std::size_t f = 0; f < names.size(); ++f) names_json += fmt::format("{}\"{}\"", f ? "," : "", names[f]);
  names_json += "]";
  std::map<std::string, std::size_t> index;
  for (std::size_t f = 0; f < names.size(); ++f) index[names[f]] = f;
  for (const char* type : {"gain", "total_gain", "weight"}) {
    const std::string config = fmt::format(R"({{"importance_type": "{}", "feature_names": {}}})", type, names_json);
    bst_ulong n_out = 0, dims = 0;
    const char** out_names = nullptr;
    const bst_ulong* shape = nullptr;
    const float* scores = nullptr;
    Check(XGBoosterFeatureScore(booster_, config.c_str(), &n_out, &out_names, &dims, &shape, &scores),
          "XGBoosterFeatureScore");
    for (bst_ulong k = 0; k < n_out; ++k) {
      auto it = index.find(out_names[k]);
      if (it == index.end()) continue;
      FeatureImportance& entry = importance[it->second];
      if (std::strcmp(type, "gain") == 0) entry.gain = scores[k];
      if (std::strcmp(type, "total_gain") == 0) entry.total_gain = scores[k];
      if (std::strcmp(type, "weight") == 0) entry.splits = scores[k];
    }
  }
  return importance;
}

std::string XgbRanker::Serialize() const {
  if (booster_ == nullptr) return {};
  bst_ulong length = 0;
  const char* bytes = nullptr;
  Check(XGBoosterSaveModelToBuffer(booster_, R"({"format": "ubj"})", &length, &bytes),
        "XGBoosterSaveModelToBuffer");
  return std::string(bytes, length);
}

void XgbRanker::Deserialize(const std::string& bytes, std::size_t n_features, const std::string& source) {
  Reset();
  if (bytes.empty()) return;
  BoosterHandle booster = nullptr;
  Check(XGBoosterCreate(nullptr, 0, &booster), "XGBoosterCreate");
  booster_ = booster;
  if (XGBoosterLoadModelFromBuffer(booster, bytes.data(), bytes.size()) != 0) {
    const std::string why = XGBGetLastError();
    Reset();
    throw FormatError(fmt::format("{}: two-stage ranker booster does not load: {}", source, why));
  }
  n_features_ = n_features;
  SetParam(booster, "nthread", "1");
}

}  // namespace recforge::models
