// ncf (NeuMF): the hand-derived backward pass against central finite differences, the
// scoring path (first layer split into user + precomputed item parts) against the
// training forward pass, falling training loss, thread-count independence and the
// shape error. The conformance suite covers the rest (recommend, save/load, spec).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "recforge/core/error.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "../../../../src/models/neural/ncf.h"
#include "../../../../src/models/neural/ncf_network.h"

namespace recforge::models {
namespace {

ncf::Shape TinyShape(bool gmf, bool mlp) {
  ncf::Shape shape;
  shape.use_gmf = gmf;
  shape.use_mlp = mlp;
  shape.gmf_factors = gmf ? 3 : 0;
  shape.mlp_factors = mlp ? 4 : 0;
  if (mlp) shape.hidden = {4, 2};
  return shape;
}

// L = sum_r c_r s_r for fixed weights c (any loss enters Backward through dL/ds).
double Objective(const ncf::Parameters& params, const std::vector<UserIndex>& users,
                 const std::vector<ItemIndex>& items, const std::vector<float>& weights,
                 float dropout) {
  ncf::Workspace ws;
  Rng rng(99);  // the same dropout masks on every call
  ncf::Forward(params, users, items, dropout, dropout > 0 ? &rng : nullptr, ws);
  double value = 0;
  for (std::size_t r = 0; r < users.size(); ++r) value += weights[r] * ws.logits[static_cast<Eigen::Index>(r)];
  return value;
}

void CheckGradients(bool gmf, bool mlp, float dropout) {
  SCOPED_TRACE(::testing::Message() << "gmf " << gmf << " mlp " << mlp << " dropout " << dropout);
  ncf::Parameters params;
  params.Initialize(TinyShape(gmf, mlp), 3, 4, 0.7f, 11, 1);
  Rng rng(5);
  for (float& w : params.dense) w += static_cast<float>(rng.Uniform() - 0.5) * 0.4f;  // non-zero biases
  // Repeated users and items: the per-row gradients of a table row add up.
  const std::vector<UserIndex> users = {0, 1, 2, 0, 1, 0};
  const std::vector<ItemIndex> items = {0, 1, 2, 3, 0, 2};
  const std::vector<float> weights = {0.7f, -1.2f, 0.4f, 1.1f, -0.3f, 0.9f};
  const std::size_t rows = users.size();
  const std::size_t f = params.shape.GmfWidth();
  const std::size_t m = params.shape.use_mlp ? params.shape.mlp_factors : 0;

  ncf::Workspace ws;
  Rng mask_rng(99);
  ncf::Forward(params, users, items, dropout, dropout > 0 ? &mask_rng : nullptr, ws);
  std::vector<float> dense_grad(params.layout.size, 0.0f);
  std::vector<float> du_g(rows * f), di_g(rows * f), du_m(rows * m), di_m(rows * m);
  ncf::Backward(params, users, items, weights.data(), ws, dense_grad.data(), du_g.data(),
                di_g.data(), du_m.data(), di_m.data());

  const double h = 1e-3;  // the objective is piecewise linear in each single weight: exact away from kinks
  auto numeric = [&](float& value) {
    const float saved = value;
    value = static_cast<float>(saved + h);
    const double up = Objective(params, users, items, weights, dropout);
    value = static_cast<float>(saved - h);
    const double down = Objective(params, users, items, weights, dropout);
    value = saved;
    return (up - down) / (2 * h);
  };
  auto expect_close = [](double analytic, double finite, const std::string& what) {
    EXPECT_NEAR(analytic, finite, 2e-3 + 2e-2 * std::abs(finite)) << what;
  };
  for (std::size_t k = 0; k < params.dense.size(); ++k) {
    expect_close(dense_grad[k], numeric(params.dense[k]), "dense " + std::to_string(k));
  }
  auto check_table = [&](std::vector<float>& table, std::size_t width, const std::vector<float>& row_grads,
                         const auto& keys, const std::string& name) {
    for (std::size_t row = 0; row * width < table.size(); ++row) {
      for (std::size_t c = 0; c < width; ++c) {
        double analytic = 0;
        for (std::size_t r = 0; r < rows; ++r) {
          if (keys[r] == row) analytic += row_grads[r * width + c];
        }
        expect_close(analytic, numeric(table[row * width + c]),
                     name + " row " + std::to_string(row) + " col " + std::to_string(c));
      }
    }
  };
  if (f > 0) {
    check_table(params.user_gmf, f, du_g, users, "user_gmf");
    check_table(params.item_gmf, f, di_g, items, "item_gmf");
  }
  if (m > 0) {
    check_table(params.user_mlp, m, du_m, users, "user_mlp");
    check_table(params.item_mlp, m, di_m, items, "item_mlp");
  }
}

TEST(Ncf, BackwardMatchesFiniteDifferences) {
  CheckGradients(true, true, 0.0f);
  CheckGradients(true, false, 0.0f);
  CheckGradients(false, true, 0.0f);
  CheckGradients(true, true, 0.3f);  // fixed masks: dropout's scaling is in the gradient
}

class NcfPlanted : public ::testing::Test {
 protected:
  void SetUp() override {
    prepared_ = recforge::testing::PlantedCheckerboard();
    data_ = TrainingData::FromPrepared(prepared_, 2);
    ctx_.threads = 2;
    ctx_.seed = 3;
  }
  std::vector<double> FitLosses(Recommender& model, const Context& ctx) {
    std::vector<double> losses;
    model.Fit(data_, ctx, [&](const Recommender&, EpochReport& report) {
      EXPECT_TRUE(report.has_loss);
      losses.push_back(report.loss);
    });
    return losses;
  }
  data::PreparedDataset prepared_;
  TrainingData data_;
  Context ctx_;
};

TEST_F(NcfPlanted, TrainingLossFallsForBothLosses) {
  for (const char* spec : {"ncf:factors=8,mlp_factors=8,layers=2,epochs=15,lr=0.01,batch_size=128,negatives=4,dropout=0",
                           "ncf:factors=8,mlp_factors=8,layers=2,epochs=15,lr=0.01,batch_size=128,negatives=4,dropout=0,loss=bpr",
                           "ncf:model=mlp,mlp_factors=8,layers=3,epochs=15,lr=0.01,dropout=0.2"}) {
    auto model = CreateModel(spec);
    Context one = ctx_;  // one thread: tiny batches are cheaper than their barriers
    one.threads = 1;
    std::vector<double> losses = FitLosses(*model, one);
    ASSERT_EQ(losses.size(), 15u) << spec;
    EXPECT_LT(losses.back(), 0.6 * losses.front()) << spec;
  }
}

TEST_F(NcfPlanted, ScoringPathMatchesTheTrainingForwardPass) {
  auto model = CreateModel("ncf:factors=8,mlp_factors=16,layers=3,epochs=3,lr=0.01,negatives=4");
  model->Fit(data_, ctx_);
  const auto& ncf_model = dynamic_cast<const NcfModel&>(*model);
  const std::size_t n = data_.n_items;
  std::vector<UserIndex> users = {0, 5, 77};
  std::vector<float> scores(users.size() * n);
  model->ScoreUsers(users, scores.data());
  for (std::size_t row = 0; row < users.size(); ++row) {
    std::vector<UserIndex> pair_users(n, users[row]);
    std::vector<ItemIndex> pair_items(n);
    for (std::size_t i = 0; i < n; ++i) pair_items[i] = static_cast<ItemIndex>(i);
    ncf::Workspace ws;
    ncf::Forward(ncf_model.network(), pair_users, pair_items, 0.0f, nullptr, ws);
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(scores[row * n + i], ws.logits[static_cast<Eigen::Index>(i)], 1e-4)
          << "user " << users[row] << " item " << i;
    }
  }
}

TEST_F(NcfPlanted, SameModelForAnyThreadCount) {
  // Big enough a network that batches run on 2 threads (small ones run on one).
  const std::string spec = "ncf:factors=8,mlp_factors=32,layers=3,epochs=2,lr=0.01,batch_size=200,dropout=0.1";
  Context one = ctx_;
  one.threads = 1;
  auto a = CreateModel(spec);
  auto b = CreateModel(spec);
  a->Fit(data_, one);
  b->Fit(data_, ctx_);
  std::vector<UserIndex> users = {0, 1, 2, 50, 119};
  std::vector<float> sa(users.size() * data_.n_items), sb(sa.size());
  a->ScoreUsers(users, sa.data());
  b->ScoreUsers(users, sb.data());
  EXPECT_EQ(sa, sb);
}

TEST(Ncf, TooManyLayersForTheEmbeddingIsAConfigError) {
  try {
    CreateModel("ncf:mlp_factors=2,layers=3");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("mlp_factors=2 is too small for layers=3"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace recforge::models
