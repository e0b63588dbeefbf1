#include "recforge/core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "recforge/core/random.h"

namespace recforge {
namespace {

TEST(ParallelFor, VisitsEveryIndexOnce) {
  for (int threads : {1, 2, 4}) {
    for (Schedule schedule : {Schedule::kStatic, Schedule::kDynamic}) {
      std::vector<std::atomic<int>> hits(1000);
      ParallelFor<int>(0, 1000, threads, [&](int i) { hits[i]++; }, schedule, 7);
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

TEST(ParallelFor, ExceptionInsideTheLoopIsRethrownOnTheCaller) {
  for (int threads : {1, 2}) {
    EXPECT_THROW(ParallelFor<int>(0, 100, threads,
                                  [](int i) {
                                    if (i == 57) throw std::runtime_error("boom");
                                  }),
                 std::runtime_error);
  }
}

TEST(Rng, SameSeedSameStreamAndUniformRange) {
  Rng a(7), b(7), c(8);
  bool differs = false;
  for (int k = 0; k < 100; ++k) {
    auto x = a(), y = b(), z = c();
    EXPECT_EQ(x, y);
    differs |= x != z;
  }
  EXPECT_TRUE(differs);
  Rng r(1);
  std::vector<int> counts(10, 0);
  for (int k = 0; k < 100000; ++k) {
    double u = r.Uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ++counts[r.Below(10)];
  }
  for (int count : counts) EXPECT_NEAR(count, 10000, 500);
  EXPECT_NE(DeriveSeed(1, 0), DeriveSeed(1, 1));
}

}  // namespace
}  // namespace recforge
