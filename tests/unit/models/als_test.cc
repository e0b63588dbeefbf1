// The ALS group (ials, als, svd) and its solvers: monotone objectives, CG against
// Cholesky, the tiled CG against the per-row CG, NNLS against an exhaustive oracle,
// fold-in against the training vectors, non-negativity, Spark's cold-start NaNs and
// the SVD of a planted low-rank matrix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../../../src/models/factor/factor_model.h"
#include "../../../src/models/factor/linear_solvers.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

using recforge::testing::PlantedCheckerboard;
using recforge::testing::PlantedOptions;

Context TestContext(int threads = 2, std::uint64_t seed = 7) {
  Context ctx;
  ctx.threads = threads;
  ctx.seed = seed;
  return ctx;
}

// Fits `spec` and returns the model together with the losses the callback saw.
std::unique_ptr<Recommender> FitCollecting(const std::string& spec, const TrainingData& data,
                                           const Context& ctx, std::vector<double>* losses) {
  auto model = CreateModel(spec);
  model->Fit(data, ctx, [&](const Recommender&, EpochReport& report) {
    EXPECT_TRUE(report.has_loss) << spec;
    EXPECT_TRUE(std::isfinite(report.loss)) << spec;
    losses->push_back(report.loss);
  });
  return model;
}

void ExpectNonIncreasing(const std::vector<double>& losses, const std::string& spec) {
  ASSERT_GE(losses.size(), 2u) << spec;
  for (std::size_t i = 1; i < losses.size(); ++i) {
    // Float32 solves: allow a rounding-level wobble, never a real increase.
    EXPECT_LE(losses[i], losses[i - 1] * (1.0 + 1e-6)) << spec << " iteration " << i + 1;
  }
  EXPECT_LT(losses.back(), losses.front()) << spec;
}

const FactorModel& AsFactorModel(const Recommender& model) {
  const auto* factor = dynamic_cast<const FactorModel*>(&model);
  EXPECT_NE(factor, nullptr);
  return *factor;
}

// A CSR matrix from dense rows (0 = no entry).
CsrMatrix CsrFromDense(const std::vector<std::vector<float>>& dense, std::size_t n_cols) {
  std::vector<std::uint32_t> rows, cols;
  std::vector<float> values;
  for (std::size_t r = 0; r < dense.size(); ++r) {
    for (std::size_t c = 0; c < n_cols; ++c) {
      if (dense[r][c] != 0.0f) {
        rows.push_back(static_cast<std::uint32_t>(r));
        cols.push_back(static_cast<std::uint32_t>(c));
        values.push_back(dense[r][c]);
      }
    }
  }
  return CsrMatrix::FromCoordinates(dense.size(), n_cols, rows, cols, values, 1);
}

TrainingData FromCsr(CsrMatrix user_items) {
  TrainingData data;
  data.n_users = user_items.n_rows;
  data.n_items = user_items.n_cols;
  data.item_users = user_items.Transpose();
  data.user_items = std::make_shared<const CsrMatrix>(std::move(user_items));
  data.dataset_hash = "als-test";
  return data;
}

std::vector<float> RandomVector(std::size_t n, Rng& rng, float low = -1.0f, float high = 1.0f) {
  std::vector<float> values(n);
  for (auto& value : values) value = low + (high - low) * rng.UniformFloat();
  return values;
}

// ---- Solvers ------------------------------------------------------------------------

class ImplicitSystemTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ImplicitSystemTest, ConjugateGradientConvergesToTheCholeskySolution) {
  const std::size_t k = GetParam();
  Rng rng(11);
  const std::size_t n_fixed = 60;
  std::vector<float> factors = RandomVector(n_fixed * k, rng, -0.5f, 0.5f);
  std::vector<float> gram(k * k);
  linalg::ComputeGramian(factors.data(), n_fixed, k, 1, gram.data());
  std::vector<std::uint32_t> indices = {1, 4, 7, 9, 20, 21, 33, 40, 41, 58};
  std::vector<float> values = {1, 3, 1, 2, 5, 1, 1, 4, 2, 1};
  linalg::Confidence confidence;
  confidence.alpha = 2.0f;
  linalg::SolverScratch scratch;
  scratch.Reserve(k, indices.size());
  confidence.Fill(values, scratch.weights.data(), scratch.targets.data());
  const linalg::ImplicitRowSystem system{.gram = gram.data(),
                                         .reg = 0.1f,
                                         .factors = factors.data(),
                                         .k = k,
                                         .indices = indices,
                                         .weights = scratch.weights.data(),
                                         .targets = scratch.targets.data()};
  std::vector<float> exact(k, 0.0f);
  linalg::SolveImplicitCholesky(system, exact.data(), scratch);
  // In exact arithmetic CG solves a k x k system in k steps; float32 needs a few more.
  std::vector<float> cg = RandomVector(k, rng, 0.0f, 0.01f);  // warm start, as in training
  linalg::SolveImplicitCg(system, static_cast<int>(2 * k), cg.data(), scratch);
  double norm = 0;
  for (float value : exact) norm = std::max<double>(norm, std::fabs(value));
  ASSERT_GT(norm, 0.0);
  for (std::size_t i = 0; i < k; ++i) {
    EXPECT_NEAR(cg[i], exact[i], 2e-3 * norm) << "k=" << k << " i=" << i;
  }

  // Three steps (the default) already lower the row objective a lot from the start.
  std::vector<float> start = RandomVector(k, rng, 0.0f, 0.01f);
  std::vector<float> three = start;
  linalg::SolveImplicitCg(system, 3, three.data(), scratch);
  const double before = linalg::ImplicitRowLoss(gram.data(), 0.1f, factors.data(), k, indices,
                                                values, confidence, start.data(), scratch);
  const double after = linalg::ImplicitRowLoss(gram.data(), 0.1f, factors.data(), k, indices,
                                               values, confidence, three.data(), scratch);
  const double optimum = linalg::ImplicitRowLoss(gram.data(), 0.1f, factors.data(), k, indices,
                                                 values, confidence, exact.data(), scratch);
  EXPECT_LT(after, before);
  EXPECT_GE(after, optimum - 1e-4 * std::fabs(optimum));
}

// 8 and 64 take the unrolled kernels, 12 the generic loop.
INSTANTIATE_TEST_SUITE_P(Factors, ImplicitSystemTest, ::testing::Values(8, 12, 64));

TEST(LinearSolversTest, TiledConjugateGradientIsIdenticalToPerRowConjugateGradient) {
  const std::size_t k = 16;
  const std::size_t n_fixed = 3000;
  Rng rng(5);
  std::vector<float> factors = RandomVector(n_fixed * k, rng, -0.3f, 0.3f);
  std::vector<float> gram(k * k);
  linalg::ComputeGramian(factors.data(), n_fixed, k, 2, gram.data());
  // Rows of very different lengths, up to every fixed row.
  std::vector<std::uint32_t> row_ids, cols;
  std::vector<float> values;
  const std::size_t n_rows = 6;
  for (std::size_t row = 0; row < n_rows; ++row) {
    const double density = row == 0 ? 1.0 : 0.9 / static_cast<double>(row + 1);
    for (std::uint32_t col = 0; col < n_fixed; ++col) {
      if (rng.Uniform() < density) {
        row_ids.push_back(static_cast<std::uint32_t>(row));
        cols.push_back(col);
        values.push_back(1.0f + static_cast<float>(rng.Below(4)));
      }
    }
  }
  const CsrMatrix rows = CsrMatrix::FromCoordinates(n_rows, n_fixed, row_ids, cols, values, 1);
  linalg::Confidence confidence;
  confidence.scaling = linalg::Confidence::Scaling::kLog;
  confidence.alpha = 3.0f;
  const std::vector<float> start = RandomVector(n_rows * k, rng, 0.0f, 0.01f);
  std::vector<float> per_row = start;
  std::vector<float> tiled = start;
  std::vector<float> regs;
  std::vector<std::size_t> ids;
  linalg::SolverScratch scratch;
  scratch.Reserve(k, n_fixed);
  for (std::size_t row = 0; row < n_rows; ++row) {
    regs.push_back(0.05f * static_cast<float>(row + 1));
    ids.push_back(row);
    confidence.Fill(rows.RowValues(row), scratch.weights.data(), scratch.targets.data());
    const linalg::ImplicitRowSystem system{.gram = gram.data(),
                                           .reg = regs.back(),
                                           .factors = factors.data(),
                                           .k = k,
                                           .indices = rows.RowIndices(row),
                                           .weights = scratch.weights.data(),
                                           .targets = scratch.targets.data()};
    linalg::SolveImplicitCg(system, 3, per_row.data() + row * k, scratch);
  }
  linalg::TiledCgScratch tiled_scratch;
  // Tiles of 97 rows: segments of every length, including empty ones.
  linalg::SolveImplicitCgTiled(rows, ids, regs, gram.data(), factors.data(), k, n_fixed, 97,
                               confidence, 3, tiled.data(), tiled_scratch);
  ASSERT_EQ(per_row, tiled);  // bit for bit
}

TEST(LinearSolversTest, RowBlocksCoverEveryRowOnceAndSetLongRowsApart) {
  std::vector<std::vector<float>> dense(50, std::vector<float>(40, 0.0f));
  for (std::size_t r = 0; r < dense.size(); ++r) {
    for (std::size_t c = 0; c < (r % 7 == 0 ? 40 : r % 5); ++c) dense[r][c] = 1.0f;
  }
  const CsrMatrix matrix = CsrFromDense(dense, 40);
  const linalg::RowBlocks blocks(matrix, 4.0, 1.0, 8, 30);
  std::vector<int> seen(dense.size(), 0);
  for (std::size_t position = 0; position < blocks.size(); ++position) {
    auto [first, end] = blocks.Block(position);
    for (std::size_t row = first; row < end; ++row) {
      if (!blocks.IsLong(matrix.RowLength(row))) ++seen[row];
    }
  }
  for (std::size_t row : blocks.long_rows()) ++seen[row];
  for (std::size_t row = 0; row < dense.size(); ++row) EXPECT_EQ(seen[row], 1) << row;
  EXPECT_EQ(blocks.long_rows().size(), 8u);  // rows 0, 7, ..., 49
  auto parts = blocks.SplitLongRows(3);
  std::size_t total = 0;
  for (const auto& part : parts) {
    total += part.size();
    EXPECT_TRUE(std::is_sorted(part.begin(), part.end()));
  }
  EXPECT_EQ(total, 8u);
}

TEST(LinearSolversTest, GramianDoesNotDependOnTheThreadCount) {
  const std::size_t k = 8;
  const std::size_t n = 40000;  // several chunks
  Rng rng(3);
  std::vector<float> factors = RandomVector(n * k, rng);
  std::vector<float> one(k * k), four(k * k);
  linalg::ComputeGramian(factors.data(), n, k, 1, one.data());
  linalg::ComputeGramian(factors.data(), n, k, 4, four.data());
  EXPECT_EQ(one, four);
  double direct = 0;
  for (std::size_t row = 0; row < n; ++row) {
    direct += double{factors[row * k + 2]} * factors[row * k + 5];
  }
  EXPECT_NEAR(one[2 * k + 5], direct, 1e-3 * std::fabs(direct) + 1e-2);
  EXPECT_EQ(one[2 * k + 5], one[5 * k + 2]);
}

TEST(LinearSolversTest, NnlsMatchesTheExhaustiveActiveSetOracle) {
  const std::size_t k = 4;
  Rng rng(9);
  linalg::SolverScratch scratch;
  scratch.Reserve(k, 1);
  for (int trial = 0; trial < 20; ++trial) {
    // A = M^T M + 0.1 I (positive definite), b random with mixed signs.
    std::vector<float> m = RandomVector(6 * k, rng);
    std::vector<float> a(k * k, 0.0f);
    for (std::size_t i = 0; i < k; ++i) {
      for (std::size_t j = 0; j < k; ++j) {
        for (std::size_t r = 0; r < 6; ++r) a[i * k + j] += m[r * k + i] * m[r * k + j];
      }
      a[i * k + i] += 0.1f;
    }
    std::vector<float> b = RandomVector(k, rng);
    std::vector<float> x(k, 0.5f);
    linalg::SolveNnls(a.data(), b.data(), k, x.data(), scratch, 1000, 1e-7f);
    // Oracle: the best feasible unconstrained solution over every support set.
    auto objective = [&](const std::vector<double>& v) {
      double value = 0;
      for (std::size_t i = 0; i < k; ++i) {
        value -= b[i] * v[i];
        for (std::size_t j = 0; j < k; ++j) value += 0.5 * a[i * k + j] * v[i] * v[j];
      }
      return value;
    };
    double best = 0;  // x = 0 is feasible
    for (unsigned mask = 1; mask < (1u << k); ++mask) {
      std::vector<std::size_t> support;
      for (std::size_t i = 0; i < k; ++i) {
        if (mask & (1u << i)) support.push_back(i);
      }
      const std::size_t s = support.size();
      std::vector<float> sub(s * s), rhs(s);
      for (std::size_t i = 0; i < s; ++i) {
        rhs[i] = b[support[i]];
        for (std::size_t j = 0; j < s; ++j) sub[i * s + j] = a[support[i] * k + support[j]];
      }
      linalg::SolverScratch small;
      small.Reserve(s, 1);
      ASSERT_TRUE(linalg::CholeskySolveInPlace(sub.data(), s, rhs.data(), small));
      if (std::any_of(rhs.begin(), rhs.end(), [](float value) { return value < 0; })) continue;
      std::vector<double> candidate(k, 0.0);
      for (std::size_t i = 0; i < s; ++i) candidate[support[i]] = rhs[i];
      best = std::min(best, objective(candidate));
    }
    for (float value : x) EXPECT_GE(value, 0.0f);
    const std::vector<double> solution(x.begin(), x.end());
    EXPECT_NEAR(objective(solution), best, 1e-4 * (1.0 + std::fabs(best))) << "trial " << trial;
  }
}

TEST(LinearSolversTest, CholeskyRecoversFromASingularSystem) {
  // Rank one: no exact Cholesky; the jitter retry still returns a finite solution.
  std::vector<float> a = {1, 1, 1, 1};
  std::vector<float> x = {2, 2};
  linalg::SolverScratch scratch;
  scratch.Reserve(2, 1);
  EXPECT_TRUE(linalg::CholeskySolveInPlace(a.data(), 2, x.data(), scratch));
  EXPECT_TRUE(std::isfinite(x[0]) && std::isfinite(x[1]));
  EXPECT_NEAR(x[0] + x[1], 2.0f, 1e-2f);
}

// ---- Models on the planted checkerboard ----------------------------------------------

class AlsGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prepared_ = PlantedCheckerboard(PlantedOptions{});
    data_ = TrainingData::FromPrepared(prepared_, 2);
  }
  data::PreparedDataset prepared_;
  TrainingData data_;
};

TEST_F(AlsGroupTest, ObjectivesDecreaseMonotonically) {
  for (const std::string spec :
       {"ials:factors=8,iters=8", "ials:factors=8,iters=8,reg_exponent=0,alpha=5,scaling=log",
        "ials:factors=8,iters=6,solver=cholesky", "ials:factors=12,iters=6,cg_steps=1,binary=true",
        "als:rank=6,max_iter=8", "als:rank=6,max_iter=8,nonnegative=true",
        "als:rank=6,max_iter=6,implicit_prefs=true,alpha=3"}) {
    std::vector<double> losses;
    FitCollecting(spec, data_, TestContext(), &losses);
    ExpectNonIncreasing(losses, spec);
  }
}

TEST_F(AlsGroupTest, IalsConjugateGradientMatchesTheCholeskySolverWhenConverged) {
  auto cg = CreateModel("ials:factors=8,iters=6,cg_steps=24");
  auto exact = CreateModel("ials:factors=8,iters=6,solver=cholesky");
  cg->Fit(data_, TestContext());
  exact->Fit(data_, TestContext());
  const auto& a = AsFactorModel(*cg).user_factors();
  const auto& b = AsFactorModel(*exact).user_factors();
  ASSERT_EQ(a.size(), b.size());
  double largest = 0;
  for (float value : b) largest = std::max<double>(largest, std::fabs(value));
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-2 * largest) << i;
}

TEST_F(AlsGroupTest, FoldInReproducesTheTrainingUsersScores) {
  // ials with the exact solver and svd fold in exactly; default ials (3 CG steps per
  // iteration, warm-started) and als come close.
  const std::vector<std::pair<std::string, double>> cases = {
      {"ials:factors=8,iters=10,solver=cholesky", 1e-3},
      {"svd:factors=6", 1e-3},
      {"ials:factors=8,iters=15", 5e-2},
      {"als:rank=6,max_iter=10", 1e-3},
      {"als:rank=6,max_iter=10,nonnegative=true", 2e-2}};
  for (const auto& [spec, tolerance] : cases) {
    auto model = CreateModel(spec);
    model->Fit(data_, TestContext());
    const std::size_t n = model->n_items();
    std::vector<float> trained(n), folded(n);
    for (UserIndex user : {0u, 31u, 77u}) {
      model->ScoreUsers(std::span<const UserIndex>(&user, 1), trained.data());
      ASSERT_TRUE(model->ScoreHistory(data_.user_items->RowIndices(user),
                                      data_.user_items->RowValues(user), folded.data()))
          << spec;
      double largest = 0;
      for (float value : trained) largest = std::max<double>(largest, std::fabs(value));
      for (std::size_t item = 0; item < n; ++item) {
        EXPECT_NEAR(folded[item], trained[item], tolerance * largest)
            << spec << " user " << user << " item " << item;
      }
    }
  }
}

TEST_F(AlsGroupTest, NonnegativeAlsHasNoNegativeFactors) {
  for (const std::string spec : {"als:rank=6,max_iter=6,nonnegative=true",
                                 "als:rank=6,max_iter=4,nonnegative=true,implicit_prefs=true"}) {
    auto model = CreateModel(spec);
    model->Fit(data_, TestContext());
    const FactorModel& factors = AsFactorModel(*model);
    for (float value : factors.user_factors()) ASSERT_GE(value, 0.0f) << spec;
    for (float value : factors.item_factors()) ASSERT_GE(value, 0.0f) << spec;
    // Not trivially zero.
    EXPECT_GT(*std::max_element(factors.item_factors().begin(), factors.item_factors().end()),
              0.0f);
  }
}

TEST_F(AlsGroupTest, AlsPredictsNanForColdUsersAndItemsUnderBothStrategies) {
  for (const std::string strategy : {"nan", "drop"}) {
    auto model = CreateModel("als:rank=4,max_iter=3,coldStartStrategy=" + strategy);
    EXPECT_EQ(model->params().Choice("cold_start_strategy"), strategy);
    model->Fit(data_, TestContext());
    EXPECT_TRUE(model->PredictsRatings());
    const UserIndex empty_user = static_cast<UserIndex>(data_.n_users - 1);  // no training rows
    std::vector<UserIndex> users = {0, empty_user, static_cast<UserIndex>(data_.n_users + 3), 0};
    std::vector<ItemIndex> items = {data_.user_items->RowIndices(0)[0], 0, 0,
                                    static_cast<ItemIndex>(data_.n_items + 1)};
    std::vector<float> out(users.size());
    model->PredictPairs(users, items, out.data());
    EXPECT_TRUE(std::isfinite(out[0]));
    EXPECT_GT(out[0], 2.0f);  // a training rating of 4 or 5, fitted
    EXPECT_TRUE(std::isnan(out[1]));
    EXPECT_TRUE(std::isnan(out[2]));
    EXPECT_TRUE(std::isnan(out[3]));
  }
}

TEST_F(AlsGroupTest, AlsFitsTheTrainingRatings) {
  auto model = CreateModel("als:rank=8,max_iter=15,reg_param=0.01");
  std::vector<double> rmse;
  model->Fit(data_, TestContext(), [&](const Recommender&, EpochReport& report) {
    rmse.push_back(report.metrics.at("train_rmse"));
  });
  ASSERT_FALSE(rmse.empty());
  EXPECT_LT(rmse.back(), 0.35);  // ratings are 4 or 5 in-block
}

TEST_F(AlsGroupTest, SameSeedGivesTheSameModelForAnyThreadCount) {
  for (const std::string spec :
       {"ials:factors=8,iters=3", "als:rank=4,max_iter=3", "svd:factors=4"}) {
    auto one = CreateModel(spec);
    auto four = CreateModel(spec);
    one->Fit(data_, TestContext(1));
    four->Fit(data_, TestContext(4));
    EXPECT_EQ(AsFactorModel(*one).user_factors().size(),
              AsFactorModel(*four).user_factors().size());
    EXPECT_TRUE(std::equal(AsFactorModel(*one).user_factors().begin(),
                           AsFactorModel(*one).user_factors().end(),
                           AsFactorModel(*four).user_factors().begin()))
        << spec;
    EXPECT_TRUE(std::equal(AsFactorModel(*one).item_factors().begin(),
                           AsFactorModel(*one).item_factors().end(),
                           AsFactorModel(*four).item_factors().begin()))
        << spec;
  }
}

TEST_F(AlsGroupTest, SimilarItemsAreCosineNeighboursFromTheSameBlock) {
  auto model = CreateModel("ials:factors=8,iters=10");
  model->Fit(data_, TestContext());
  PlantedOptions options;
  for (ItemIndex item : {0u, 13u, 40u}) {
    RankedItems similar = model->SimilarItems(item, 5);
    ASSERT_EQ(similar.items.size(), 5u);
    for (std::size_t r = 0; r < similar.items.size(); ++r) {
      EXPECT_NE(similar.items[r], item);
      EXPECT_EQ(recforge::testing::PlantedItemBlock(options, similar.items[r]),
                recforge::testing::PlantedItemBlock(options, item));
      EXPECT_LE(similar.scores[r], 1.0f + 1e-5f);
    }
  }
  EXPECT_TRUE(model->SimilarItems(static_cast<ItemIndex>(model->n_items() + 2), 5).items.empty());
}

TEST_F(AlsGroupTest, UnknownUsersScoreWithAZeroVector) {
  auto model = CreateModel("ials:factors=8,iters=3");
  model->Fit(data_, TestContext());
  const UserIndex unknown = static_cast<UserIndex>(model->n_users() + 10);
  std::vector<float> scores(model->n_items(), 1.0f);
  model->ScoreUsers(std::span<const UserIndex>(&unknown, 1), scores.data());
  for (float score : scores) EXPECT_EQ(score, 0.0f);
  // The empty user (no training rows) too.
  const UserIndex empty_user = static_cast<UserIndex>(model->n_users() - 1);
  model->ScoreUsers(std::span<const UserIndex>(&empty_user, 1), scores.data());
  for (float score : scores) EXPECT_EQ(score, 0.0f);
}

TEST_F(AlsGroupTest, SvdModelFileRoundTripsTheCentring) {
  auto model = CreateModel("svd:factors=4,center=global");
  model->Fit(data_, TestContext());
  recforge::testing::TempDir dir;
  SaveModel(*model, dir / "svd.bin");
  auto loaded = LoadModel(dir / "svd.bin");
  std::vector<UserIndex> users = {1, 2};
  std::vector<ItemIndex> items = {3, 50};
  std::vector<float> a(2), b(2);
  model->PredictPairs(users, items, a.data());
  loaded->PredictPairs(users, items, b.data());
  EXPECT_EQ(a, b);
}

TEST(AlsSpecTest, AliasesAndInvalidValuesAreReported) {
  EXPECT_EQ(ParseSpec("als:regParam=0.2,maxIter=3,coldStartStrategy=drop").CanonicalSpec(),
            ParseSpec("als:reg_param=0.2,max_iter=3,cold_start_strategy=drop").CanonicalSpec());
  EXPECT_EQ(ParseSpec("ials:rank=8,regularization=2").Int("factors"), 8);
  try {
    ParseSpec("ials:solver=lu");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("cholesky"), std::string::npos) << error.what();
  }
  EXPECT_THROW(ParseSpec("als:coldStartStrategy=skip"), ConfigError);
  EXPECT_THROW(ParseSpec("svd:center=median"), ConfigError);
  EXPECT_THROW(ParseSpec("ials:factors=0"), ConfigError);
}

// ---- Long rows (the tiled CG path) ---------------------------------------------------

TEST(IalsLongRowsTest, PopularItemsTakeTheTiledPathAndTrainingStaysMonotone) {
  // Item 0 is in every one of 1500 users' histories: with k = 64 its factor rows fill
  // 384 KB, beyond the 256 KB long-row limit, so the item half solves it tiled.
  const std::size_t n_users = 1500;
  const std::size_t n_items = 30;
  Rng rng(17);
  std::vector<std::vector<float>> dense(n_users, std::vector<float>(n_items, 0.0f));
  for (std::size_t user = 0; user < n_users; ++user) {
    dense[user][0] = 1.0f + static_cast<float>(rng.Below(3));
    for (std::size_t item = 1; item < n_items; ++item) {
      if (rng.Uniform() < 0.15) dense[user][item] = 1.0f;
    }
  }
  const TrainingData data = FromCsr(CsrFromDense(dense, n_items));
  std::vector<double> losses;
  auto model = FitCollecting("ials:factors=64,iters=4", data, TestContext(2, 3), &losses);
  ExpectNonIncreasing(losses, "ials long rows");
  // The tiled path is exact CG too: thread counts agree bit for bit.
  auto single = CreateModel("ials:factors=64,iters=4");
  single->Fit(data, TestContext(1, 3));
  EXPECT_TRUE(std::equal(AsFactorModel(*model).item_factors().begin(),
                         AsFactorModel(*model).item_factors().end(),
                         AsFactorModel(*single).item_factors().begin()));
}

// ---- SVD ------------------------------------------------------------------------------

TEST(SvdTest, ReconstructsAPlantedLowRankMatrix) {
  // A fully observed 60 x 40 rating matrix of rank 3 (plus an offset of 3): the
  // residual after any centring has rank <= 6, so 8 factors reproduce it.
  const std::size_t n_users = 60;
  const std::size_t n_items = 40;
  Rng rng(21);
  const std::vector<float> left = RandomVector(n_users * 3, rng, -0.5f, 0.5f);
  const std::vector<float> right = RandomVector(n_items * 3, rng, -0.5f, 0.5f);
  std::vector<std::vector<float>> dense(n_users, std::vector<float>(n_items));
  for (std::size_t u = 0; u < n_users; ++u) {
    for (std::size_t i = 0; i < n_items; ++i) {
      float value = 3.0f;
      for (std::size_t c = 0; c < 3; ++c) value += left[u * 3 + c] * right[i * 3 + c];
      dense[u][i] = value;
    }
  }
  const TrainingData data = FromCsr(CsrFromDense(dense, n_items));
  for (const std::string spec :
       {"svd:factors=8,center=bias", "svd:factors=8,center=none", "svd:factors=8,center=global"}) {
    auto model = CreateModel(spec);
    model->Fit(data, TestContext());
    std::vector<UserIndex> users;
    std::vector<ItemIndex> items;
    for (std::size_t u = 0; u < n_users; ++u) {
      for (std::size_t i = 0; i < n_items; ++i) {
        users.push_back(static_cast<UserIndex>(u));
        items.push_back(static_cast<ItemIndex>(i));
      }
    }
    std::vector<float> predicted(users.size());
    model->PredictPairs(users, items, predicted.data());
    for (std::size_t pair = 0; pair < users.size(); ++pair) {
      ASSERT_NEAR(predicted[pair], dense[users[pair]][items[pair]], 2e-3)
          << spec << " pair " << pair;
    }
  }
}

// RecommendBatch skips items by a norm bound; it must return the dense lists
// (ScoreUsers + mask + TopK), with and without biases, seen items, exclusions, and for
// an index past the known users: the same ranked scores up to float rounding.
TEST(FactorRecommendTest, NormPrunedTopKEqualsDenseTopK) {
  PlantedOptions planted;
  planted.blocks = 6;
  planted.users_per_block = 25;
  planted.items_per_block = 500;  // 3,000 items: above the pruning threshold
  planted.density = 0.02;
  data::PreparedDataset prepared = PlantedCheckerboard(planted);
  TrainingData data = TrainingData::FromPrepared(prepared, 2);
  for (const char* spec : {"ials:factors=16,iters=3", "mf:factors=8,epochs=5", "bpr:factors=8,epochs=5"}) {
    auto model = CreateModel(spec);
    model->Fit(data, TestContext());
    std::vector<UserIndex> users;
    for (std::size_t u = 0; u <= data.n_users; ++u) users.push_back(static_cast<UserIndex>(u));
    std::vector<ItemIndex> excluded = {0, 7, 2999, 1500};
    for (bool exclude_seen : {true, false}) {
      RecommendOptions options;
      options.k = 20;
      options.exclude_seen = exclude_seen;
      options.excluded = excluded;
      std::vector<RankedItems> fast = model->Recommend(users, options, 2);
      std::vector<float> row(data.n_items);
      for (std::size_t u = 0; u < users.size(); ++u) {
        model->ScoreUsers(std::span<const UserIndex>(&users[u], 1), row.data());
        if (exclude_seen && users[u] < data.n_users) {
          for (ItemIndex item : data.user_items->RowIndices(users[u])) row[item] = -INFINITY;
        }
        for (ItemIndex item : excluded) row[item] = -INFINITY;
        RankedItems dense;
        TopK(row.data(), row.size(), options.k, dense);
        // sgemm tiles differ between the two paths, so scores may differ in the last bit
        // and items whose scores tie to that precision may swap (the planted blocks give
        // many near-identical item vectors); the ranked scores must agree.
        ASSERT_EQ(fast[u].items.size(), dense.items.size()) << spec << " user " << u;
        for (std::size_t j = 0; j < dense.items.size(); ++j) {
          const float tolerance = 1e-5f * (1.0f + std::fabs(dense.scores[j]));
          ASSERT_NEAR(row[fast[u].items[j]], dense.scores[j], tolerance) << spec << " user " << u << " rank " << j;
          ASSERT_NEAR(fast[u].scores[j], dense.scores[j], tolerance) << spec << " user " << u << " rank " << j;
        }
      }
    }
  }
}

}  // namespace
}  // namespace recforge::models
