// `recforge data synth`: a deterministic synthetic interaction generator for the demo
// and for scale tests (up to at least 20M interactions).
//
// Model: users and items have latent factors (dimension `factors`) drawn from a
// seeded normal distribution; every item belongs to one of `categories` categories
// and items of a category share a category factor, so the data has structure a
// recommender can learn. Item popularity follows a Zipf law (exponent `zipf`) over a
// seeded permutation of item ids. For each interaction: a user (activity also Zipf-
// skewed), then candidate items drawn by popularity, the one with the best
// user·item affinity (plus noise) wins. Ratings 1..5 come from the affinity;
// timestamps grow per user over the time span. Same options => identical output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"

namespace recforge::data {

struct SynthOptions {
  std::uint64_t interactions = 100'000;  // distinct (user, item) pairs to produce
  std::uint32_t users = 2'000;
  std::uint32_t items = 1'000;
  std::uint32_t categories = 20;
  std::uint32_t factors = 8;
  double zipf = 1.0;
  std::uint32_t candidates = 8;       // popularity draws per interaction, best affinity wins
  std::int64_t start_time = 1'600'000'000;  // Unix seconds
  std::int64_t time_span = 365LL * 24 * 3600;
  std::uint64_t seed = 42;

  void Validate() const;  // throws InvalidArgument naming the option
  nlohmann::json ToJson() const;
};

// Generates a dataset in memory: ids "u<k>" / "i<k>", item metadata with a title and
// one category per item.
Dataset Synthesize(const SynthOptions& options, const Context& ctx);

// Text outputs written straight from the generator (for parser benchmarks and peers):
//   csv:        user_id,item_id,rating,timestamp  (header, Unix seconds)
//   tsv:        user<TAB>item<TAB>rating<TAB>timestamp (no header)
//   amazon-2023-jsonl: Amazon Reviews 2023 review lines (user_id, parent_asin, asin,
//               rating, timestamp in ms, title, text, verified_purchase, helpful_vote, images)
enum class SynthTextFormat { kCsv, kTsv, kAmazon2023Jsonl };
SynthTextFormat ParseSynthTextFormat(std::string_view name);
void WriteSynthText(const SynthOptions& options, SynthTextFormat format, const fs::path& path,
                    const Context& ctx);

}  // namespace recforge::data
