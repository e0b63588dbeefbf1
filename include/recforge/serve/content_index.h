// Content-based similarity for `recforge serve`: TF-IDF over item metadata. The terms
// of an item are its categories (each one term, "c:<category>", case-folded) and the
// tokens of its title (lower-cased ASCII alphanumeric runs of >= 2 characters, "t:<token>");
// weights are tf * idf with idf = ln(1 + n / df), rows L2-normalised. Items without
// metadata have an empty vector and never match.
//
// A query profile is the mean of some items' vectors; items are scored by the dot
// product with the profile through an inverted index (cost: the posting lists of the
// profile's terms). Thread-safe after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "recforge/core/types.h"

namespace recforge::serve {

class ContentIndex {
 public:
  // One title and category list per item (index = item index).
  ContentIndex(const std::vector<std::string>& titles, const std::vector<std::vector<std::string>>& categories);

  std::size_t n_items() const { return n_items_; }
  std::size_t n_terms() const { return postings_.size(); }
  bool HasContent(ItemIndex item) const { return item < n_items_ && row_ptr_[item + 1] > row_ptr_[item]; }

  // Top `k` items by cosine with the mean of `profile_items`' vectors, best first (ties
  // to the smaller index), skipping the profile items, items with score <= 0 and those
  // `admissible` rejects (when given). Empty when no profile item has content.
  std::vector<std::pair<ItemIndex, float>> Query(std::span<const ItemIndex> profile_items, std::size_t k,
                                                 const std::function<bool(ItemIndex)>& admissible = {}) const;

  // Title tokens as indexed (exposed for tests).
  static std::vector<std::string> Tokenize(const std::string& title);

 private:
  std::size_t n_items_ = 0;
  // Item rows (CSR): term ids and weights, L2-normalised.
  std::vector<std::uint64_t> row_ptr_;
  std::vector<std::uint32_t> row_terms_;
  std::vector<float> row_weights_;
  // Inverted index: per term, (item, weight).
  std::vector<std::vector<std::pair<ItemIndex, float>>> postings_;
};

}  // namespace recforge::serve
