#include "recforge/models/params.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace recforge::models
