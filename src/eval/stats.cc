#include "recforge/eval/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "recforge/core/parallel.h"
#include "recforge/core/random.h"

namespace recforge::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Continued fraction of I_x(a, b) (Numerical Recipes 6.4, modified Lentz). It needs
// O(sqrt(max(a, b))) iterations; t-tests over 10^6 users have a = 5 * 10^5, so the cap
// is generous rather than the textbook 100.
double BetaContinuedFraction(double a, double b, double x) {
  constexpr int kMaxIterations = 100000;
  constexpr double kEpsilon = 1e-16;
  constexpr double kTiny = 1e-300;
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1;
  double d = 1 - qab * x / qap;
  if (std::abs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIterations; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double step = d * c;
    h *= step;
    if (std::abs(step - 1) < kEpsilon) break;
  }
  return h;
}

}  // namespace

double RegularizedIncompleteBeta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !(x >= 0) || !(x <= 1)) return kNaN;
  if (x == 0) return 0;
  if (x == 1) return 1;
  const double log_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double front = std::exp(log_front);
  // The fraction converges fast on this side of the mean; use the symmetry
  // I_x(a, b) = 1 - I_{1-x}(b, a) on the other.
  if (x < (a + 1) / (a + b + 2)) return front * BetaContinuedFraction(a, b, x) / a;
  return 1 - front * BetaContinuedFraction(b, a, 1 - x) / b;
}

double StudentTTwoSidedPValue(double t, double df) {
  if (!(df > 0) || std::isnan(t)) return kNaN;
  if (std::isinf(t)) return 0;
  const double p = RegularizedIncompleteBeta(df / 2, 0.5, df / (df + t * t));
  return std::clamp(p, 0.0, 1.0);
}

double SortedQuantile(std::span<const double> sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double position = std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const std::size_t low = static_cast<std::size_t>(std::floor(position));
  const std::size_t high = std::min(low + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(low);
  return sorted[low] + fraction * (sorted[high] - sorted[low]);
}

std::vector<std::pair<double, double>> BootstrapMeanIntervals(std::span<const double> rows,
                                                              std::size_t n, std::size_t m,
                                                              int samples, std::uint64_t seed,
                                                              int threads, double alpha) {
  std::vector<std::pair<double, double>> intervals(m, {kNaN, kNaN});
  if (n == 0 || m == 0 || samples <= 0 || rows.size() < n * m) return intervals;
  const std::size_t n_samples = static_cast<std::size_t>(samples);
  std::vector<double> means(m * n_samples);  // column-major: means[j * samples + b]
  ParallelFor<std::size_t>(
      0, n_samples, threads,
      [&](std::size_t sample) {
        // One stream per resample: the draw does not depend on which thread runs it.
        Rng rng(DeriveSeed(seed, sample));
        std::vector<double> sums(m, 0.0);
        for (std::size_t draw = 0; draw < n; ++draw) {
          const double* row = rows.data() + rng.Below(n) * m;
          for (std::size_t j = 0; j < m; ++j) sums[j] += row[j];
        }
        for (std::size_t j = 0; j < m; ++j)
          means[j * n_samples + sample] = sums[j] / static_cast<double>(n);
      },
      Schedule::kDynamic, 4);
  for (std::size_t j = 0; j < m; ++j) {
    std::span<double> column(means.data() + j * n_samples, n_samples);
    std::sort(column.begin(), column.end());
    intervals[j] = {SortedQuantile(column, alpha / 2), SortedQuantile(column, 1 - alpha / 2)};
  }
  return intervals;
}

TTestResult PairedTTest(std::span<const double> differences) {
  TTestResult result;
  const std::size_t n = differences.size();
  if (n == 0) return result;
  double sum = 0;
  for (double value : differences) sum += value;
  result.mean = sum / static_cast<double>(n);
  if (n < 2) return result;
  double squares = 0;  // two-pass variance: no cancellation when the mean is large
  for (double value : differences) squares += (value - result.mean) * (value - result.mean);
  const double variance = squares / static_cast<double>(n - 1);
  result.df = static_cast<double>(n - 1);
  if (variance <= 0) {
    result.t =
        result.mean == 0 ? 0 : std::copysign(std::numeric_limits<double>::infinity(), result.mean);
    result.p_value = result.mean == 0 ? 1 : 0;
    return result;
  }
  result.t = result.mean / std::sqrt(variance / static_cast<double>(n));
  result.p_value = StudentTTwoSidedPValue(result.t, result.df);
  return result;
}

}  // namespace recforge::eval
