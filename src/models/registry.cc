// The single table of model families. Adding a family = one row here + its files.
#include "recforge/models/registry.h"

#include <fmt/format.h>

#include "baseline/pop.h"
#include "baseline/random_model.h"
#include "factor/als_families.h"
#include "factor/sgd_families.h"
#include "neighbors/families.h"
#include "embedding/families.h"
#include "neural/families.h"
#include "sequence/families.h"
#include "topic/families.h"
#include "hybrid/families.h"
#include "ranking/families.h"
#include "recforge/core/error.h"

namespace recforge::models {
const std::vector<ModelFamily>& ModelFamilies() {
  static const std::vector<ModelFamily> families = {
      {"random", "Seeded random scores: the floor", "-", false, &RandomModel::Fields, &CreateFamily<RandomModel>, "random"},
      {"pop", "Most popular items (optional time decay)", "-", false, &PopModel::Fields, &CreateFamily<PopModel>, "pop"},
#include "neighbors/families.inc"
#include "factor/als_families.inc"
#include "factor/sgd_families.inc"
#include "embedding/families.inc"
#include "neural/families.inc"
#include "sequence/families.inc"
#include "topic/families.inc"
#include "hybrid/families.inc"
#include "ranking/families.inc"
  };
  return families;
}

const ModelFamily& FindFamily(std::string_view name) {
  for (const auto& family : ModelFamilies()) {
    if (family.name == name) return family;
  }
  std::vector<std::string> names;
  for (const auto& family : ModelFamilies()) names.push_back(family.name);
  throw ConfigError(fmt::format("unknown model family '{}' (valid: {})", name, fmt::join(names, ", ")));
}

ParamValues ParseSpec(std::string_view spec) {
  auto [family_name, rest] = SplitSpec(spec);
  const ModelFamily& family = FindFamily(family_name);
  return ParseParams(family.name, family.fields(), rest);
}

std::unique_ptr<Recommender> CreateModel(std::string_view spec) { return CreateModel(ParseSpec(spec)); }

std::unique_ptr<Recommender> CreateModel(ParamValues params) {
  const ModelFamily& family = FindFamily(params.family());
  return family.create(std::move(params));
}

}  // namespace recforge::models
