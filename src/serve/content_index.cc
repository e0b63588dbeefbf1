#include "recforge/serve/content_index.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <unordered_map>

namespace recforge::serve {

std::vector<std::string> ContentIndex::Tokenize(const std::string& title) {
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (current.size() >= 2) tokens.push_back(current);
    current.clear();
  };
  for (char c : title) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      current.push_back(static_cast<char>(std::tolower(u)));
    } else {
      flush();
    }
  }
  flush();
  return tokens;
}

ContentIndex::ContentIndex(const std::vector<std::string>& titles,
                           const std::vector<std::vector<std::string>>& categories)
    : n_items_(std::max(titles.size(), categories.size())) {
  std::unordered_map<std::string, std::uint32_t> term_ids;
  std::vector<std::uint32_t> df;
  std::vector<std::vector<std::pair<std::uint32_t, float>>> rows(n_items_);
  std::unordered_map<std::uint32_t, float> tf;
  for (std::size_t i = 0; i < n_items_; ++i) {
    tf.clear();
    auto add_term = [&](std::string term) {
      auto [it, inserted] = term_ids.emplace(std::move(term), static_cast<std::uint32_t>(df.size()));
      if (inserted) df.push_back(0);
      tf[it->second] += 1.0f;
    };
    if (i < categories.size()) {
      for (const auto& category : categories[i]) {
        std::string term = "c:";
        for (char c : category) term.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        add_term(std::move(term));
      }
    }
    if (i < titles.size()) {
      for (auto& token : Tokenize(titles[i])) add_term("t:" + token);
    }
    rows[i].assign(tf.begin(), tf.end());
    std::sort(rows[i].begin(), rows[i].end());
    for (const auto& [term, count] : rows[i]) ++df[term];
  }
  const double n = static_cast<double>(n_items_);
  std::vector<float> idf(df.size());
  for (std::size_t t = 0; t < df.size(); ++t) idf[t] = static_cast<float>(std::log(1.0 + n / df[t]));
  postings_.assign(df.size(), {});
  for (std::size_t t = 0; t < df.size(); ++t) postings_[t].reserve(df[t]);
  row_ptr_.assign(n_items_ + 1, 0);
  for (std::size_t i = 0; i < n_items_; ++i) {
    double norm2 = 0;
    for (auto& [term, w] : rows[i]) {
      w *= idf[term];
      norm2 += double{w} * w;
    }
    const float inv = norm2 > 0 ? static_cast<float>(1.0 / std::sqrt(norm2)) : 0.0f;
    for (auto& [term, w] : rows[i]) {
      w *= inv;
      row_terms_.push_back(term);
      row_weights_.push_back(w);
      postings_[term].emplace_back(static_cast<ItemIndex>(i), w);
    }
    row_ptr_[i + 1] = row_terms_.size();
  }
}

std::vector<std::pair<ItemIndex, float>> ContentIndex::Query(std::span<const ItemIndex> profile_items, std::size_t k,
                                                             const std::function<bool(ItemIndex)>& admissible) const {
  std::vector<std::pair<ItemIndex, float>> result;
  if (k == 0) return result;
  // The profile: mean of the items' vectors (sparse).
  std::unordered_map<std::uint32_t, float> profile;
  std::size_t with_content = 0;
  for (ItemIndex item : profile_items) {
    if (!HasContent(item)) continue;
    ++with_content;
    for (std::uint64_t p = row_ptr_[item]; p < row_ptr_[item + 1]; ++p) profile[row_terms_[p]] += row_weights_[p];
  }
  if (with_content == 0) return result;
  // Dense accumulator reused per thread; `touched` lists the items to reset.
  thread_local std::vector<float> scores;
  thread_local std::vector<ItemIndex> touched;
  if (scores.size() < n_items_) scores.assign(n_items_, 0.0f);
  touched.clear();
  const float scale = 1.0f / static_cast<float>(with_content);
  for (const auto& [term, weight] : profile) {
    const float w = weight * scale;
    for (const auto& [item, iw] : postings_[term]) {
      if (scores[item] == 0.0f) touched.push_back(item);
      scores[item] += w * iw;
      if (scores[item] == 0.0f) scores[item] = 1e-30f;  // keep "touched" detectable
    }
  }
  std::vector<ItemIndex> sorted_profile(profile_items.begin(), profile_items.end());
  std::sort(sorted_profile.begin(), sorted_profile.end());
  result.reserve(touched.size());
  for (ItemIndex item : touched) {
    const float s = scores[item];
    scores[item] = 0.0f;
    if (s <= 1e-20f) continue;
    if (std::binary_search(sorted_profile.begin(), sorted_profile.end(), item)) continue;
    if (admissible && !admissible(item)) continue;
    result.emplace_back(item, s);
  }
  auto better = [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; };
  if (result.size() > k) {
    std::partial_sort(result.begin(), result.begin() + static_cast<std::ptrdiff_t>(k), result.end(), better);
    result.resize(k);
  } else {
    std::sort(result.begin(), result.end(), better);
  }
  return result;
}

}  // namespace recforge::serve
