// The dense kernels of src/models/kernels.h that have no model-level test of their own:
// GemmNT's few-row path (RowDots, one user's scores against every item) against a
// double-precision reference and against its sgemm path.
#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <vector>

#include "../../../src/models/kernels.h"
#include "recforge/core/random.h"

namespace recforge::models {
namespace {

std::vector<float> Random(std::size_t n, Rng& rng) {
  std::vector<float> out(n);
  for (float& x : out) x = rng.UniformFloat() * 2.0f - 1.0f;
  return out;
}

// C = alpha A B^T + beta C in double.
std::vector<double> Reference(std::size_t m, std::size_t n, std::size_t k, float alpha, const std::vector<float>& a,
                              const std::vector<float>& b, float beta, const std::vector<float>& c) {
  std::vector<double> out(m * n);
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double dot = 0;
      for (std::size_t x = 0; x < k; ++x) dot += static_cast<double>(a[i * k + x]) * b[j * k + x];
      out[i * n + j] = alpha * dot + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c[i * n + j]);
    }
  }
  return out;
}

struct Shape {
  std::size_t m, n, k;
};
void PrintTo(const Shape& s, std::ostream* out) { *out << s.m << "x" << s.k << " by " << s.n << "x" << s.k; }

class GemmNTTest : public ::testing::TestWithParam<Shape> {};

// 8 / 64 / 128 take RowDots' unrolled paths, 12 and 40 its generic loop; n = 1..7 and
// 1001 cover the groups of four and the tail; m = 5 is the sgemm path.
TEST_P(GemmNTTest, MatchesTheReferenceForEveryAlphaAndBeta) {
  const Shape shape = GetParam();
  Rng rng(17 + shape.k);
  const std::vector<float> a = Random(shape.m * shape.k, rng);
  const std::vector<float> b = Random(shape.n * shape.k, rng);
  const std::vector<float> start = Random(shape.m * shape.n, rng);
  for (const auto& [alpha, beta] : std::vector<std::pair<float, float>>{{1.0f, 0.0f}, {-0.5f, 0.0f}, {2.0f, 0.25f}}) {
    std::vector<float> c = start;
    kernels::GemmNT(shape.m, shape.n, shape.k, alpha, a.data(), b.data(), beta, c.data());
    const std::vector<double> want = Reference(shape.m, shape.n, shape.k, alpha, a, b, beta, start);
    const double tolerance = 1e-5 * static_cast<double>(shape.k) * (std::fabs(alpha) + 1.0);
    for (std::size_t i = 0; i < c.size(); ++i) {
      ASSERT_NEAR(c[i], want[i], tolerance) << "entry " << i << ", alpha " << alpha << ", beta " << beta;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmNTTest,
                         ::testing::Values(Shape{1, 1001, 64}, Shape{1, 7, 8}, Shape{2, 5, 128}, Shape{3, 6, 12},
                                           Shape{4, 1001, 40}, Shape{1, 3, 64}, Shape{5, 1001, 64}));

TEST(GemmNT, FewRowPathAgreesWithTheSgemmPath) {
  // The same rows scored alone (RowDots) and inside a 5-row product (sgemm).
  const std::size_t n = 2000, k = 64, m = 5;
  Rng rng(3);
  const std::vector<float> a = Random(m * k, rng);
  const std::vector<float> b = Random(n * k, rng);
  std::vector<float> together(m * n, 0.0f);
  kernels::GemmNT(m, n, k, 1.0f, a.data(), b.data(), 0.0f, together.data());
  for (std::size_t row = 0; row < m; ++row) {
    std::vector<float> alone(n, 0.0f);
    kernels::GemmNT(1, n, k, 1.0f, a.data() + row * k, b.data(), 0.0f, alone.data());
    for (std::size_t j = 0; j < n; ++j) ASSERT_NEAR(alone[j], together[row * n + j], 1e-4) << row << ", " << j;
  }
}

}  // namespace
}  // namespace recforge::models
