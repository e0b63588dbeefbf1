// The single table of model families (STYLE.md §5: explicit, no self-registration).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/models/params.h"
#include "recforge/models/recommender.h"

namespace recforge::models {

struct ModelFamily {
  std::string name;        // spec prefix, e.g. "ials"
  std::string summary;     // one line
  std::string reference;   // the paper / source
  bool rating_model;       // explicit-rating model (judged by RMSE/MAE)
  std::vector<ParamField> (*fields)();
  std::unique_ptr<Recommender> (*create)(ParamValues params);
  std::string quick_spec;  // a small, fast configuration (smoke tests, conformance suite)
};

// Registry rows use this to create a family's model.
template <typename Model>
std::unique_ptr<Recommender> CreateFamily(ParamValues params) {
  return std::make_unique<Model>(std::move(params));
}

// Every family, in documentation order.
const std::vector<ModelFamily>& ModelFamilies();

// Throws ConfigError listing the families when `name` is unknown.
const ModelFamily& FindFamily(std::string_view name);

// Parses "family:key=value,..." (or just "family") into validated params.
ParamValues ParseSpec(std::string_view spec);

// Creates an untrained model from a spec.
std::unique_ptr<Recommender> CreateModel(std::string_view spec);
std::unique_ptr<Recommender> CreateModel(ParamValues params);

}  // namespace recforge::models
