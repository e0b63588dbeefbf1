#include "topic/lda_content.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "recforge/core/error.h"
#include "recforge/models/model_io.h"

namespace recforge::models {

namespace topic {

namespace {
const std::unordered_set<std::string_view>& StopWords() {
  static const std::unordered_set<std::string_view> words = {
      "a",   "an",  "and", "the", "of",  "in",  "on",  "at",  "to",  "for", "with", "from", "by",
      "is",  "it",  "its", "or",  "as",  "be",  "are", "was", "this", "that", "my", "me",   "you",
      "your", "we", "our", "his", "her", "he",  "she", "they", "them", "not", "no", "do",   "up",
      "la",  "le",  "les", "el",  "los", "las", "de",  "del", "du",  "des", "der", "die",  "das",
      "und", "et",  "il",  "un",  "une", "ii",  "iii", "vs"};
  return words;
}
}  // namespace

std::vector<std::string> TitleTokens(std::string_view title) {
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (current.size() >= 2 && !StopWords().contains(current) &&
        !std::all_of(current.begin(), current.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      tokens.push_back(current);
    }
    current.clear();
  };
  for (char raw : title) {
    const auto c = static_cast<unsigned char>(raw);
    if (c >= 'A' && c <= 'Z') {
      current.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
      current.push_back(raw);
    } else {
      flush();
    }
  }
  flush();
  return tokens;
}

}  // namespace topic

std::vector<ParamField> LdaContentModel::Fields() {
  return {
      IntParam("topics", 16, 1, 1024, "Number of topics K", {"k", "n_topics", "num_topics", "n_components"}),
      FloatParam("alpha", 0.1, 1e-6, 1e3, "Symmetric Dirichlet prior of an item's topic mixture",
                 {"doc_topic_prior"}),
      FloatParam("eta", 0.05, 1e-6, 1e3, "Symmetric Dirichlet prior of a topic's token distribution",
                 {"beta", "topic_word_prior"}),
      IntParam("passes", 50, 1, 100000, "Variational EM passes over all items (E-step + M-step)",
               {"iterations", "iters", "epochs", "max_iter"}),
      IntParam("e_step_iterations", 100, 1, 100000, "Cap of inner iterations per item and pass",
               {"max_doc_update_iter", "inner_iterations"}),
      FloatParam("e_step_tol", 1e-3, 0, 1e3,
                 "An item's E-step stops when the mean |change| of its gamma is below this",
                 {"mean_change_tol", "gamma_threshold"}),
      ChoiceParam("fields", "all", {"all", "title", "categories"}, "Metadata used as tokens"),
      FloatParam("category_weight", 1.0, 1e-3, 1e3, "Count of one category token (title words count 1)"),
      IntParam("min_count", 2, 1, 1000000, "Keep a metadata token present in at least this many items",
               {"min_df"}),
      FloatParam("max_doc_fraction", 0.5, 1e-6, 1, "Drop a metadata token present in more than this fraction "
                 "of the items with tokens", {"max_df"}),
      ChoiceParam("collaborative", "auto", {"auto", "always", "never"},
                  "Add the item's users as tokens: auto = only when there is no metadata, always, never "
                  "(never + no metadata is an error)"),
      IntParam("burn_in", -1, -1, 100000,
               "Passes whose E-step restarts every item's gamma at alpha + n / topics (explores; later passes "
               "warm-start gamma: faster, but a item then rarely changes topics); -1 = every pass",
               {"restart_passes"}),
      BoolParam("report_bound", true, "Evaluate the evidence lower bound every pass for the training callback"),
  };
}

LdaContentModel::LdaContentModel(ParamValues params) : FactorModel(std::move(params)) {
  const ParamValues& p = this->params();
  options_.topics = static_cast<std::size_t>(p.Int("topics"));
  options_.alpha = p.Float("alpha");
  options_.eta = p.Float("eta");
  options_.passes = static_cast<int>(p.Int("passes"));
  options_.e_step_iterations = static_cast<int>(p.Int("e_step_iterations"));
  options_.e_step_tol = p.Float("e_step_tol");
  options_.compute_bound = p.Bool("report_bound");
  {
    const long long burn_in = p.Int("burn_in");
    options_.restart_passes = burn_in < 0 ? options_.passes : static_cast<int>(burn_in);
  }
}

void LdaContentModel::FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  UseSingleThreadedBlas();
  const ParamValues& p = params();
  const std::size_t n_items = data.n_items;
  const std::string& fields = p.Choice("fields");
  const bool use_title = fields != "categories";
  const bool use_categories = fields != "title";
  const auto category_weight = static_cast<float>(p.Float("category_weight"));

  // Metadata tokens per item, with ids in order of first appearance (items in index order).
  std::unordered_map<std::string, std::uint32_t> token_ids;
  std::vector<std::string> tokens;
  std::vector<std::vector<std::pair<std::uint32_t, float>>> item_tokens(n_items);
  if (data.item_info != nullptr && data.item_ids != nullptr) {
    data.item_ids->BuildIndex();
    std::vector<const data::ItemInfo*> by_item(n_items, nullptr);
    for (const data::ItemInfo& info : *data.item_info) {
      auto index = data.item_ids->Find(info.item_id);
      if (index && *index < n_items && by_item[*index] == nullptr) by_item[*index] = &info;
    }
    auto add = [&](std::size_t item, std::string token, float count) {
      auto [it, inserted] = token_ids.try_emplace(std::move(token), static_cast<std::uint32_t>(tokens.size()));
      if (inserted) tokens.push_back(it->first);
      item_tokens[item].emplace_back(it->second, count);
    };
    for (std::size_t item = 0; item < n_items; ++item) {
      const data::ItemInfo* info = by_item[item];
      if (info == nullptr) continue;
      if (use_title) {
        for (std::string& word : topic::TitleTokens(info->title)) add(item, "w:" + word, 1.0f);
      }
      if (use_categories) {
        for (const std::string& category : info->categories) {
          std::string lower = category;
          for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
          if (!lower.empty()) add(item, "c:" + lower, category_weight);
        }
      }
    }
  }
  // Document frequencies, then the kept vocabulary (first-appearance order).
  std::vector<std::uint32_t> frequency(tokens.size(), 0);
  std::size_t items_with_tokens = 0;
  for (auto& list : item_tokens) {
    std::sort(list.begin(), list.end());
    std::uint32_t last = UINT32_MAX;
    for (const auto& [token, count] : list) {
      if (token != last) ++frequency[token];
      last = token;
    }
    items_with_tokens += list.empty() ? 0 : 1;
  }
  const auto min_count = static_cast<std::uint32_t>(p.Int("min_count"));
  const double max_items = p.Float("max_doc_fraction") * static_cast<double>(items_with_tokens);
  std::vector<std::uint32_t> remap(tokens.size(), UINT32_MAX);
  std::vector<std::string> vocabulary;
  for (std::uint32_t token = 0; token < tokens.size(); ++token) {
    if (frequency[token] >= min_count && static_cast<double>(frequency[token]) <= max_items) {
      remap[token] = static_cast<std::uint32_t>(vocabulary.size());
      vocabulary.push_back(tokens[token]);
    }
  }
  const std::size_t metadata_words = vocabulary.size();
  const std::string& collaborative = p.Choice("collaborative");
  bool add_users = collaborative == "always" || (collaborative == "auto" && metadata_words == 0);
  if (metadata_words == 0 && !add_users) {
    throw InvalidArgument(fmt::format(
        "lda-content: the training data has no usable item metadata (TrainingData.item_info: {} entries "
        "with titles / categories, {} tokens kept with min_count={}, fields={}); ingest an item file "
        "(u.item, movies.csv, meta_*.jsonl: `data ingest --metadata`) or set collaborative=auto",
        data.item_info == nullptr ? 0 : data.item_info->size(), metadata_words, min_count, fields));
  }
  token_source_ = (metadata_words > 0 ? 1 : 0) | (add_users ? 2 : 0);
  if (add_users) {
    for (std::size_t u = 0; u < data.n_users; ++u) vocabulary.push_back(fmt::format("u:{}", u));
  }

  // The items x vocabulary corpus.
  CsrMatrix docs;
  docs.n_rows = n_items;
  docs.n_cols = vocabulary.size();
  docs.indptr.assign(n_items + 1, 0);
  for (std::size_t item = 0; item < n_items; ++item) {
    std::uint32_t last = UINT32_MAX;
    for (const auto& [token, count] : item_tokens[item]) {
      const std::uint32_t word = remap[token];
      if (word == UINT32_MAX) continue;
      if (word == last) {
        docs.values.back() += count;  // a repeated title word
        continue;
      }
      docs.indices.push_back(word);
      docs.values.push_back(count);
      last = word;
    }
    if (add_users && item < data.item_users.n_rows) {
      for (std::uint32_t user : data.item_users.RowIndices(item)) {
        docs.indices.push_back(static_cast<std::uint32_t>(metadata_words + user));
        docs.values.push_back(1.0f);
      }
    }
    docs.indptr[item + 1] = docs.indices.size();
  }
  // Metadata ids follow first appearance, not sorted order: sort each row (CSR contract).
  for (std::size_t item = 0; item < n_items; ++item) {
    const std::uint64_t begin = docs.indptr[item], end = docs.indptr[item + 1];
    std::vector<std::pair<std::uint32_t, float>> row;
    for (std::uint64_t e = begin; e < end; ++e) row.emplace_back(docs.indices[e], docs.values[e]);
    std::sort(row.begin(), row.end());
    for (std::uint64_t e = begin; e < end; ++e) {
      docs.indices[e] = row[e - begin].first;
      docs.values[e] = row[e - begin].second;
    }
  }
  vocabulary_size_ = vocabulary.size();

  const std::size_t k = options_.topics;
  factors_ = k;
  global_bias_ = 0.0f;
  user_bias_.clear();
  item_bias_.clear();
  const CsrMatrix& user_items = *data.user_items;
  auto publish = [&](const std::vector<float>& gamma) {
    item_factors_ = gamma;
    topic::NormaliseRows(item_factors_, k);
    user_factors_.assign(data.n_users * k, 0.0f);
    for (std::size_t u = 0; u < data.n_users; ++u) {
      auto row = user_items.RowIndices(u);
      if (row.empty()) continue;
      float* out = user_factors_.data() + u * k;
      for (std::uint32_t item : row) {
        const float* theta = item_factors_.data() + std::size_t{item} * k;
        for (std::size_t t = 0; t < k; ++t) out[t] += theta[t];
      }
      const float inv = 1.0f / static_cast<float>(row.size());
      for (std::size_t t = 0; t < k; ++t) out[t] *= inv;
    }
    FactorsChanged();
  };
  std::function<void(const topic::VbPassReport&, const topic::TopicWords&, const std::vector<float>&)> on_pass;
  if (callback) {
    on_pass = [&](const topic::VbPassReport& pass, const topic::TopicWords&, const std::vector<float>& gamma) {
      publish(gamma);
      EpochReport report;
      report.epoch = pass.pass;
      report.epochs = options_.passes;
      report.seconds = pass.seconds;
      if (options_.compute_bound && pass.tokens > 0) {
        report.loss = -pass.bound / pass.tokens;
        report.has_loss = true;
        report.metrics["perplexity_bound"] = std::exp(report.loss);
      }
      report.metrics["inner_iterations"] = pass.mean_inner_iterations;
      callback(*this, report);
    };
  }
  topic::VbResult result = topic::FitVb(docs, options_, ctx.seed, ctx.threads, on_pass);
  publish(result.gamma);
  vocabulary_ = std::move(vocabulary);
  topic_tokens_.assign(vocabulary_.size() * k, 0.0f);
  result.words.TopicWordProbabilities(topic_tokens_.data());
}

std::vector<std::string> LdaContentModel::TopTokens(std::size_t topic, std::size_t n) const {
  const std::size_t k = options_.topics;
  if (topic >= k || vocabulary_.empty()) return {};
  std::vector<std::uint32_t> order(vocabulary_.size());
  std::iota(order.begin(), order.end(), 0u);
  n = std::min(n, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](std::uint32_t a, std::uint32_t b) {
                      const float pa = topic_tokens_[std::size_t{a} * k + topic];
                      const float pb = topic_tokens_[std::size_t{b} * k + topic];
                      return pa != pb ? pa > pb : a < b;
                    });
  std::vector<std::string> out;
  for (std::size_t r = 0; r < n; ++r) out.push_back(vocabulary_[order[r]]);
  return out;
}

bool LdaContentModel::FoldIn(std::span<const ItemIndex> items, std::span<const float>, float* user_vector,
                             float* user_bias) const {
  *user_bias = 0.0f;
  const std::size_t k = factors_;
  std::fill(user_vector, user_vector + k, 0.0f);
  if (items.empty() || item_factors_.size() != n_items() * k) return true;
  for (ItemIndex item : items) {
    const float* theta = ItemVector(item);
    for (std::size_t t = 0; t < k; ++t) user_vector[t] += theta[t];
  }
  const float inv = 1.0f / static_cast<float>(items.size());
  for (std::size_t t = 0; t < k; ++t) user_vector[t] *= inv;
  return true;
}

void LdaContentModel::SaveExtra(ModelWriter& writer) const {
  writer.Write<std::uint8_t>(static_cast<std::uint8_t>(token_source_));
  writer.Write<std::uint64_t>(vocabulary_size_);
}

void LdaContentModel::LoadExtra(ModelReader& reader) {
  token_source_ = reader.Read<std::uint8_t>();
  vocabulary_size_ = reader.Read<std::uint64_t>();
  if (token_source_ < 1 || token_source_ > 3) {
    throw FormatError(fmt::format("{}: lda-content token source {} (expected 1, 2 or 3)", reader.source(),
                                  token_source_));
  }
}

}  // namespace recforge::models
