#include "item2vec.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

// word2vec.c's sigmoid table: kTableSize entries over [-kMaxExp, kMaxExp].
constexpr float kMaxExp = 6.0f;
constexpr int kTableSize = 1000;
// Most negatives per pair (the params' upper bound), for the fixed-size target buffer.
constexpr int kMaxNegatives = 64;

struct SigmoidTables {
  float sigmoid[kTableSize + 1];
  float softplus[kTableSize + 1];  // log(1 + e^x), for the reported loss
  SigmoidTables() {
    for (int i = 0; i <= kTableSize; ++i) {
      const double x = (static_cast<double>(i) / kTableSize * 2.0 - 1.0) * kMaxExp;
      sigmoid[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
      softplus[i] = static_cast<float>(std::log1p(std::exp(x)));
    }
  }
};
const SigmoidTables& Tables() {
  static const SigmoidTables tables;
  return tables;
}

// Walker / Vose alias table over the vocabulary: O(1) per draw from one 64-bit word.
class AliasTable {
 public:
  explicit AliasTable(const std::vector<double>& weights) {
    const std::size_t n = weights.size();
    probability_.assign(n, 1.0f);
    alias_.resize(n);
    std::iota(alias_.begin(), alias_.end(), 0u);
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    if (n == 0 || !(total > 0)) return;
    std::vector<double> scaled(n);
    std::vector<std::uint32_t> small, large;
    for (std::size_t k = 0; k < n; ++k) {
      scaled[k] = weights[k] * static_cast<double>(n) / total;
      (scaled[k] < 1.0 ? small : large).push_back(static_cast<std::uint32_t>(k));
    }
    while (!small.empty() && !large.empty()) {
      const std::uint32_t low = small.back();
      small.pop_back();
      const std::uint32_t high = large.back();
      probability_[low] = static_cast<float>(scaled[low]);
      alias_[low] = high;
      scaled[high] -= 1.0 - scaled[low];
      if (scaled[high] < 1.0) {
        large.pop_back();
        small.push_back(high);
      }
    }
  }
  std::uint32_t Sample(Rng& rng) const {
    const std::uint64_t word = rng();
    const auto k = static_cast<std::uint32_t>(((word >> 32) * probability_.size()) >> 32);
    const float u = static_cast<float>(word & 0xFFFFFFu) * 0x1.0p-24f;
    return u < probability_[k] ? k : alias_[k];
  }

 private:
  std::vector<float> probability_;
  std::vector<std::uint32_t> alias_;
};

// What every training step reads (shared by all threads, read-only).
struct Corpus {
  const std::uint32_t* tokens;        // vocabulary indices, sequence after sequence
  const std::uint64_t* offsets;       // sequence s is tokens[offsets[s], offsets[s + 1])
  const float* keep;                  // subsampling keep probability per vocabulary entry
  const AliasTable* negatives_table;  // count^ns_exponent
  std::size_t k;
  int window;
  int negatives;
};

// Rows touched in the current round (deterministic mode): a stamp per row and the list.
struct TouchedRows {
  std::vector<std::uint32_t> stamp;
  std::vector<std::uint32_t> rows;
  void Mark(std::uint32_t row, std::uint32_t round) {
    if (stamp[row] != round) {
      stamp[row] = round;
      rows.push_back(row);
    }
  }
};

// One thread's state.
struct Worker {
  Rng rng;
  std::vector<std::uint32_t> kept;  // the subsampled sequence
  double loss = 0;
  std::uint64_t pairs = 0;
  std::uint64_t words_done = 0;  // shard items processed, over all epochs
  // Deterministic mode with several threads: private copies and the rows they touched.
  std::vector<float> input, output;
  TouchedRows touched_input, touched_output;
};

// Trains one sequence on (input, output). kTrack marks touched rows for the merge.
template <bool kTrack>
void TrainSequence(const Corpus& corpus, std::size_t sequence, float lr, float* input,
                   float* output, Worker& worker, std::uint32_t round) {
  const SigmoidTables& tables = Tables();
  const kernels::SigmoidTable sigmoid{tables.sigmoid, tables.softplus, kTableSize, kMaxExp};
  const std::size_t k = corpus.k;
  std::vector<std::uint32_t>& kept = worker.kept;
  kept.clear();
  for (std::uint64_t at = corpus.offsets[sequence]; at < corpus.offsets[sequence + 1]; ++at) {
    const std::uint32_t token = corpus.tokens[at];
    const float keep = corpus.keep[token];
    if (keep >= 1.0f || worker.rng.UniformFloat() < keep) kept.push_back(token);
  }
  const std::size_t n = kept.size();
  if (n < 2) return;
  std::uint32_t targets[kMaxNegatives + 1];
  double loss = 0;
  for (std::size_t pos = 0; pos < n; ++pos) {
    const std::size_t reach =
        static_cast<std::size_t>(corpus.window) - worker.rng.Below(static_cast<std::uint64_t>(corpus.window));
    const std::size_t first = pos >= reach ? pos - reach : 0;
    const std::size_t last = std::min(n - 1, pos + reach);
    const std::uint32_t centre = kept[pos];
    for (std::size_t at = first; at <= last; ++at) {
      if (at == pos) continue;
      const std::uint32_t context = kept[at];
      float* in = input + static_cast<std::size_t>(context) * k;
      // Draw the negatives first and prefetch their rows (random rows of a large
      // output matrix are the cache misses of this loop).
      int n_targets = 1;
      targets[0] = centre;
      for (int d = 0; d < corpus.negatives; ++d) {
        const std::uint32_t target = corpus.negatives_table->Sample(worker.rng);
        if (target == centre) continue;
        targets[n_targets++] = target;
        kernels::PrefetchBytes(output + static_cast<std::size_t>(target) * k, k * sizeof(float));
      }
      loss += kernels::SkipGramStep(in, output, k, targets, n_targets, lr, sigmoid);
      if constexpr (kTrack) {
        for (int t = 0; t < n_targets; ++t) worker.touched_output.Mark(targets[t], round);
        worker.touched_input.Mark(context, round);
      }
      ++worker.pairs;
    }
  }
  worker.loss += loss;
}

// Splits [0, n_sequences) into `parts` contiguous ranges of about equal token counts:
// range t is [bounds[t], bounds[t + 1]).
std::vector<std::size_t> BalancedBounds(const std::vector<std::uint64_t>& offsets, int parts) {
  const std::size_t n_sequences = offsets.size() - 1;
  const std::uint64_t total = offsets.back();
  std::vector<std::size_t> bounds(static_cast<std::size_t>(parts) + 1, n_sequences);
  bounds[0] = 0;
  std::size_t sequence = 0;
  for (int t = 1; t < parts; ++t) {
    const std::uint64_t goal = total * static_cast<std::uint64_t>(t) / static_cast<std::uint64_t>(parts);
    while (sequence < n_sequences && offsets[sequence] < goal) ++sequence;
    bounds[t] = sequence;
  }
  return bounds;
}

// Folds each thread's round into the master rows (deterministic mode): for every row
// touched by any thread, master = base + sum over threads in order of (copy - base),
// then every copy takes the result. Rows are independent, so the parallel loop over
// rows gives the same bits for any schedule.
void MergeRound(std::vector<Worker>& workers, bool output_side, float* master, std::size_t k,
                std::vector<std::uint32_t>& union_stamp, std::vector<std::uint32_t>& union_rows,
                std::uint32_t round, int threads) {
  union_rows.clear();
  for (Worker& worker : workers) {
    TouchedRows& touched = output_side ? worker.touched_output : worker.touched_input;
    for (std::uint32_t row : touched.rows) {
      if (union_stamp[row] != round) {
        union_stamp[row] = round;
        union_rows.push_back(row);
      }
    }
  }
  constexpr std::size_t kRowsPerTask = 256;
  const std::size_t tasks = (union_rows.size() + kRowsPerTask - 1) / kRowsPerTask;
  ParallelFor<std::size_t>(0, tasks, threads, [&](std::size_t task) {
    std::vector<float> base(k);
    const std::size_t end = std::min(union_rows.size(), (task + 1) * kRowsPerTask);
    for (std::size_t j = task * kRowsPerTask; j < end; ++j) {
      const std::uint32_t row = union_rows[j];
      float* merged = master + static_cast<std::size_t>(row) * k;
      std::copy_n(merged, k, base.data());
      for (Worker& worker : workers) {
        const TouchedRows& touched = output_side ? worker.touched_output : worker.touched_input;
        if (touched.stamp[row] != round) continue;
        const float* copy = (output_side ? worker.output : worker.input).data() + static_cast<std::size_t>(row) * k;
        for (std::size_t x = 0; x < k; ++x) merged[x] += copy[x] - base[x];
      }
      for (Worker& worker : workers) {
        float* copy = (output_side ? worker.output : worker.input).data() + static_cast<std::size_t>(row) * k;
        std::copy_n(merged, k, copy);
      }
    }
  });
  for (Worker& worker : workers) (output_side ? worker.touched_output : worker.touched_input).rows.clear();
}

}  // namespace

std::vector<ParamField> Item2VecModel::Fields() {
  return {
      IntParam("factors", 64, 1, 4096, "Vector size", {"dim", "vector_size", "size", "k"}),
      IntParam("window", 5, 1, 1000,
               "Largest context distance (each position draws its window in [1, window])"),
      IntParam("negatives", 5, 1, kMaxNegatives, "Negative samples per (context, item) pair",
               {"negative", "neg"}),
      FloatParam("sample", 1e-3, 0, 1,
                 "Frequent-item subsampling threshold (word2vec's sample; 0 = keep every item)"),
      FloatParam("ns_exponent", -0.5, -2, 2,
                 "Exponent of the item count in the negative distribution (word2vec: 0.75)"),
      IntParam("epochs", 20, 1, 100000, "Passes over the sequences", {"iter", "iterations", "iters"}),
      IntParam("min_count", 5, 1, 1000000000,
               "Items with fewer training occurrences get no vector (and leave the sequences)"),
      FloatParam("lr", 0.025, 1e-6, 10, "Initial learning rate (falls linearly to min_lr)",
                 {"alpha", "learning_rate"}),
      FloatParam("min_lr", 1e-4, 0, 10, "Final learning rate", {"min_alpha"}),
      BoolParam("hogwild", false,
                "Lock-free shared updates like word2vec/gensim (not deterministic); default: "
                "per-thread copies merged every sync_words items"),
      IntParam("sync_words", 10000, 1, 1000000000,
               "Deterministic mode: items each thread trains between merges"),
      ChoiceParam("scoring", "context", {"cosine", "dot", "context"},
                  "User / session scores: cosine to unit input vectors, dot with raw input "
                  "vectors, or dot with output (context) vectors"),
      IntParam("history", 10, 0, 1000000,
               "Most recent items averaged into a user / session vector (0 = all)",
               {"session_items"}),
      FloatParam("pop_weight", 0, 0, 10,
                 "Item bias pop_weight * log(count) added to user / session scores (0 = none)"),
      FloatParam("recency", 1.0, 0, 1,
                 "Weight factor per step back in the history (the j-th most recent weighs recency^j)"),
  };
}

bool Item2VecModel::HasVector(ItemIndex item) const {
  return item < item_counts_.size() && item_counts_[item] >= min_count_;
}

void Item2VecModel::FitImpl(const TrainingData& data, const Context& ctx,
                            const TrainCallback& callback) {
  const auto& p = params();
  const std::size_t k = static_cast<std::size_t>(p.Int("factors"));
  const int window = static_cast<int>(p.Int("window"));
  const int negatives = static_cast<int>(p.Int("negatives"));
  const double sample = p.Float("sample");
  const double ns_exponent = p.Float("ns_exponent");
  const int epochs = static_cast<int>(p.Int("epochs"));
  const auto min_count = static_cast<std::uint64_t>(p.Int("min_count"));
  const double lr0 = p.Float("lr");
  const double min_lr = p.Float("min_lr");
  const bool hogwild = p.Bool("hogwild");
  const auto sync_words = static_cast<std::uint64_t>(p.Int("sync_words"));
  const int threads = std::max(1, ctx.threads);
  const std::size_t n_users = data.n_users;
  const std::size_t n_items = data.n_items;
  UseSingleThreadedBlas();
  factors_ = k;

  // Each user's items ordered by (time, item): a counting sort of the train rows by
  // user, then a sort within each user.
  std::vector<std::uint64_t> offsets(n_users + 1, 0);
  std::vector<ItemIndex> sequence_items;
  if (data.train != nullptr) {
    const data::Interactions& train = *data.train;
    for (std::size_t row = 0; row < train.size(); ++row) {
      if (train.users[row] < n_users && train.items[row] < n_items) ++offsets[train.users[row] + 1];
    }
    for (std::size_t user = 0; user < n_users; ++user) offsets[user + 1] += offsets[user];
    std::vector<RowIndex> rows(offsets.back());
    std::vector<std::uint64_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::size_t row = 0; row < train.size(); ++row) {
      if (train.users[row] < n_users && train.items[row] < n_items) rows[fill[train.users[row]]++] = row;
    }
    ParallelFor<std::size_t>(0, n_users, threads, [&](std::size_t user) {
      std::sort(rows.begin() + static_cast<std::ptrdiff_t>(offsets[user]),
                rows.begin() + static_cast<std::ptrdiff_t>(offsets[user + 1]), [&](RowIndex a, RowIndex b) {
                  return train.times[a] != train.times[b] ? train.times[a] < train.times[b]
                                                          : train.items[a] < train.items[b];
                });
    }, Schedule::kDynamic, 256);
    sequence_items.resize(rows.size());
    for (std::size_t at = 0; at < rows.size(); ++at) sequence_items[at] = train.items[rows[at]];
  } else {
    const CsrMatrix& matrix = *data.user_items;
    for (std::size_t user = 0; user < n_users; ++user) offsets[user + 1] = offsets[user] + matrix.RowLength(user);
    sequence_items.assign(matrix.indices.begin(), matrix.indices.end());
  }

  // Vocabulary: items with at least min_count occurrences, in item order.
  item_counts_.assign(n_items, 0);
  for (ItemIndex item : sequence_items) ++item_counts_[item];
  std::vector<std::uint32_t> item_vocab(n_items, kInvalidIndex);
  std::vector<ItemIndex> vocab_items;
  for (std::size_t item = 0; item < n_items; ++item) {
    if (item_counts_[item] >= min_count) {
      item_vocab[item] = static_cast<std::uint32_t>(vocab_items.size());
      vocab_items.push_back(static_cast<ItemIndex>(item));
    }
  }
  const std::size_t n_vocab = vocab_items.size();
  // Tokens: the sequences with the cut items removed.
  std::vector<std::uint64_t> token_offsets(n_users + 1, 0);
  std::vector<std::uint32_t> tokens;
  tokens.reserve(sequence_items.size());
  for (std::size_t user = 0; user < n_users; ++user) {
    for (std::uint64_t at = offsets[user]; at < offsets[user + 1]; ++at) {
      const std::uint32_t token = item_vocab[sequence_items[at]];
      if (token != kInvalidIndex) tokens.push_back(token);
    }
    token_offsets[user + 1] = tokens.size();
  }
  const std::uint64_t total_words = tokens.size();

  // Subsampling (word2vec.c / gensim: t = sample * retained words) and negatives.
  std::vector<float> keep(n_vocab, 1.0f);
  if (sample > 0) {
    const double threshold = sample * static_cast<double>(total_words);
    for (std::size_t v = 0; v < n_vocab; ++v) {
      const double count = item_counts_[vocab_items[v]];
      keep[v] = static_cast<float>(std::min(1.0, (std::sqrt(count / threshold) + 1.0) * threshold / count));
    }
  }
  std::vector<double> weights(n_vocab);
  for (std::size_t v = 0; v < n_vocab; ++v) weights[v] = std::pow(static_cast<double>(item_counts_[vocab_items[v]]), ns_exponent);
  const AliasTable negatives_table(weights);

  // Input vectors uniform in [-0.5, 0.5) / k (row v from its own stream), outputs 0.
  std::vector<float> input(n_vocab * k), output(n_vocab * k, 0.0f);
  const std::uint64_t init_seed = DeriveSeed(ctx.seed, 1);
  ParallelFor<std::size_t>(0, n_vocab, threads, [&](std::size_t v) {
    Rng rng(DeriveSeed(init_seed, v));
    for (std::size_t x = 0; x < k; ++x) input[v * k + x] = (rng.UniformFloat() - 0.5f) / static_cast<float>(k);
  }, Schedule::kStatic);

  const Corpus corpus{tokens.data(), token_offsets.data(), keep.data(), &negatives_table, k, window, negatives};
  const int shards = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads), std::max<std::size_t>(n_users, 1)));
  const std::vector<std::size_t> bounds = BalancedBounds(token_offsets, shards);
  const bool copies = !hogwild && shards > 1;
  std::vector<Worker> workers(static_cast<std::size_t>(shards));
  std::vector<std::uint64_t> shard_words(static_cast<std::size_t>(shards));
  for (int t = 0; t < shards; ++t) {
    Worker& worker = workers[t];
    shard_words[t] = token_offsets[bounds[t + 1]] - token_offsets[bounds[t]];
    if (copies) {
      worker.input = input;
      worker.output = output;
      worker.touched_input.stamp.assign(n_vocab, kInvalidIndex);
      worker.touched_output.stamp.assign(n_vocab, kInvalidIndex);
    }
  }
  // Deterministic rounds: thread t's round r is its sequences starting in
  // [r * sync_words, (r + 1) * sync_words) of its shard's items.
  std::vector<std::vector<std::size_t>> round_starts(static_cast<std::size_t>(shards));
  std::size_t n_rounds = 1;
  for (int t = 0; t < shards; ++t) {
    auto& starts = round_starts[t];
    for (std::size_t s = bounds[t]; s < bounds[t + 1]; ++s) {
      const std::uint64_t into = token_offsets[s] - token_offsets[bounds[t]];
      while (starts.size() <= into / sync_words) starts.push_back(s);
    }
    starts.push_back(bounds[t + 1]);
    n_rounds = std::max(n_rounds, starts.size() - 1);
  }
  std::vector<std::uint32_t> union_input(copies ? n_vocab : 0, kInvalidIndex);
  std::vector<std::uint32_t> union_output(copies ? n_vocab : 0, kInvalidIndex);
  std::vector<std::uint32_t> union_rows;

  const std::uint64_t train_seed = DeriveSeed(ctx.seed, 2);
  const double planned = static_cast<double>(epochs);
  auto rate = [&](double progress) {
    return static_cast<float>(std::max(min_lr, lr0 - (lr0 - min_lr) * progress));
  };
  std::uint32_t round_id = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < shards; ++t) {
      workers[t].rng.Seed(DeriveSeed(train_seed, static_cast<std::uint64_t>(epoch) * 65536 + static_cast<std::uint64_t>(t)));
      workers[t].loss = 0;
      workers[t].pairs = 0;
    }
    if (!copies) {
      // One shared copy: sequential for one thread, Hogwild for several.
      std::atomic<std::uint64_t> global_done{static_cast<std::uint64_t>(epoch - 1) * total_words};
      const double global_total = planned * static_cast<double>(std::max<std::uint64_t>(total_words, 1));
      ParallelRegion(shards, [&](int t) {
        Worker& worker = workers[t];
        for (std::size_t s = bounds[t]; s < bounds[t + 1]; ++s) {
          const double done = static_cast<double>(global_done.load(std::memory_order_relaxed));
          TrainSequence<false>(corpus, s, rate(done / global_total), input.data(), output.data(), worker, 0);
          global_done.fetch_add(token_offsets[s + 1] - token_offsets[s], std::memory_order_relaxed);
        }
      });
    } else {
      for (std::size_t round = 0; round < n_rounds; ++round) {
        ++round_id;
        ParallelRegion(shards, [&](int t) {
          Worker& worker = workers[t];
          const auto& starts = round_starts[t];
          if (round + 1 >= starts.size()) return;
          const double total = planned * static_cast<double>(std::max<std::uint64_t>(shard_words[t], 1));
          for (std::size_t s = starts[round]; s < starts[round + 1]; ++s) {
            TrainSequence<true>(corpus, s, rate(static_cast<double>(worker.words_done) / total),
                                worker.input.data(), worker.output.data(), worker, round_id);
            worker.words_done += token_offsets[s + 1] - token_offsets[s];
          }
        });
        MergeRound(workers, false, input.data(), k, union_input, union_rows, round_id, threads);
        MergeRound(workers, true, output.data(), k, union_output, union_rows, round_id, threads);
      }
    }
    double loss = 0;
    std::uint64_t pairs = 0;
    for (const Worker& worker : workers) {  // fixed order
      loss += worker.loss;
      pairs += worker.pairs;
    }
    const double mean_loss = pairs > 0 ? loss / static_cast<double>(pairs) : 0.0;
    if (!std::isfinite(mean_loss)) {
      throw InvalidArgument(family() + ": training diverged (non-finite loss); lower lr (now " +
                            p.values().at("lr") + ")");
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double words_per_second = seconds > 0 ? static_cast<double>(total_words) / seconds : 0.0;
    ctx.log().Debug("item2vec epoch {}/{}: loss {:.5f}, {:.0f} words/s, {:.3f} s", epoch, epochs,
                    mean_loss, words_per_second, seconds);
    if (callback || epoch == epochs) {
      // The model state: Q (and the kept input vectors) from the vocabulary rows.
      const std::string& scoring = p.Choice("scoring");
      item_factors_.assign(n_items * k, 0.0f);
      input_vectors_.clear();
      if (scoring == "context") input_vectors_.assign(n_items * k, 0.0f);
      for (std::size_t v = 0; v < n_vocab; ++v) {
        float* row = item_factors_.data() + std::size_t{vocab_items[v]} * k;
        const float* in = input.data() + v * k;
        if (scoring == "context") {
          std::copy_n(output.data() + v * k, k, row);
          std::copy_n(in, k, input_vectors_.data() + std::size_t{vocab_items[v]} * k);
        } else {
          std::copy_n(in, k, row);
          if (scoring == "cosine") {
            const float norm = std::sqrt(kernels::SquaredNorm(row, k));
            if (norm > 0) kernels::Scale(1.0f / norm, row, k);
          }
        }
      }
      UpdateInputNorms();
      global_bias_ = 0.0f;
      user_bias_.clear();
      item_bias_.clear();
      const double pop_weight = p.Float("pop_weight");
      if (pop_weight > 0) {
        // log of the count (SGNS scores estimate PMI; adding log p(item) turns them into
        // log p(item | history) up to a constant). Items without a vector: count 1/2.
        item_bias_.resize(n_items);
        for (std::size_t item = 0; item < n_items; ++item) {
          const double count = item_counts_[item] >= min_count ? item_counts_[item] : 0.5;
          item_bias_[item] = static_cast<float>(pop_weight * std::log(count));
        }
      }
      ComputeUserVectors(offsets, sequence_items, threads);
      FactorsChanged();
    }
    if (callback) {
      EpochReport report = EpochReport::WithLoss(epoch, epochs, seconds, mean_loss);
      report.metrics["words_per_second"] = words_per_second;
      callback(*this, report);
    }
  }
}

namespace {

// Weighted mean of the last `history` rows of `items` (oldest first) that pass
// `has_vector`, rows from `row_of`; false when none does (vector left at 0).
template <typename HasVector, typename RowOf>
bool RecentMean(std::span<const ItemIndex> items, std::size_t history, float recency, std::size_t k,
                HasVector&& has_vector, RowOf&& row_of, float* vector) {
  std::fill_n(vector, k, 0.0f);
  float weight = 1.0f, total = 0.0f;
  std::size_t used = 0;
  for (std::size_t j = items.size(); j-- > 0;) {
    if (history > 0 && used == history) break;
    if (!has_vector(items[j])) continue;
    kernels::Axpy(weight, row_of(items[j]), vector, k);
    total += weight;
    weight *= recency;
    ++used;
  }
  if (!(total > 0)) {
    std::fill_n(vector, k, 0.0f);
    return false;
  }
  kernels::Scale(1.0f / total, vector, k);
  return true;
}

}  // namespace

const float* Item2VecModel::SimilarityRow(ItemIndex item) const {
  return input_vectors_.empty() ? ItemVector(item) : input_vectors_.data() + std::size_t{item} * factors_;
}

void Item2VecModel::ComputeUserVectors(const std::vector<std::uint64_t>& offsets,
                                       const std::vector<ItemIndex>& sequence_items, int threads) {
  const std::size_t k = factors_;
  const std::size_t n_users = offsets.size() - 1;
  const auto history = static_cast<std::size_t>(params().Int("history"));
  const auto recency = static_cast<float>(params().Float("recency"));
  user_factors_.assign(n_users * k, 0.0f);
  ParallelFor<std::size_t>(0, n_users, threads, [&](std::size_t user) {
    std::span<const ItemIndex> items(sequence_items.data() + offsets[user], offsets[user + 1] - offsets[user]);
    RecentMean(items, history, recency, k, [&](ItemIndex item) { return HasVector(item); },
               [&](ItemIndex item) { return SimilarityRow(item); }, user_factors_.data() + user * k);
  }, Schedule::kDynamic, 256);
}

bool Item2VecModel::FoldIn(std::span<const ItemIndex> items, std::span<const float>, float* user_vector,
                           float* user_bias) const {
  *user_bias = 0.0f;
  const auto history = static_cast<std::size_t>(params().Int("history"));
  const auto recency = static_cast<float>(params().Float("recency"));
  RecentMean(items, history, recency, factors_, [&](ItemIndex item) { return HasVector(item); },
             [&](ItemIndex item) { return SimilarityRow(item); }, user_vector);
  return true;
}

RankedItems Item2VecModel::SimilarItems(ItemIndex item, std::size_t k) const {
  if (input_vectors_.empty()) return FactorModel::SimilarItems(item, k);
  RankedItems result;
  const std::size_t n = n_items();
  if (item >= n || factors_ == 0 || input_norms_.size() != n) return result;
  std::vector<float> scores(n);
  kernels::GemmNT(1, n, factors_, 1.0f, SimilarityRow(item), input_vectors_.data(), 0.0f, scores.data());
  const float own_norm = input_norms_[item];
  for (std::size_t other = 0; other < n; ++other) {
    const float denominator = own_norm * input_norms_[other];
    scores[other] = denominator > 0.0f ? scores[other] / denominator : 0.0f;
  }
  scores[item] = -std::numeric_limits<float>::infinity();
  TopK(scores.data(), n, k, result);
  return result;
}

void Item2VecModel::SaveExtra(ModelWriter& writer) const {
  writer.WriteVector(item_counts_);
  writer.WriteVector(input_vectors_);
}

void Item2VecModel::LoadExtra(ModelReader& reader) {
  item_counts_ = reader.ReadVector<std::uint32_t>();
  input_vectors_ = reader.ReadVector<float>();
  const bool context = params().Choice("scoring") == "context";
  if (item_counts_.size() != n_items() || input_vectors_.size() != (context ? n_items() * factors_ : 0)) {
    throw FormatError(reader.source() + ": item2vec model: item counts or input vectors have the wrong size");
  }
  UpdateInputNorms();
}

void Item2VecModel::UpdateInputNorms() {
  input_norms_.clear();
  for (std::size_t item = 0; !input_vectors_.empty() && item < n_items(); ++item) {
    input_norms_.push_back(std::sqrt(kernels::SquaredNorm(SimilarityRow(static_cast<ItemIndex>(item)), factors_)));
  }
}

}  // namespace recforge::models
