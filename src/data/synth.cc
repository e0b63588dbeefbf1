#include "recforge/data/synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"

namespace recforge::data {

using nlohmann::json;

namespace {

// Independent random streams: each part of the model draws from its own derived
// seed, so adding draws to one part never shifts another (and the interactions stay
// identical whichever text format is written around them).
constexpr std::uint64_t kItemStream = 1;
constexpr std::uint64_t kCategoryStream = 2;
constexpr std::uint64_t kPopularityStream = 3;
constexpr std::uint64_t kActivityStream = 4;
constexpr std::uint64_t kUserStream = 5;
constexpr std::uint64_t kTitleStream = 6;
constexpr std::uint64_t kReviewStream = 7;

// Every user gets this many interactions when interactions >= kMinPerUser * users.
constexpr std::uint64_t kMinPerUser = 5;

// Latent model constants. Item and user factors mix their category factor with
// individual noise (0.8² + 0.6² = 1 keeps unit variance per dimension).
constexpr float kCategoryWeight = 0.8f;
constexpr float kIndividualWeight = 0.6f;
constexpr float kItemBiasScale = 0.35f;
constexpr float kUserBiasScale = 0.5f;   // users differ more in harshness than items in quality
constexpr float kSelectionNoise = 1.5f;  // width of the uniform noise on candidate scores
// Share of candidates drawn from the popularity of the user's favourite category
// instead of the global popularity: without it a user rarely even sees an item of
// that category among a handful of popularity draws, and the structure is faint.
constexpr std::uint64_t kFocusThreshold = 51;  // out of 256: ~0.2
// rating = round(kRatingOffset + kRatingSlope * affinity + biases + noise), clamped to 1..5.
// Tuned so that the mean rating is ~3.6 with 4 the most common value and a standard
// deviation ~1.1, as in MovieLens.
constexpr float kRatingOffset = 3.1f;
constexpr float kRatingSlope = 0.4f;
constexpr float kRatingNoise = 1.5f;  // scale of a sum of three uniforms (std ~0.75)
// A candidate search gives up after this many popularity draws per candidate slot
// (users close to exhausting the catalogue) and falls back to a uniform item.
constexpr std::uint32_t kDrawsPerCandidate = 4;

// Fills out[0..n) with standard normal values (Box-Muller, both values of each pair used).
void FillNormal(Rng& rng, float* out, std::size_t n) {
  for (std::size_t k = 0; k < n; k += 2) {
    const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.Uniform()));  // 1 - U in (0, 1]
    const double angle = 6.283185307179586 * rng.Uniform();
    out[k] = static_cast<float>(radius * std::cos(angle));
    if (k + 1 < n) out[k + 1] = static_cast<float>(radius * std::sin(angle));
  }
}

// Uniform float in [0, 1) from the 21-bit field at `shift` of a 64-bit draw: the hot
// loop needs several low-precision uniforms per step and each generator call counts.
inline float UnitFloat(std::uint64_t bits, int shift) {
  return static_cast<float>((bits >> shift) & 0x1fffff) * 0x1.0p-21f;
}

// Walker/Vose alias table: O(1) sampling from a fixed discrete distribution.
class AliasTable {
 public:
  explicit AliasTable(const std::vector<double>& weights) : slots_(weights.size()) {
    const std::size_t n = weights.size();
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    std::vector<double> scaled(n);
    std::vector<std::uint32_t> small, large;
    for (std::size_t k = 0; k < n; ++k) {
      scaled[k] = weights[k] * static_cast<double>(n) / total;
      (scaled[k] < 1.0 ? small : large).push_back(static_cast<std::uint32_t>(k));
    }
    while (!small.empty() && !large.empty()) {
      const std::uint32_t lo = small.back();
      small.pop_back();
      const std::uint32_t hi = large.back();
      slots_[lo] = {ToThreshold(scaled[lo]), hi};
      scaled[hi] -= 1.0 - scaled[lo];
      if (scaled[hi] < 1.0) {
        large.pop_back();
        small.push_back(hi);
      }
    }
    // Leftovers are 1 up to rounding.
    for (std::uint32_t k : small) slots_[k] = {kOne, k};
    for (std::uint32_t k : large) slots_[k] = {kOne, k};
  }

  std::uint32_t Sample(Rng& rng) const {
    const std::uint64_t bits = rng();
    // High half picks the slot (multiply-shift), low half is the coin.
    const auto slot = static_cast<std::uint32_t>(((bits >> 32) * slots_.size()) >> 32);
    const Slot& s = slots_[slot];
    return (bits & 0xffffffffULL) < s.threshold ? slot : s.alias;
  }

 private:
  static constexpr std::uint64_t kOne = 1ULL << 32;
  static std::uint64_t ToThreshold(double p) {
    return static_cast<std::uint64_t>(std::clamp(p, 0.0, 1.0) * static_cast<double>(kOne));
  }
  struct Slot {
    std::uint64_t threshold = kOne;  // coin < threshold keeps the slot itself
    std::uint32_t alias = 0;
  };
  std::vector<Slot> slots_;
};

// Draws r in [0, n) with probability proportional to (r + 1)^-s, without a table of
// n entries: an alias table or CDF over all items would make every draw a cache miss
// (the slot index is uniform), which dominated generation time at 100k+ items. Ranks
// are grouped into buckets whose ends grow by a factor 2^(1/4); a bucket is picked
// from a small alias table and a uniform proposal inside it is accepted with
// probability ((lo + 1) / (r + 1))^s >= 2^(-s/4). Callers store item data in rank
// order, so the popular head, which takes most draws, stays in cache.
class ZipfSampler {
 public:
  // prefix[m] = sum over j = 1..m of j^-s, for m up to at least n.
  ZipfSampler(std::uint32_t n, double exponent, const std::vector<double>& prefix)
      : exponent_(exponent) {
    std::vector<double> weights;
    std::uint64_t lo = 1;  // rank + 1 of the bucket's first rank
    while (lo <= n) {
      const auto grown =
          static_cast<std::uint64_t>(std::ceil(static_cast<double>(lo) * 1.189207115));
      const std::uint64_t hi =
          std::min<std::uint64_t>(std::max(lo + 1, grown), std::uint64_t{n} + 1);
      buckets_.push_back({static_cast<std::uint32_t>(lo - 1), static_cast<std::uint32_t>(hi - lo)});
      weights.push_back(prefix[hi - 1] - prefix[lo - 1]);
      lo = hi;
    }
    bucket_alias_ = std::make_unique<AliasTable>(weights);
  }

  std::uint32_t Sample(Rng& rng) const {
    while (true) {
      const Bucket& bucket = buckets_[bucket_alias_->Sample(rng)];
      // One draw: the high half picks the rank in the bucket, the low half is the coin.
      const std::uint64_t bits = rng();
      const auto rank =
          bucket.first + static_cast<std::uint32_t>(((bits >> 32) * bucket.width) >> 32);
      const std::uint64_t coin = bits & 0xffffffffULL;
      if (exponent_ == 1) {
        // coin / 2^32 < (first + 1) / (rank + 1), in integers (the default exponent);
        // always true for the bucket's first rank, so no separate branch for it.
        if (coin * (std::uint64_t{rank} + 1) < (std::uint64_t{bucket.first} + 1) << 32) return rank;
        continue;
      }
      if (rank == bucket.first || exponent_ == 0) return rank;
      const double ratio =
          (static_cast<double>(bucket.first) + 1) / (static_cast<double>(rank) + 1);
      if (static_cast<double>(coin) * 0x1.0p-32 < std::pow(ratio, exponent_)) return rank;
    }
  }

 private:
  struct Bucket {
    std::uint32_t first;  // first rank
    std::uint32_t width;  // number of ranks
  };
  double exponent_;
  std::vector<Bucket> buckets_;
  std::unique_ptr<AliasTable> bucket_alias_;
};

// Per-thread scratch, allocated once per thread and reused for every user.
struct Scratch {
  std::vector<std::uint64_t> chosen;  // bitmap over popularity ranks, all zero between users
  std::vector<std::uint32_t> ranks;   // the current user's chosen ranks
  std::vector<std::uint32_t> candidate_ranks;
  std::vector<float> candidate_noise;
  std::vector<float> user_factor;
  std::vector<double> cumulative;  // time gaps
  // One user's rows and a review body (text output only).
  std::string text;
  std::vector<ItemIndex> items;
  std::vector<float> ratings;
  std::vector<Timestamp> times;
};

// The latent model: item side and per-user interaction counts are built once;
// each user's rows are then generated independently from the user's own seed.
// Item-side arrays used in the hot loop are stored by popularity rank, not by item.
class Generator {
 public:
  Generator(const SynthOptions& options, int threads);

  const SynthOptions& options() const { return options_; }
  std::uint64_t offset(UserIndex user) const { return offsets_[user]; }
  std::uint64_t count(UserIndex user) const { return offsets_[user + 1] - offsets_[user]; }
  std::uint32_t category(ItemIndex item) const { return item_category_[item]; }

  Scratch MakeScratch() const {
    Scratch scratch;
    scratch.chosen.assign((static_cast<std::size_t>(options_.items) + 63) / 64, 0);
    scratch.user_factor.resize(static_cast<std::size_t>(options_.factors) + 1);
    scratch.candidate_ranks.resize(options_.candidates);
    scratch.candidate_noise.resize(options_.candidates);
    return scratch;
  }

  // Writes count(user) rows into items/ratings/times, in increasing time order.
  void GenerateUser(UserIndex user, Scratch& scratch, ItemIndex* items, float* ratings,
                    Timestamp* times) const;

  // Contiguous user ranges of roughly `rows_per_block` rows: the unit of parallel work
  // (a boundary list, first 0, last n_users).
  std::vector<UserIndex> Blocks(std::uint64_t rows_per_block) const;

 private:
  void BuildItems(int threads);
  void BuildUserCounts();
  float Affinity(const float* user_factor, std::uint32_t rank) const {
    const float* q = &factors_by_rank_[static_cast<std::size_t>(rank) * factors_];
    // Four-lane partial sums with GCC/Clang vector types: the plain loop is not
    // vectorised (float reduction order) and the dot product is the hot spot.
    using Float4 = float __attribute__((vector_size(16)));
    Float4 partial = {0, 0, 0, 0};
    std::uint32_t f = 0;
    for (; f + 4 <= factors_; f += 4) {
      Float4 a, b;
      std::memcpy(&a, user_factor + f, sizeof a);
      std::memcpy(&b, q + f, sizeof b);
      partial += a * b;
    }
    float sum = (partial[0] + partial[2]) + (partial[1] + partial[3]);
    for (; f < factors_; ++f) sum += user_factor[f] * q[f];
    return sum;
  }

  SynthOptions options_;
  std::uint32_t factors_;
  std::uint64_t user_root_;
  std::vector<float> category_factors_;       // categories x factors
  std::vector<std::uint32_t> item_category_;  // by item
  std::vector<ItemIndex> item_of_rank_;       // popularity rank -> item (seeded permutation)
  std::vector<float> factors_by_rank_;        // items x factors, rank order
  std::vector<float> bias_by_rank_;
  std::unique_ptr<ZipfSampler> popularity_;
  // Ranks of each category's items, ascending (category_ranks_[category_begin_[c] ...]),
  // and a Zipf sampler over positions in that list: popularity within the category.
  std::vector<std::uint64_t> category_begin_;
  std::vector<std::uint32_t> category_ranks_;
  std::vector<std::unique_ptr<ZipfSampler>> category_popularity_;  // null for empty categories
  std::vector<std::uint64_t> offsets_;  // users + 1 prefix sums of per-user counts
};

Generator::Generator(const SynthOptions& options, int threads)
    : options_(options),
      factors_(options.factors),
      user_root_(DeriveSeed(options.seed, kUserStream)) {
  BuildItems(threads);
  BuildUserCounts();
}

void Generator::BuildItems(int threads) {
  const std::uint32_t n_items = options_.items;
  const std::uint32_t n_categories = options_.categories;
  Rng category_rng(DeriveSeed(options_.seed, kCategoryStream));
  category_factors_.resize(static_cast<std::size_t>(n_categories) * factors_);
  FillNormal(category_rng, category_factors_.data(), category_factors_.size());

  // Zipf popularity over a seeded permutation, so item index says nothing about rank.
  item_of_rank_.resize(n_items);
  std::iota(item_of_rank_.begin(), item_of_rank_.end(), 0u);
  Rng popularity_rng(DeriveSeed(options_.seed, kPopularityStream));
  for (std::uint32_t k = n_items; k > 1; --k) {
    std::swap(item_of_rank_[k - 1], item_of_rank_[popularity_rng.Below(k)]);
  }

  // Per-item seeds: item factors cost ~F normals each, worth spreading over threads
  // for million-item catalogues, and the result does not depend on the thread count.
  factors_by_rank_.resize(static_cast<std::size_t>(n_items) * factors_);
  bias_by_rank_.resize(n_items);
  item_category_.resize(n_items);
  const std::uint64_t item_root = DeriveSeed(options_.seed, kItemStream);
  ParallelFor<std::uint32_t>(0, n_items, threads, [&](std::uint32_t rank) {
    const ItemIndex item = item_of_rank_[rank];
    Rng rng(DeriveSeed(item_root, item));
    const auto category = static_cast<std::uint32_t>(rng.Below(n_categories));
    item_category_[item] = category;
    const float* g = &category_factors_[static_cast<std::size_t>(category) * factors_];
    float* q = &factors_by_rank_[static_cast<std::size_t>(rank) * factors_];
    float bias = 0;
    FillNormal(rng, q, factors_);
    FillNormal(rng, &bias, 1);
    for (std::uint32_t f = 0; f < factors_; ++f)
      q[f] = kCategoryWeight * g[f] + kIndividualWeight * q[f];
    bias_by_rank_[rank] = kItemBiasScale * bias;
  });

  std::vector<double> prefix(static_cast<std::size_t>(n_items) + 1, 0.0);
  for (std::uint32_t k = 1; k <= n_items; ++k) {
    prefix[k] = prefix[k - 1] + std::pow(static_cast<double>(k), -options_.zipf);
  }
  popularity_ = std::make_unique<ZipfSampler>(n_items, options_.zipf, prefix);

  category_begin_.assign(static_cast<std::size_t>(n_categories) + 1, 0);
  for (std::uint32_t category : item_category_) ++category_begin_[category + 1];
  std::partial_sum(category_begin_.begin(), category_begin_.end(), category_begin_.begin());
  category_ranks_.resize(n_items);
  std::vector<std::uint64_t> cursor(category_begin_.begin(), category_begin_.end() - 1);
  for (std::uint32_t rank = 0; rank < n_items; ++rank) {
    category_ranks_[cursor[item_category_[item_of_rank_[rank]]]++] = rank;
  }
  category_popularity_.resize(n_categories);
  for (std::uint32_t category = 0; category < n_categories; ++category) {
    const std::uint64_t size = category_begin_[category + 1] - category_begin_[category];
    if (size == 0) continue;
    category_popularity_[category] =
        std::make_unique<ZipfSampler>(static_cast<std::uint32_t>(size), options_.zipf, prefix);
  }
}

void Generator::BuildUserCounts() {
  const std::uint32_t n_users = options_.users;
  const std::uint64_t n_items = options_.items;
  const std::uint64_t total = options_.interactions;
  const std::uint64_t base = std::min({kMinPerUser, total / n_users, n_items});
  std::vector<std::uint64_t> counts(n_users, base);
  // No user takes more than half the catalogue unless the total demands it: with a
  // Zipf head the most active users would otherwise all rate every item.
  const std::uint64_t per_user_limit =
      std::min(n_items, std::max((n_items + 1) / 2, (total + n_users - 1) / n_users));
  const std::uint64_t cap = per_user_limit - base;  // extra rows a user can still take
  std::uint64_t remaining = total - base * n_users;

  if (remaining > 0) {
    // Activity is Zipf over a seeded user permutation with half the popularity
    // exponent: with the full exponent the head users would all exhaust the catalogue.
    std::vector<UserIndex> by_rank(n_users);
    std::iota(by_rank.begin(), by_rank.end(), 0u);
    Rng activity_rng(DeriveSeed(options_.seed, kActivityStream));
    for (std::uint32_t k = n_users; k > 1; --k) {
      std::swap(by_rank[k - 1], by_rank[activity_rng.Below(k)]);
    }
    const double exponent = options_.zipf / 2;
    std::vector<double> weight(n_users), tail(n_users + 1, 0.0);
    for (std::uint32_t rank = 0; rank < n_users; ++rank) {
      weight[rank] = std::pow(static_cast<double>(rank) + 1.0, -exponent);
    }
    for (std::uint32_t rank = n_users; rank > 0; --rank)
      tail[rank - 1] = tail[rank] + weight[rank - 1];

    // Water filling: weights decrease with rank, so the users whose proportional
    // share exceeds the cap form a prefix of the ranks.
    std::uint32_t first_free = 0;
    while (first_free < n_users && static_cast<double>(remaining) * weight[first_free] >=
                                       static_cast<double>(cap) * tail[first_free]) {
      counts[by_rank[first_free]] += cap;
      remaining -= cap;
      ++first_free;
    }
    std::uint64_t assigned = 0;
    for (std::uint32_t rank = first_free; rank < n_users; ++rank) {
      const double share = static_cast<double>(remaining) * weight[rank] / tail[first_free];
      const std::uint64_t extra = std::min(cap, static_cast<std::uint64_t>(share));
      counts[by_rank[rank]] += extra;
      assigned += extra;
    }
    // Rounding leftovers (fewer than the number of users) go to the most active users
    // with room left; users * per_user_limit >= interactions guarantees there is room.
    std::uint64_t left = remaining - assigned;
    for (std::uint32_t rank = 0; left > 0; rank = (rank + 1) % n_users) {
      std::uint64_t& count = counts[by_rank[rank]];
      if (count < per_user_limit) {
        ++count;
        --left;
      }
    }
  }
  offsets_.assign(static_cast<std::size_t>(n_users) + 1, 0);
  for (std::uint32_t user = 0; user < n_users; ++user)
    offsets_[user + 1] = offsets_[user] + counts[user];
}

std::vector<UserIndex> Generator::Blocks(std::uint64_t rows_per_block) const {
  std::vector<UserIndex> bounds{0};
  for (UserIndex user = 0; user < options_.users; ++user) {
    if (offsets_[user + 1] - offsets_[bounds.back()] >= rows_per_block) bounds.push_back(user + 1);
  }
  if (bounds.back() != options_.users) bounds.push_back(options_.users);
  return bounds;
}

void Generator::GenerateUser(UserIndex user, Scratch& scratch, ItemIndex* items, float* ratings,
                             Timestamp* times) const {
  const std::uint64_t n = count(user);
  if (n == 0) return;
  Rng rng(DeriveSeed(user_root_, user));

  // Each user leans towards one category; the 1/sqrt(F) scale keeps affinities ~N(0, 1)
  // for users and items of unrelated categories.
  const auto favourite = static_cast<std::uint32_t>(rng.Below(options_.categories));
  const float* g = &category_factors_[static_cast<std::size_t>(favourite) * factors_];
  const float scale = 1.0f / std::sqrt(static_cast<float>(factors_));
  float* p = scratch.user_factor.data();  // factors + 1 values: the last one is the bias
  FillNormal(rng, p, factors_ + 1);
  for (std::uint32_t f = 0; f < factors_; ++f)
    p[f] = (kCategoryWeight * g[f] + kIndividualWeight * p[f]) * scale;
  const float user_bias = kUserBiasScale * p[factors_];
  const ZipfSampler* focus = category_popularity_[favourite].get();
  const std::uint32_t* focus_ranks =
      focus != nullptr ? &category_ranks_[category_begin_[favourite]] : nullptr;

  // Selection works on popularity ranks (cache-friendly, see ZipfSampler); the rank is
  // mapped to the item only when a row is written.
  std::uint64_t* chosen = scratch.chosen.data();
  auto is_chosen = [chosen](std::uint32_t rank) { return (chosen[rank >> 6] >> (rank & 63)) & 1; };
  std::vector<std::uint32_t>& ranks = scratch.ranks;
  ranks.resize(n);
  const std::uint32_t candidates = options_.candidates;
  const std::uint32_t max_draws = candidates * kDrawsPerCandidate;
  std::uint32_t* candidate_ranks = scratch.candidate_ranks.data();
  float* candidate_noise = scratch.candidate_noise.data();
  for (std::uint64_t k = 0; k < n; ++k) {
    // Draw all candidates first, then score them: the factor loads of the candidates
    // are independent and overlap instead of stalling one after another. How many
    // come from the favourite category is decided up front (8 bits per candidate),
    // which keeps an unpredictable branch out of the draw loop.
    std::uint32_t n_focus = 0;
    if (focus != nullptr) {
      for (std::uint32_t c = 0; c < candidates; c += 8) {
        std::uint64_t coins = rng();
        for (std::uint32_t lane = c; lane < std::min(c + 8, candidates); ++lane, coins >>= 8) {
          n_focus += (coins & 0xff) < kFocusThreshold ? 1 : 0;
        }
      }
    }
    std::uint32_t valid = 0;
    std::uint32_t draw = 0;
    for (const std::uint32_t focus_draws = n_focus * kDrawsPerCandidate;
         draw < focus_draws && valid < n_focus; ++draw) {
      const std::uint32_t rank = focus_ranks[focus->Sample(rng)];
      if (!is_chosen(rank)) candidate_ranks[valid++] = rank;
    }
    for (draw = 0; draw < max_draws && valid < candidates; ++draw) {
      const std::uint32_t rank = popularity_->Sample(rng);
      if (!is_chosen(rank)) candidate_ranks[valid++] = rank;
    }
    for (std::uint32_t c = 0; c < valid; c += 3) {
      const std::uint64_t bits = rng();  // three 21-bit noise values
      for (std::uint32_t lane = c; lane < std::min(c + 3, valid); ++lane) {
        candidate_noise[lane] =
            kSelectionNoise * (UnitFloat(bits, 21 * static_cast<int>(lane - c)) - 0.5f);
      }
    }
    std::uint32_t best = kInvalidIndex;
    float best_score = -std::numeric_limits<float>::infinity();
    float best_affinity = 0;
    for (std::uint32_t c = 0; c < valid; ++c) {
      const float affinity = Affinity(p, candidate_ranks[c]);
      const float score = affinity + candidate_noise[c];
      if (score > best_score) {
        best_score = score;
        best = candidate_ranks[c];
        best_affinity = affinity;
      }
    }
    if (best == kInvalidIndex) {
      // The popular items are used up: uniform rejection sampling finishes in
      // expected items / (items - chosen) draws, i.e. coupon-collector cost at worst.
      do {
        best = static_cast<std::uint32_t>(rng.Below(options_.items));
      } while (is_chosen(best));
      best_affinity = Affinity(p, best);
    }
    chosen[best >> 6] |= 1ULL << (best & 63);
    ranks[k] = best;
    items[k] = item_of_rank_[best];
    const std::uint64_t bits = rng();
    const float noise = UnitFloat(bits, 0) + UnitFloat(bits, 21) + UnitFloat(bits, 42) - 1.5f;
    const float z = kRatingOffset + kRatingSlope * best_affinity + user_bias + bias_by_rank_[best] +
                    kRatingNoise * noise;
    ratings[k] = std::clamp(std::round(z), 1.0f, 5.0f);
  }
  for (std::uint32_t rank : ranks) chosen[rank >> 6] = 0;

  // Times: the user is active in a window of the span, with bursty gaps (cubed
  // exponentials), and strictly increasing seconds whenever the window allows.
  const std::int64_t span = options_.time_span;
  const double length_fraction = std::max(0.02, std::pow(rng.Uniform(), 0.7));
  const double start_fraction = rng.Uniform() * (1.0 - length_fraction);
  auto length = static_cast<std::int64_t>(length_fraction * static_cast<double>(span));
  std::int64_t begin =
      options_.start_time + static_cast<std::int64_t>(start_fraction * static_cast<double>(span));
  const auto n_signed = static_cast<std::int64_t>(n);
  if (length < n_signed) {
    length = std::min(span, n_signed);
    begin = std::min(begin, options_.start_time + span - length);
  }
  scratch.cumulative.resize(n);
  double total = 0;
  for (std::uint64_t k = 0; k <= n; ++k) {
    const double e = -std::log(1.0 - rng.Uniform());
    total += e * e * e;
    if (k < n) scratch.cumulative[k] = total;
  }
  if (length >= n_signed) {
    // floor(fraction * slack) is non-decreasing; adding k makes it strictly increasing
    // and keeps the last time at most begin + length - 1.
    const double slack = static_cast<double>(length - n_signed);
    for (std::uint64_t k = 0; k < n; ++k) {
      times[k] = begin + static_cast<std::int64_t>(scratch.cumulative[k] / total * slack) +
                 static_cast<std::int64_t>(k);
    }
  } else {
    const double window = static_cast<double>(std::max<std::int64_t>(length - 1, 0));
    for (std::uint64_t k = 0; k < n; ++k) {
      times[k] = begin + static_cast<std::int64_t>(scratch.cumulative[k] / total * window);
    }
  }
}

// ---------------------------------------------------------------------------------
// Names and text.

struct CategoryWords {
  const char* name;
  const char* nouns[6];
};

constexpr CategoryWords kCategories[] = {
    {"Books", {"novel", "cookbook", "paperback", "hardcover", "biography", "field guide"}},
    {"Electronics", {"headphones", "charger", "speaker", "cable", "keyboard", "webcam"}},
    {"Home & Kitchen", {"blender", "skillet", "kettle", "knife set", "cutting board", "toaster"}},
    {"Toys & Games",
     {"puzzle", "board game", "action figure", "building set", "plush toy", "card game"}},
    {"Sports & Outdoors",
     {"yoga mat", "water bottle", "tent", "backpack", "dumbbell", "bike light"}},
    {"Beauty", {"moisturizer", "shampoo", "lipstick", "serum", "perfume", "hair dryer"}},
    {"Grocery", {"coffee", "green tea", "olive oil", "granola", "hot sauce", "dark chocolate"}},
    {"Garden", {"hose", "planter", "pruner", "bird feeder", "seed kit", "trowel"}},
    {"Musical Instruments",
     {"guitar strings", "ukulele", "metronome", "microphone", "capo", "drum pad"}},
    {"Movies & TV", {"box set", "documentary", "blu-ray", "series", "DVD", "collector's edition"}},
    {"Pet Supplies", {"dog bed", "cat tree", "leash", "chew toy", "litter box", "pet brush"}},
    {"Automotive",
     {"car charger", "floor mat", "dash cam", "tire gauge", "seat cover", "wiper blade"}},
    {"Office Products",
     {"notebook", "desk lamp", "stapler", "pen set", "organizer", "label maker"}},
    {"Tools & Home Improvement",
     {"drill", "screwdriver set", "tape measure", "wrench", "flashlight", "level"}},
    {"Clothing", {"t-shirt", "jacket", "sneakers", "scarf", "hoodie", "socks"}},
    {"Video Games",
     {"controller", "headset", "game", "charging dock", "gaming mouse", "mouse pad"}},
    {"Health & Household",
     {"vitamins", "thermometer", "massager", "first aid kit", "pill organizer", "heating pad"}},
    {"Baby", {"stroller", "bottle", "baby monitor", "diaper bag", "teether", "play mat"}},
    {"Arts & Crafts", {"paint set", "sketchbook", "yarn", "glue gun", "brush set", "canvas"}},
    {"Jewelry", {"necklace", "bracelet", "earrings", "ring", "watch", "pendant"}},
};
constexpr std::uint32_t kNamedCategories = sizeof(kCategories) / sizeof(kCategories[0]);

template <std::size_t N>
const char* Pick(Rng& rng, const char* const (&words)[N]) {
  return words[rng.Below(N)];
}

const char* CategoryNoun(std::uint32_t category, Rng& rng) {
  return Pick(rng, kCategories[category % kNamedCategories].nouns);
}

std::string CategoryName(std::uint32_t category) {
  const char* name = kCategories[category % kNamedCategories].name;
  const std::uint32_t round = category / kNamedCategories;
  return round == 0 ? std::string(name) : fmt::format("{} {}", name, round + 1);
}

constexpr const char* kBrandHeads[] = {"Vel", "Zor", "Ama", "Kin", "Lum", "Bra", "Ori", "Nex",
                                       "Sol", "Tri", "Qua", "Hal", "Mer", "Dax", "Pel", "Fen"};
constexpr const char* kBrandTails[] = {"ora", "vex", "ix",  "ano", "ford", "ly",  "ium",  "ara",
                                       "eon", "co",  "ent", "ova", "ist",  "ara", "wick", "um"};
constexpr const char* kTitleAdjectives[] = {"Compact",      "Premium",      "Classic", "Portable",
                                            "Deluxe",       "Essential",    "Ultra",   "Everyday",
                                            "Heavy-Duty",   "Lightweight",  "Vintage", "Modern",
                                            "Professional", "Eco-Friendly", "Smart",   "Mini"};
constexpr const char* kTitleSuffixes[] = {
    "", "", "", "", ", 2-Pack", " (Black)", " (Blue)", " - Large", " - Gift Edition", ", Set of 3"};

std::string TitleCase(std::string_view text) {
  std::string out(text);
  bool start = true;
  for (char& c : out) {
    if (start && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    start = c == ' ' || c == '-';
  }
  return out;
}

std::string ItemTitle(std::uint32_t item, std::uint32_t category, std::uint64_t title_root) {
  Rng rng(DeriveSeed(title_root, item));
  std::string title = Pick(rng, kBrandHeads);
  title += Pick(rng, kBrandTails);
  title += ' ';
  title += Pick(rng, kTitleAdjectives);
  title += ' ';
  title += TitleCase(CategoryNoun(category, rng));
  title += Pick(rng, kTitleSuffixes);
  return title;
}

// Review vocabulary. Sentiment-specific words follow the rating; the fillers give
// the free-form sentences a varied, skewed word distribution.
constexpr const char* kPositive[] = {"great",     "excellent",   "perfect",   "lovely",
                                     "sturdy",    "comfortable", "beautiful", "amazing",
                                     "solid",     "handy",       "reliable",  "fantastic",
                                     "well made", "easy to use", "worth it",  "gorgeous"};
constexpr const char* kNegative[] = {"flimsy",
                                     "cheap",
                                     "broken",
                                     "disappointing",
                                     "useless",
                                     "noisy",
                                     "smaller than pictured",
                                     "poorly made",
                                     "overpriced",
                                     "uncomfortable",
                                     "defective",
                                     "too thin"};
constexpr const char* kMixed[] = {"okay",
                                  "fine",
                                  "decent",
                                  "average",
                                  "acceptable",
                                  "not bad",
                                  "a little smaller than expected",
                                  "good enough",
                                  "so-so"};
constexpr const char* kAdverbs[] = {"really",    "very",         "super",    "quite",     "pretty",
                                    "extremely", "surprisingly", "honestly", "absolutely"};
constexpr const char* kPeople[] = {"daughter", "son",      "husband",       "wife",
                                   "mom",      "dad",      "sister",        "brother",
                                   "friend",   "grandson", "granddaughter", "coworker"};
constexpr const char* kPlaces[] = {"kitchen",     "office", "garage", "bedroom",  "car",
                                   "living room", "dorm",   "camper", "bathroom", "backyard"};
constexpr const char* kUnits[] = {"days", "weeks", "months"};
constexpr const char* kColors[] = {"black", "navy",  "gray",  "white",
                                   "red",   "green", "beige", "teal"};
constexpr const char* kFillers[] = {
    "the",        "it",        "and",       "this",     "a",           "to",       "is",
    "was",        "for",       "with",      "my",       "but",         "on",       "of",
    "in",         "very",      "so",        "just",     "one",         "use",      "would",
    "good",       "they",      "like",      "have",     "product",     "really",   "will",
    "not",        "you",       "are",       "all",      "price",       "quality",  "love",
    "little",     "size",      "after",     "well",     "bought",      "time",     "fit",
    "nice",       "works",     "recommend", "which",    "than",        "also",     "because",
    "when",       "even",      "still",     "much",     "easy",        "order",    "box",
    "came",       "received",  "looks",     "feels",    "arrived",     "purchase", "value",
    "every",      "day",       "second",    "week",     "replacement", "material", "design",
    "color",      "small",     "large",     "used",     "first",       "again",    "back",
    "expected",   "described", "picture",   "battery",  "shipping",    "package",  "instructions",
    "minutes",    "sturdy",    "soft",      "smell",    "sound",       "set",      "perfectly",
    "definitely", "probably",  "actually",  "overall",  "however",     "though",   "almost",
    "exactly",    "happy",     "pleased",   "glad",     "returned",    "seller",   "amazon",
    "star",       "stars",     "review",    "months",   "year",        "gift",     "christmas",
    "birthday",   "kids",      "family",    "everyone", "work",        "home",     "travel",
    "daily",      "morning",   "night",     "weekend",  "cleaning",    "handle",   "lid",
    "strap",      "button",    "switch",    "screen",   "cord",        "plastic",  "metal",
    "wood",       "fabric",    "glass",     "leather",  "cotton",      "café",     "naïve",
    "façade",     "jalapeño",  "crème",     "résumé"};

bool Positive(int rating) { return rating >= 4; }
bool Negative(int rating) { return rating <= 2; }

const char* SentimentWord(int rating, Rng& rng) {
  if (Positive(rating)) return Pick(rng, kPositive);
  if (Negative(rating)) return Pick(rng, kNegative);
  return Pick(rng, kMixed);
}

// Appends text pieces and small non-negative integers (cheaper than fmt for the
// millions of short sentences of a JSON lines file).
void AppendPiece(std::string& out, std::string_view text) { out += text; }
void AppendPiece(std::string& out, std::uint64_t value) {
  char buffer[24];
  out.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}
template <typename... Pieces>
void Cat(std::string& out, const Pieces&... pieces) {
  (AppendPiece(out, pieces), ...);
}

// Appends one sentence, capitalised. Every random choice is drawn into a local first:
// the evaluation order of function arguments is unspecified, and drawing inside an
// argument list would make the text depend on the compiler.
void AppendSentence(std::string& out, int rating, std::uint32_t category, Rng& rng) {
  const std::size_t start = out.size();
  const std::uint64_t kind = rng.Below(14);
  const char* noun = CategoryNoun(category, rng);
  switch (kind) {
    case 0: {
      const char* adverb = Pick(rng, kAdverbs);
      Cat(out, "this ", noun, " is ", adverb, " ", SentimentWord(rating, rng), ".");
      break;
    }
    case 1:
      Cat(out, "I bought it for my ", Pick(rng, kPeople),
          Positive(rating) ? " and they love it." : " and it did not last.");
      break;
    case 2: {
      const std::uint64_t amount = 2 + rng.Below(11);
      Cat(out, "after ", amount, " ", Pick(rng, kUnits), " it still ",
          Negative(rating) ? "rattles and leaks." : "works like new.");
      break;
    }
    case 3:
      Cat(out, "the quality is ", SentimentWord(rating, rng), " for the price.");
      break;
    case 4:
      Cat(out, "we use it every day in the ", Pick(rng, kPlaces), ".");
      break;
    case 5:
      Cat(out, "it is about ", 6 + rng.Below(30), "\" long, ",
          Negative(rating) ? "much smaller than the listing says." : "just as described.");
      break;
    case 6:
      Cat(out, "ordered the ", Pick(rng, kColors), " one and the color matches the photos.");
      break;
    case 7:
      Cat(out, "setup took about ", 2 + rng.Below(40), " minutes.");
      break;
    case 8:
      out += Positive(rating)   ? "would definitely buy again!"
             : Negative(rating) ? "save your money."
                                : "it does the job, nothing more.";
      break;
    case 9: {
      const char* adverb = Pick(rng, kAdverbs);
      Cat(out, "compared to my old ", noun, ", this one is ", adverb, " ",
          SentimentWord(rating, rng), ".");
      break;
    }
    default: {
      // Free-form sentence of skewed filler words (squaring favours the frequent ones).
      const std::uint64_t words = 5 + rng.Below(14);
      constexpr std::size_t kN = sizeof(kFillers) / sizeof(kFillers[0]);
      for (std::uint64_t w = 0; w < words; ++w) {
        const double u = rng.Uniform();
        if (w > 0) out += ' ';
        out += kFillers[static_cast<std::size_t>(u * u * kN)];
      }
      out += rng.Below(6) == 0 ? '!' : '.';
      break;
    }
  }
  if (out[start] >= 'a' && out[start] <= 'z')
    out[start] = static_cast<char>(out[start] - 'a' + 'A');
}

std::string ReviewTitle(int rating, std::uint32_t category, Rng& rng) {
  static constexpr const char* kStars[] = {"One Star", "Two Stars", "Three Stars", "Four Stars",
                                           "Five Stars"};
  const std::uint64_t kind = rng.Below(4);
  if (kind == 0) return kStars[rating - 1];
  if (kind == 1) {
    std::string title = SentimentWord(rating, rng);  // drawn before the noun, see above
    title += ' ';
    title += CategoryNoun(category, rng);
    return TitleCase(title);
  }
  if (Positive(rating)) {
    static constexpr const char* kTitles[] = {
        "Love it!", "Highly recommend", "Exactly what I needed", "Great value", "My new favorite"};
    return Pick(rng, kTitles);
  }
  if (Negative(rating)) {
    static constexpr const char* kTitles[] = {"Waste of money", "Do not buy", "Disappointed",
                                              "Broke quickly", "Not as described"};
    return Pick(rng, kTitles);
  }
  static constexpr const char* kTitles[] = {"It's okay", "Decent for the price", "Average",
                                            "Mixed feelings", "Does the job"};
  return Pick(rng, kTitles);
}

// JSON string: quote, backslash and control characters escaped, UTF-8 passed
// through. Runs of plain characters are appended in one go (per-character appends
// dominated the JSON writer's time).
void AppendJsonString(std::string& out, std::string_view text) {
  out += '"';
  std::size_t plain_begin = 0;
  static constexpr auto kEscape = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 0x20; ++c) table[static_cast<std::size_t>(c)] = true;
    table['"'] = table['\\'] = true;
    return table;
  }();
  for (std::size_t k = 0; k < text.size(); ++k) {
    const auto c = static_cast<unsigned char>(text[k]);
    if (!kEscape[c]) continue;
    out.append(text.data() + plain_begin, k - plain_begin);
    plain_begin = k + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
    }
  }
  out.append(text.data() + plain_begin, text.size() - plain_begin);
  out += '"';
}

void AppendInt(std::string& out, std::int64_t value) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// Amazon-like ids. Users: 'A' + 27 base-32 characters whose first 13 encode a
// bijection of the user index (so ids are unique). Items: "B0" + 8 base-36
// characters of a 40-bit bijection of item * 4 + variant (variant 0 = parent).
void AppendAmazonUserId(std::string& out, UserIndex user) {
  static constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  out += 'A';
  std::uint64_t head = Mix64(user);
  for (int k = 0; k < 13; ++k, head >>= 5) out += kBase32[head & 31];
  std::uint64_t tail = Mix64(Mix64(user) ^ 0x5bd1e995ULL);
  for (int k = 0; k < 14; ++k, tail >>= 5) out += kBase32[tail & 31];
}

void AppendAsin(std::string& out, ItemIndex item, std::uint32_t variant) {
  static constexpr char kBase36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  constexpr std::uint64_t kMask = (1ULL << 40) - 1;
  std::uint64_t x = (static_cast<std::uint64_t>(item) * 4 + variant) & kMask;
  // Odd multipliers and xor-shifts are invertible modulo 2^40.
  x = (x * 0x9E3779B97FULL) & kMask;
  x ^= x >> 19;
  x = (x * 0xC2B2AE3D27ULL) & kMask;
  x ^= x >> 21;
  char digits[8];
  for (int k = 7; k >= 0; --k, x /= 36) digits[k] = kBase36[x % 36];
  out += "B0";
  out.append(digits, 8);
}

void AppendCsvRow(std::string& out, char delimiter, UserIndex user, ItemIndex item, float rating,
                  Timestamp time) {
  out += 'u';
  AppendInt(out, user);
  out += delimiter;
  out += 'i';
  AppendInt(out, item);
  out += delimiter;
  out += static_cast<char>('0' + static_cast<int>(rating));  // ratings are whole stars 1..5
  out += delimiter;
  AppendInt(out, time);
  out += '\n';
}

// `text` is scratch space for the review body, reused across calls.
void AppendReviewLine(std::string& out, std::string& text, const Generator& generator,
                      UserIndex user, ItemIndex item, float rating, Timestamp time, Rng& rng) {
  const int stars = static_cast<int>(rating);
  const std::uint32_t category = generator.category(item);
  out += "{\"rating\": ";
  out += static_cast<char>('0' + stars);
  out += ".0, \"title\": ";
  AppendJsonString(out, ReviewTitle(stars, category, rng));
  // Text: mostly a few sentences, with a long tail of long reviews and the odd
  // "<br />" paragraph break found in the real data.
  text.clear();
  const double u = rng.Uniform();
  const auto sentences = static_cast<std::uint64_t>(1 + 4 * u + 16 * u * u * u * u);
  for (std::uint64_t s = 0; s < sentences; ++s) {
    if (s > 0) text += rng.Below(12) == 0 ? "<br /><br />" : " ";
    AppendSentence(text, stars, category, rng);
  }
  out += ", \"text\": ";
  AppendJsonString(out, text);
  out += ", \"images\": [], \"asin\": \"";
  AppendAsin(out, item, rng.Below(10) < 3 ? 1 + static_cast<std::uint32_t>(rng.Below(3)) : 0);
  out += "\", \"parent_asin\": \"";
  AppendAsin(out, item, 0);
  out += "\", \"user_id\": \"";
  AppendAmazonUserId(out, user);
  out += "\", \"timestamp\": ";
  AppendInt(out, time * 1000 + static_cast<std::int64_t>(rng.Below(1000)));
  out += ", \"helpful_vote\": ";
  const double h = rng.Uniform();
  // Mostly 0 with a heavy tail, capped like the largest counts seen in the real data.
  AppendInt(out, h < 0.65
                     ? 0
                     : static_cast<std::int64_t>(std::min(std::pow(1.0 - h, -1.5) * 0.3, 5000.0)));
  out += ", \"verified_purchase\": ";
  out += rng.Below(10) == 0 ? "false" : "true";
  out += "}\n";
}

// Throttles progress reports to a few per second.
class ProgressThrottle {
 public:
  explicit ProgressThrottle(const Context& ctx) : ctx_(ctx) {}
  void Report(std::uint64_t done, std::uint64_t total, bool force = false) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    ctx_.ReportProgress("synth", done, total);
  }

 private:
  const Context& ctx_;
  std::chrono::steady_clock::time_point last_{};
};

std::string IdWithPrefix(char prefix, std::uint32_t index) {
  std::string id(1, prefix);
  AppendInt(id, index);
  return id;
}

}  // namespace

void SynthOptions::Validate() const {
  auto fail = [](std::string_view option, const std::string& why) {
    throw InvalidArgument(fmt::format("synth option '{}': {}", option, why));
  };
  if (users == 0) fail("users", "must be at least 1");
  if (items == 0) fail("items", "must be at least 1");
  if (users == kInvalidIndex) fail("users", fmt::format("must be below {}", kInvalidIndex));
  if (items == kInvalidIndex) fail("items", fmt::format("must be below {}", kInvalidIndex));
  if (interactions == 0) fail("interactions", "must be at least 1");
  const std::uint64_t pairs = static_cast<std::uint64_t>(users) * items;  // < 2^64
  if (interactions > pairs) {
    fail("interactions", fmt::format("{} exceeds users * items = {} * {}: there are not that many "
                                     "distinct (user, item) pairs",
                                     interactions, users, items));
  }
  // Upper bounds keep the category and item factor tables (categories * factors and
  // items * factors floats) from exhausting memory on a typo.
  if (categories == 0 || categories > 1'000'000) {
    fail("categories", fmt::format("{} is outside 1..1000000", categories));
  }
  if (factors == 0 || factors > 256) fail("factors", fmt::format("{} is outside 1..256", factors));
  if (candidates == 0 || candidates > 1024) {
    fail("candidates", fmt::format("{} is outside 1..1024", candidates));
  }
  if (!std::isfinite(zipf) || zipf < 0 || zipf > 10)
    fail("zipf", fmt::format("{} is outside 0..10", zipf));
  if (time_span < 0) fail("time_span", fmt::format("{} is negative", time_span));
  if (start_time < 0) fail("start_time", fmt::format("{} is negative", start_time));
  // Times are later multiplied by 1000 for millisecond output.
  constexpr std::int64_t kMaxTime = std::numeric_limits<std::int64_t>::max() / 4000;
  if (start_time > kMaxTime || time_span > kMaxTime) {
    fail(start_time > kMaxTime ? "start_time" : "time_span",
         fmt::format("must be at most {}", kMaxTime));
  }
}

json SynthOptions::ToJson() const {
  return json{{"interactions", interactions},
              {"users", users},
              {"items", items},
              {"categories", categories},
              {"factors", factors},
              {"zipf", zipf},
              {"candidates", candidates},
              {"start_time", start_time},
              {"time_span", time_span},
              {"seed", seed}};
}

Dataset Synthesize(const SynthOptions& options, const Context& ctx) {
  options.Validate();
  const int threads = std::max(1, ctx.threads);
  const Generator generator(options, threads);

  Dataset dataset;
  Interactions& rows = dataset.interactions;
  rows.Resize(options.interactions);
  const std::vector<UserIndex> bounds = generator.Blocks(1 << 14);
  const std::size_t n_blocks = bounds.size() - 1;
  std::atomic<std::size_t> next_block{0};
  std::atomic<std::uint64_t> rows_done{0};
  ProgressThrottle progress(ctx);
  // Blocks are handed out dynamically (activity is skewed); every user writes its own
  // pre-computed slice, so the result does not depend on which thread ran it.
  ParallelRegion(threads, [&](int thread_index) {
    Scratch scratch = generator.MakeScratch();
    for (std::size_t block = next_block++; block < n_blocks; block = next_block++) {
      for (UserIndex user = bounds[block]; user < bounds[block + 1]; ++user) {
        const std::uint64_t at = generator.offset(user);
        const std::uint64_t n = generator.count(user);
        std::fill_n(rows.users.begin() + static_cast<std::ptrdiff_t>(at), n, user);
        generator.GenerateUser(user, scratch, rows.items.data() + at, rows.ratings.data() + at,
                               rows.times.data() + at);
      }
      const std::uint64_t done = rows_done +=
          generator.offset(bounds[block + 1]) - generator.offset(bounds[block]);
      if (thread_index == 0) progress.Report(done, options.interactions);
    }
  });
  progress.Report(options.interactions, options.interactions, true);

  std::vector<std::string> user_ids(options.users), item_ids(options.items);
  for (UserIndex user = 0; user < options.users; ++user) user_ids[user] = IdWithPrefix('u', user);
  for (ItemIndex item = 0; item < options.items; ++item) item_ids[item] = IdWithPrefix('i', item);
  dataset.users = IdMap(std::move(user_ids));
  dataset.items = IdMap(std::move(item_ids));

  dataset.item_info.resize(options.items);
  const std::uint64_t title_root = DeriveSeed(options.seed, kTitleStream);
  ParallelFor<std::uint32_t>(0, options.items, threads, [&](std::uint32_t item) {
    ItemInfo& info = dataset.item_info[item];
    const std::uint32_t category = generator.category(item);
    info.item_id = dataset.items.id(item);
    info.title = ItemTitle(item, category, title_root);
    info.categories = {CategoryName(category)};
  });

  dataset.meta = json{{"kind", "raw"},
                      {"source", "synth"},
                      {"parameters", options.ToJson()},
                      {"parse_errors", ErrorTally{}.ToJson()}};
  return dataset;
}

SynthTextFormat ParseSynthTextFormat(std::string_view name) {
  if (name == "csv") return SynthTextFormat::kCsv;
  if (name == "tsv") return SynthTextFormat::kTsv;
  if (name == "amazon-2023-jsonl") return SynthTextFormat::kAmazon2023Jsonl;
  throw InvalidArgument(
      fmt::format("unknown synth text format '{}' (allowed: csv, tsv, amazon-2023-jsonl)", name));
}

void WriteSynthText(const SynthOptions& options, SynthTextFormat format, const fs::path& path,
                    const Context& ctx) {
  options.Validate();
  const int threads = std::max(1, ctx.threads);
  const Generator generator(options, threads);

  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    throw IoError(
        fmt::format("{}: cannot open for writing: {}", path.string(), std::strerror(errno)));
  }
  // Closes the file on every path; a failed close after a successful run is reported.
  struct Closer {
    std::FILE* file;
    ~Closer() {
      if (file != nullptr) std::fclose(file);
    }
  } closer{file};
  auto write = [&](std::string_view bytes) {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size()) {
      throw IoError(fmt::format("{}: write failed: {}", path.string(), std::strerror(errno)));
    }
  };

  const bool jsonl = format == SynthTextFormat::kAmazon2023Jsonl;
  const char delimiter = format == SynthTextFormat::kTsv ? '\t' : ',';
  if (format == SynthTextFormat::kCsv) write("user_id,item_id,rating,timestamp\n");

  // Blocks of a few MB of text each; a wave of blocks is generated in parallel into
  // per-block buffers, then written in order, so memory stays bounded by the wave.
  const std::uint64_t rows_per_block = jsonl ? (1 << 13) : (1 << 17);
  const std::size_t bytes_per_row = jsonl ? 640 : 32;
  const std::vector<UserIndex> bounds = generator.Blocks(rows_per_block);
  const std::size_t n_blocks = bounds.size() - 1;
  const std::size_t wave = static_cast<std::size_t>(threads) * 4;
  std::vector<std::string> buffers(std::min(wave, n_blocks));
  const std::uint64_t review_root = DeriveSeed(options.seed, kReviewStream);
  ProgressThrottle progress(ctx);

  for (std::size_t first = 0; first < n_blocks; first += wave) {
    const std::size_t last = std::min(n_blocks, first + wave);
    std::atomic<std::size_t> next_block{first};
    ParallelRegion(threads, [&](int) {
      Scratch scratch = generator.MakeScratch();
      for (std::size_t block = next_block++; block < last; block = next_block++) {
        std::string& out = buffers[block - first];
        out.clear();
        out.reserve((generator.offset(bounds[block + 1]) - generator.offset(bounds[block])) *
                    bytes_per_row);
        for (UserIndex user = bounds[block]; user < bounds[block + 1]; ++user) {
          const std::uint64_t n = generator.count(user);
          if (n == 0) continue;
          if (scratch.items.size() < n) {
            scratch.items.resize(n);
            scratch.ratings.resize(n);
            scratch.times.resize(n);
          }
          generator.GenerateUser(user, scratch, scratch.items.data(), scratch.ratings.data(),
                                 scratch.times.data());
          if (jsonl) {
            Rng review_rng(DeriveSeed(review_root, user));
            for (std::uint64_t k = 0; k < n; ++k) {
              AppendReviewLine(out, scratch.text, generator, user, scratch.items[k],
                               scratch.ratings[k], scratch.times[k], review_rng);
            }
          } else {
            for (std::uint64_t k = 0; k < n; ++k) {
              AppendCsvRow(out, delimiter, user, scratch.items[k], scratch.ratings[k],
                           scratch.times[k]);
            }
          }
        }
      }
    });
    for (std::size_t block = first; block < last; ++block) write(buffers[block - first]);
    progress.Report(generator.offset(bounds[last]), options.interactions, last == n_blocks);
  }
  closer.file = nullptr;
  if (std::fclose(file) != 0) {
    throw IoError(
        fmt::format("{}: write failed on close: {}", path.string(), std::strerror(errno)));
  }
}

}  // namespace recforge::data
