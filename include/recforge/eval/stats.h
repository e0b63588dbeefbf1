// The few statistics the evaluator needs, written out so that no external stats
// library is required: percentile bootstrap confidence intervals of means and the
// paired t-test (Student's t CDF through the regularized incomplete beta function).
// All functions are deterministic for a given seed, whatever the thread count.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace recforge::eval {

// I_x(a, b), the regularized incomplete beta function, for a, b > 0 and x in [0, 1]
// (continued fraction, Lentz's method; absolute error below 1e-12 for the a, b of
// t-tests). Out-of-range arguments give NaN.
double RegularizedIncompleteBeta(double a, double b, double x);

// Two-sided p-value of Student's t statistic `t` with `df` > 0 degrees of freedom:
// P(|T| >= |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2). NaN when df <= 0 or t is NaN.
double StudentTTwoSidedPValue(double t, double df);

// Linear-interpolation quantile (numpy's default, "type 7") of `sorted` values
// (ascending) at q in [0, 1]. NaN for an empty input.
double SortedQuantile(std::span<const double> sorted, double q);

// Percentile bootstrap of the means of m columns at once. `rows` holds n rows of m
// values, row-major (rows[i * m + j]). Each of `samples` resamples draws n row indices
// uniformly with replacement (resample b uses its own stream DeriveSeed(seed, b), so
// the result does not depend on `threads`) and takes every column's mean over them;
// the interval of column j is the (alpha/2, 1 - alpha/2) quantiles of its resampled
// means. Returns m intervals; all {NaN, NaN} when n == 0 or samples <= 0.
// Cost O(samples * n * m) time on `threads` threads, O(samples * m) memory.
std::vector<std::pair<double, double>> BootstrapMeanIntervals(std::span<const double> rows,
                                                              std::size_t n, std::size_t m,
                                                              int samples, std::uint64_t seed,
                                                              int threads, double alpha = 0.05);

// Paired t-test of differences d_i (H0: mean 0). Two-sided p-value with n - 1 degrees
// of freedom. Degenerate cases: n < 2 gives p = 1 (no evidence); zero variance gives
// p = 1 when the mean difference is 0 and p = 0 otherwise.
struct TTestResult {
  double mean = 0;
  double t = 0;
  double df = 0;
  double p_value = 1;
};
TTestResult PairedTTest(std::span<const double> differences);

}  // namespace recforge::eval
