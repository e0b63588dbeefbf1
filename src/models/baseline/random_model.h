// `random`: scores are seeded pseudo-random numbers, a fixed function of (seed, user,
// item), so repeated calls agree and different users get independent rankings.
// The floor every personalised model must beat.
#pragma once

#include "recforge/models/recommender.h"

namespace recforge::models {

class RandomModel final : public Recommender {
 public:
  static std::vector<ParamField> Fields();
  explicit RandomModel(ParamValues params) : Recommender(std::move(params)) {}

  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values, float* out) const override;
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;

 private:
  std::uint64_t seed_ = 0;
};

}  // namespace recforge::models
