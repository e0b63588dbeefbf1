// `pop`: every user gets the globally most popular items. Popularity is the number of
// training interactions of an item, or, with half_life_days > 0, the sum of
// 0.5^(age / half_life) over its interactions, age measured from the newest training
// interaction (recent popularity).
#pragma once

#include "recforge/models/recommender.h"

namespace recforge::models {

class PopModel final : public Recommender {
 public:
  static std::vector<ParamField> Fields();
  explicit PopModel(ParamValues params) : Recommender(std::move(params)) {}

  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values, float* out) const override;
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

  const std::vector<float>& popularity() const { return popularity_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;

 private:
  std::vector<float> popularity_;
};

}  // namespace recforge::models
