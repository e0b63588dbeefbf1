#include "recforge/models/params.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "recforge/core/error.h"
#include "recforge/models/recommender.h"
#include "recforge/models/registry.h"

namespace recforge::models {
namespace {

std::vector<ParamField> Fields() {
  return {IntParam("factors", 64, 1, 4096, "latent dimension", {"rank", "k"}),
          FloatParam("reg", 0.01, 0, 1e6, "L2 regularisation", {"lambda"}),
          BoolParam("bias", true, "use biases"),
          ChoiceParam("solver", "cg", {"cg", "cholesky"}, "linear solver")};
}

TEST(Params, ParseFillsDefaultsAndCanonicalises) {
  auto values = ParseParams("ials", Fields(), "rank=32,lambda=0.050");
  EXPECT_EQ(values.Int("factors"), 32);
  EXPECT_DOUBLE_EQ(values.Float("reg"), 0.05);
  EXPECT_TRUE(values.Bool("bias"));
  EXPECT_EQ(values.Choice("solver"), "cg");
  EXPECT_EQ(values.CanonicalSpec(), "ials:bias=true,factors=32,reg=0.05,solver=cg");
  EXPECT_EQ(ParseParams("ials", Fields(), "bias=true,factors=32,reg=0.05,solver=cg").CanonicalSpec(),
            values.CanonicalSpec());
}

TEST(Params, ErrorsNameTheKeyAndListValidOnes) {
  try {
    ParseParams("ials", Fields(), "factorz=3");
    FAIL();
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), "ials: unknown parameter 'factorz' (valid: bias, factors, reg, solver)");
  }
  EXPECT_THROW(ParseParams("ials", Fields(), "factors=0"), ConfigError);      // range
  EXPECT_THROW(ParseParams("ials", Fields(), "factors=2.5"), ConfigError);    // type
  EXPECT_THROW(ParseParams("ials", Fields(), "reg=abc"), ConfigError);
  EXPECT_THROW(ParseParams("ials", Fields(), "solver=lu"), ConfigError);
  EXPECT_THROW(ParseParams("ials", Fields(), "factors=3,rank=4"), ConfigError);  // twice via alias
  EXPECT_THROW(ParseParams("ials", Fields(), "factors"), ConfigError);
}

TEST(Registry, UnknownFamilyListsTheValidOnes) {
  try {
    ParseSpec("nosuch:factors=3");
    FAIL();
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("valid: random, pop"), std::string::npos) << error.what();
  }
  EXPECT_EQ(ParseSpec("pop").CanonicalSpec(), "pop:half_life_days=0");
}

TEST(TopK, TiesGoToTheSmallerIndexAndNegInfIsSkipped) {
  float inf = std::numeric_limits<float>::infinity();
  std::vector<float> scores = {1, 3, 3, -inf, 2, 3, 0};
  RankedItems out;
  TopK(scores.data(), scores.size(), 4, out);
  EXPECT_EQ(out.items, (std::vector<ItemIndex>{1, 2, 5, 4}));
  TopK(scores.data(), scores.size(), 100, out);
  EXPECT_EQ(out.items.size(), 6u);  // -inf excluded
}

// The block-skipping path (long rows): the same answer as a full sort, with ties, NaN,
// -inf and runs of equal scores at the threshold.
TEST(TopK, LongRowsMatchAFullSort) {
  const float inf = std::numeric_limits<float>::infinity();
  std::mt19937 rng(7);
  for (std::size_t n : {15u, 16u, 17u, 100u, 1682u, 50001u}) {
    std::vector<float> scores(n);
    for (auto& s : scores) s = static_cast<float>(rng() % 200) / 10.0f;  // many ties
    for (std::size_t i = 0; i < n; i += 37) scores[i] = -inf;
    for (std::size_t i = 5; i < n; i += 101) scores[i] = std::nanf("");
    for (std::size_t k : {1u, 10u, 64u}) {
      std::vector<ItemIndex> order;
      for (std::size_t i = 0; i < n; ++i) {
        if (!std::isnan(scores[i]) && scores[i] != -inf) order.push_back(static_cast<ItemIndex>(i));
      }
      std::stable_sort(order.begin(), order.end(), [&](ItemIndex a, ItemIndex b) { return scores[a] > scores[b]; });
      order.resize(std::min(order.size(), k));
      RankedItems out;
      TopK(scores.data(), n, k, out);
      EXPECT_EQ(out.items, order) << "n " << n << " k " << k;
    }
  }
}

}  // namespace
}  // namespace recforge::models
