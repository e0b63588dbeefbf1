#include "factor/factor_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <numeric>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/memory.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {

void FactorModel::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  const std::size_t n = n_items();
  const std::size_t k = factors_;
  const std::size_t known_users = k == 0 ? 0 : user_factors_.size() / k;
  if (users.empty() || n == 0) return;
  if (k > 0 && item_factors_.size() == n * k) {
    std::vector<float> block(users.size() * k, 0.0f);
    for (std::size_t row = 0; row < users.size(); ++row) {
      if (users[row] < known_users) std::copy_n(UserVector(users[row]), k, block.data() + row * k);
    }
    kernels::GemmNT(users.size(), n, k, 1.0f, block.data(), item_factors_.data(), 0.0f, out);
  } else {
    std::fill(out, out + users.size() * n, 0.0f);
  }
  if (global_bias_ == 0.0f && user_bias_.empty() && item_bias_.empty()) return;
  for (std::size_t row = 0; row < users.size(); ++row) {
    float* scores = out + row * n;
    const float offset = global_bias_ + UserBias(users[row]);
    if (item_bias_.empty()) {
      for (std::size_t item = 0; item < n; ++item) scores[item] += offset;
    } else {
      for (std::size_t item = 0; item < n; ++item) scores[item] += offset + item_bias_[item];
    }
  }
}

bool FactorModel::ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values,
                               float* out) const {
  const std::size_t n = n_items();
  const std::size_t k = factors_;
  std::vector<ItemIndex> known_items;
  std::vector<float> known_values;
  known_items.reserve(items.size());
  known_values.reserve(items.size());
  for (std::size_t j = 0; j < items.size(); ++j) {
    if (items[j] >= n) continue;
    known_items.push_back(items[j]);
    known_values.push_back(j < values.size() ? values[j] : 1.0f);  // no values: unit weights
  }
  std::vector<float> vector(k, 0.0f);
  float bias = 0.0f;
  if (!FoldIn(known_items, known_values, vector.data(), &bias)) return false;
  if (k > 0 && n > 0) {
    kernels::GemmNT(1, n, k, 1.0f, vector.data(), item_factors_.data(), 0.0f, out);
  } else {
    std::fill(out, out + n, 0.0f);
  }
  const float offset = global_bias_ + bias;
  for (std::size_t item = 0; item < n; ++item) {
    out[item] += offset + (item_bias_.empty() ? 0.0f : item_bias_[item]);
  }
  return true;
}

RankedItems FactorModel::SimilarItems(ItemIndex item, std::size_t k) const {
  RankedItems result;
  const std::size_t n = n_items();
  if (item >= n || factors_ == 0 || item_norms_.size() != n) return result;
  std::vector<float> scores(n);
  kernels::GemmNT(1, n, factors_, 1.0f, ItemVector(item), item_factors_.data(), 0.0f,
                  scores.data());
  const float own_norm = item_norms_[item];
  for (std::size_t other = 0; other < n; ++other) {
    const float denominator = own_norm * item_norms_[other];
    scores[other] = denominator > 0.0f ? scores[other] / denominator : 0.0f;
  }
  scores[item] = -std::numeric_limits<float>::infinity();
  TopK(scores.data(), n, k, result);
  return result;
}

void FactorModel::PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                               float* out) const {
  const std::size_t k = factors_;
  const std::size_t known_users = k == 0 ? 0 : user_factors_.size() / k;
  const std::size_t known_items = k == 0 ? 0 : item_factors_.size() / k;
  for (std::size_t pair = 0; pair < users.size(); ++pair) {
    const UserIndex user = users[pair];
    const ItemIndex item = items[pair];
    float score = global_bias_ + UserBias(user);
    if (item < item_bias_.size()) score += item_bias_[item];
    if (user < known_users && item < known_items)
      score += kernels::Dot(UserVector(user), ItemVector(item), k);
    out[pair] = score;
  }
}

void FactorModel::SaveState(ModelWriter& writer) const {
  writer.Write<std::uint64_t>(factors_);
  writer.WriteVector(user_factors_);
  writer.WriteVector(item_factors_);
  writer.Write<float>(global_bias_);
  writer.WriteVector(user_bias_);
  writer.WriteVector(item_bias_);
  SaveExtra(writer);
}

void FactorModel::LoadState(ModelReader& reader) {
  factors_ = reader.Read<std::uint64_t>();
  user_factors_ = reader.ReadVector<float>();
  item_factors_ = reader.ReadVector<float>();
  global_bias_ = reader.Read<float>();
  user_bias_ = reader.ReadVector<float>();
  item_bias_ = reader.ReadVector<float>();
  auto check = [&](bool ok, const char* what) {
    if (!ok)
      throw FormatError(reader.source() + ": " + family() + " model: " + what +
                        " has the wrong size");
  };
  check(user_factors_.size() == n_users() * factors_, "user factor matrix");
  check(item_factors_.size() == n_items() * factors_, "item factor matrix");
  check(user_bias_.empty() || user_bias_.size() == n_users(), "user bias vector");
  check(item_bias_.empty() || item_bias_.size() == n_items(), "item bias vector");
  LoadExtra(reader);
  UseSingleThreadedBlas();
  FactorsChanged();
}

void FactorModel::FactorsChanged() {
  const std::size_t n = factors_ == 0 ? 0 : item_factors_.size() / factors_;
  const std::size_t k = factors_;
  item_norms_.resize(n);
  for (std::size_t item = 0; item < n; ++item) {
    item_norms_[item] =
        std::sqrt(kernels::SquaredNorm(ItemVector(static_cast<ItemIndex>(item)), factors_));
  }
  by_norm_items_.resize(n);
  std::iota(by_norm_items_.begin(), by_norm_items_.end(), ItemIndex{0});
  std::stable_sort(by_norm_items_.begin(), by_norm_items_.end(),
                   [&](ItemIndex a, ItemIndex b) { return item_norms_[a] > item_norms_[b]; });
  by_norm_factors_.resize(n * k);
  by_norm_bias_.assign(n, 0.0f);
  suffix_norm_.assign(n + 1, 0.0f);
  suffix_bias_.assign(n + 1, -std::numeric_limits<float>::infinity());
  for (std::size_t rank = 0; rank < n; ++rank) {
    const ItemIndex item = by_norm_items_[rank];
    std::copy_n(ItemVector(item), k, by_norm_factors_.data() + rank * k);
    if (item < item_bias_.size()) by_norm_bias_[rank] = item_bias_[item];
  }
  for (std::size_t rank = n; rank-- > 0;) {
    suffix_norm_[rank] = std::max(suffix_norm_[rank + 1], item_norms_[by_norm_items_[rank]]);
    suffix_bias_[rank] = std::max(suffix_bias_[rank + 1], by_norm_bias_[rank]);
  }
}

namespace {

// The running top-k of one user in RecommendBatch: a min-heap on "worse first" (lower
// score, or equal score and larger index), the order TopK uses.
struct TopKHeap {
  struct Entry {
    float score;
    ItemIndex item;
  };
  static bool Worse(const Entry& a, const Entry& b) {
    return a.score > b.score || (a.score == b.score && a.item < b.item);
  }
  std::vector<Entry> entries;
  std::size_t k = 0;

  bool Full() const { return entries.size() == k; }
  // Scores below this cannot enter (ties still may, on a smaller index).
  float Threshold() const {
    return Full() ? entries.front().score : -std::numeric_limits<float>::infinity();
  }
  bool Admits(float score, ItemIndex item) const {
    if (!Full()) return true;
    const Entry& worst = entries.front();
    return score > worst.score || (score == worst.score && item < worst.item);
  }
  void Push(float score, ItemIndex item) {
    if (Full()) {
      std::pop_heap(entries.begin(), entries.end(), Worse);
      entries.back() = {score, item};
    } else {
      entries.push_back({score, item});
    }
    std::push_heap(entries.begin(), entries.end(), Worse);
  }
  void Extract(RankedItems& out) {
    std::sort(entries.begin(), entries.end(), Worse);
    out.items.clear();
    out.scores.clear();
    for (const Entry& entry : entries) {
      out.items.push_back(entry.item);
      out.scores.push_back(entry.score);
    }
  }
};

// Below this many items the dense path is as fast and simpler.
constexpr std::size_t kPruneMinItems = 2048;
// Items per block: the score block (users x items floats) stays in L2.
constexpr std::size_t kPruneItemBlock = 1024;
// Users per sub-batch: enough rows for sgemm to run near peak.
constexpr std::size_t kPruneUsers = 64;
// Items tested at once against the threshold (one vector compare per 8 lanes).
constexpr std::size_t kScanChunk = 16;

}  // namespace

void FactorModel::RecommendBatch(std::span<const UserIndex> users, const RecommendOptions& options,
                                 RankedItems* out) const {
  const std::size_t n = n_items();
  const std::size_t k = factors_;
  if (!options.candidates.empty() || n < kPruneMinItems || k == 0 || item_factors_.size() != n * k ||
      by_norm_items_.size() != n || options.k == 0) {
    Recommender::RecommendBatch(users, options, out);
    return;
  }
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const std::size_t known_users = user_factors_.size() / k;
  // Per-thread scratch: a serving request is one call for one user, and fresh buffers
  // (256 KB of scores alone) on every call would cost more than the scoring.
  struct Scratch {
    std::vector<ItemIndex> excluded;
    std::vector<float> gathered, scores, user_norm, offset;
    std::vector<TopKHeap> heaps;
    std::vector<std::size_t> open;  // rows of the sub-batch still scanning
  };
  thread_local Scratch scratch;
  std::vector<ItemIndex>& excluded = scratch.excluded;
  excluded.assign(options.excluded.begin(), options.excluded.end());
  std::sort(excluded.begin(), excluded.end());
  std::vector<float>& gathered = scratch.gathered;
  std::vector<float>& scores = scratch.scores;
  std::vector<float>& user_norm = scratch.user_norm;
  std::vector<float>& offset = scratch.offset;
  std::vector<TopKHeap>& heaps = scratch.heaps;
  std::vector<std::size_t>& open = scratch.open;
  gathered.resize(kPruneUsers * k);
  scores.resize(kPruneUsers * kPruneItemBlock);
  user_norm.resize(kPruneUsers);
  offset.resize(kPruneUsers);
  heaps.resize(kPruneUsers);
  for (std::size_t first = 0; first < users.size(); first += kPruneUsers) {
    const std::size_t count = std::min(kPruneUsers, users.size() - first);
    open.clear();
    for (std::size_t r = 0; r < count; ++r) {
      const UserIndex user = users[first + r];
      heaps[r].entries.clear();
      heaps[r].entries.reserve(options.k);
      heaps[r].k = options.k;
      user_norm[r] = user < known_users ? std::sqrt(kernels::SquaredNorm(UserVector(user), k)) : 0.0f;
      offset[r] = global_bias_ + UserBias(user);
      open.push_back(r);
    }
    for (std::size_t block = 0; block < n && !open.empty(); block += kPruneItemBlock) {
      const std::size_t width = std::min(kPruneItemBlock, n - block);
      for (std::size_t a = 0; a < open.size(); ++a) {
        const UserIndex user = users[first + open[a]];
        if (user < known_users) {
          std::copy_n(UserVector(user), k, gathered.data() + a * k);
        } else {
          std::fill_n(gathered.data() + a * k, k, 0.0f);
        }
      }
      kernels::GemmNT(open.size(), width, k, 1.0f, gathered.data(), by_norm_factors_.data() + block * k, 0.0f,
                      scores.data());
      const float* bias = by_norm_bias_.data() + block;
      std::size_t still_open = 0;
      for (std::size_t a = 0; a < open.size(); ++a) {
        const std::size_t r = open[a];
        const UserIndex user = users[first + r];
        TopKHeap& heap = heaps[r];
        const float* row = scores.data() + a * width;
        std::span<const ItemIndex> seen_items;
        if (options.exclude_seen && user < seen().n_rows) seen_items = seen().RowIndices(user);
        for (std::size_t chunk = 0; chunk < width; chunk += kScanChunk) {
          const std::size_t end = std::min(width, chunk + kScanChunk);
          // Same float operations as ScoreUsers: dot + (offset + item bias).
          float best = kNegInf;
          for (std::size_t j = chunk; j < end; ++j) best = std::max(best, row[j] + (offset[r] + bias[j]));
          if (best < heap.Threshold()) continue;
          for (std::size_t j = chunk; j < end; ++j) {
            const float score = row[j] + (offset[r] + bias[j]);
            if (score == kNegInf || std::isnan(score)) continue;
            const ItemIndex item = by_norm_items_[block + j];
            if (!heap.Admits(score, item)) continue;
            if (std::binary_search(seen_items.begin(), seen_items.end(), item)) continue;
            if (std::binary_search(excluded.begin(), excluded.end(), item)) continue;
            heap.Push(score, item);
          }
        }
        // Close the user when nothing at ranks >= next can reach its k-th score. The
        // margin covers the rounding of sgemm (k products, relative error ~k * 2^-24)
        // and of the two additions.
        const std::size_t next = block + width;
        bool done = next >= n;
        if (!done && heap.Full()) {
          const float reach = user_norm[r] * suffix_norm_[next];
          const float rest = offset[r] + suffix_bias_[next];
          const float margin = 1e-4f * (reach + std::fabs(offset[r]) + std::fabs(suffix_bias_[next])) + 1e-6f;
          done = heap.Threshold() > rest + reach + margin;
        }
        if (!done) open[still_open++] = r;
      }
      open.resize(still_open);
    }
    for (std::size_t r = 0; r < count; ++r) heaps[r].Extract(out[first + r]);
  }
}

namespace {

// Fills rows [0, rows) of a row-major matrix, row r from its own RNG stream.
template <typename Fill>
void FillRows(std::vector<float>& factors, std::size_t rows, std::size_t k, std::uint64_t seed,
              std::uint64_t stream, int threads, Fill&& fill) {
  // The fixed side of an ALS half is read at random rows (50 MB for 200k users x 64
  // factors): with 2 MB pages the whole matrix fits the TLB.
  if (factors.capacity() < rows * k) std::vector<float>().swap(factors);
  ReserveHugePages(factors, rows * k);
  factors.assign(rows * k, 0.0f);
  constexpr std::size_t kRowsPerTask = 4096;
  const std::size_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  ParallelFor<std::size_t>(0, tasks, threads, [&](std::size_t task) {
    const std::size_t end = std::min(rows, (task + 1) * kRowsPerTask);
    for (std::size_t row = task * kRowsPerTask; row < end; ++row) {
      Rng rng(DeriveSeed(seed, (stream << 40) + row));
      fill(rng, factors.data() + row * k);
    }
  });
}

}  // namespace

void FactorModel::RandomUniform(std::vector<float>& factors, std::size_t rows, std::size_t k,
                                std::uint64_t seed, std::uint64_t stream, float low, float high,
                                int threads) {
  FillRows(factors, rows, k, seed, stream, threads, [&](Rng& rng, float* row) {
    for (std::size_t i = 0; i < k; ++i) row[i] = low + (high - low) * rng.UniformFloat();
  });
}

void FactorModel::RandomUnitRows(std::vector<float>& factors, std::size_t rows, std::size_t k,
                                 std::uint64_t seed, std::uint64_t stream, bool absolute,
                                 int threads) {
  FillRows(factors, rows, k, seed, stream, threads, [&](Rng& rng, float* row) {
    double norm = 0;
    for (std::size_t i = 0; i < k; i += 2) {
      // Box-Muller: two standard normals per pair of uniforms.
      const double u1 = 1.0 - rng.Uniform();  // (0, 1]
      const double u2 = rng.Uniform();
      const double radius = std::sqrt(-2.0 * std::log(u1));
      const double angle = 2.0 * 3.14159265358979323846 * u2;
      row[i] = static_cast<float>(radius * std::cos(angle));
      if (i + 1 < k) row[i + 1] = static_cast<float>(radius * std::sin(angle));
    }
    for (std::size_t i = 0; i < k; ++i) {
      if (absolute) row[i] = std::fabs(row[i]);
      norm += double{row[i]} * row[i];
    }
    const float scale = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
    for (std::size_t i = 0; i < k; ++i) row[i] *= scale;
  });
}

void FactorModel::UseSingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { kernels::SetBlasThreads(1); });
}

}  // namespace recforge::models
