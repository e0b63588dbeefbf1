// `recforge data synth`: a deterministic synthetic interaction generator for the demo
// and for scale tests (20M interactions in a few seconds on 2 threads).
//
// Model: every item belongs to one of `categories` categories; category factors are
// standard normal, item factors mix their category's factor with individual noise, and
// each user mixes the factor of one favourite category with individual noise, so the
// data has structure a recommender can learn. Item popularity follows a Zipf law
// (exponent `zipf`) over a seeded permutation of the items.
//
// Per-user counts: every user gets min(5, interactions / users) rows, the rest is
// spread by Zipf-skewed activity (exponent zipf / 2 over a seeded user permutation),
// and no user takes more than half the catalogue unless interactions / users demands
// it. The counts add up to exactly `interactions` distinct (user, item) pairs.
//
// Each interaction: `candidates` distinct not-yet-chosen items are drawn, ~20% from the
// popularity of the user's favourite category and the rest from the global popularity;
// the one with the best user·item affinity plus uniform noise wins. Ratings are whole
// stars 1..5 from the affinity plus user and item biases and noise (mean ~3.6, 4 the
// most common). Timestamps are Unix seconds in [start_time, start_time + time_span),
// strictly increasing within a user (when the span allows it) and bursty, within a
// per-user activity window.
//
// Rows are grouped by user (user 0 first), in time order within a user. Every user is
// generated from its own seed derived from `seed`, so the output is identical for any
// thread count; the same options always give the same bytes.
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
  std::uint32_t candidates = 8;             // candidate items per interaction, best affinity wins
  std::int64_t start_time = 1'600'000'000;  // Unix seconds
  std::int64_t time_span = 365LL * 24 * 3600;
  std::uint64_t seed = 42;

  // Throws InvalidArgument naming the option: users and items in 1..2^32 - 2,
  // interactions in 1..users * items, categories in 1..10^6, factors in 1..256,
  // candidates in 1..1024, zipf in 0..10, start_time and time_span >= 0.
  void Validate() const;
  nlohmann::json ToJson() const;
};

// Generates a dataset in memory: ids "u<k>" / "i<k>" for every user and item (users
// without rows when interactions < users keep their ids), item metadata for every item
// with a title ("Velora Compact Kettle") and one category name ("Home & Kitchen"; beyond
// 20 categories names repeat with a number: "Books 2"). meta: kind "raw", source
// "synth", parameters = options.ToJson(), parse_errors = an empty ErrorTally.
// Memory: the four columns (20 bytes per interaction) plus item factors.
// Throws InvalidArgument (Validate) for bad options.
Dataset Synthesize(const SynthOptions& options, const Context& ctx);

// Text outputs written straight from the generator (for parser benchmarks and peers),
// with exactly the rows of Synthesize in the same order. Streams blocks of users
// generated in parallel; memory stays at a few tens of MB whatever the size.
//   csv:        header user_id,item_id,rating,timestamp; rows u<k>,i<k>,<1..5>,<Unix s>
//   tsv:        the same rows tab-separated, no header
//   amazon-2023-jsonl: one Amazon Reviews 2023 review per line, keys in the real
//               order: rating (5.0), title, text (a few synthetic sentences, escaped
//               quotes, the odd "<br />"), images ([]), asin, parent_asin, user_id,
//               timestamp (ms), helpful_vote, verified_purchase. parent_asin is "B0" +
//               8 base-36 characters, unique per item; asin is a variant id for ~30% of
//               reviews; user_id is 'A' + 27 base-32 characters, unique per user.
//               ~500 bytes per line on average (2M reviews ~ 1 GB).
// Throws InvalidArgument for bad options, IoError when the file cannot be written.
enum class SynthTextFormat { kCsv, kTsv, kAmazon2023Jsonl };
// "csv" | "tsv" | "amazon-2023-jsonl"; throws InvalidArgument listing them.
SynthTextFormat ParseSynthTextFormat(std::string_view name);
void WriteSynthText(const SynthOptions& options, SynthTextFormat format, const fs::path& path,
                    const Context& ctx);

}  // namespace recforge::data
