// Item metadata -> named features for the `hybrid` model (docs/models/hybrid.md).
//
// One item's metadata (data::ItemInfo) gives these feature names:
//   category=<name>     one per category / genre (ml-100k genres from u.item, Amazon
//                       main_category + categories, MovieLens genres)
//   decade=<yyy0>       from extra["year"] (MovieLens titles "Toy Story (1995)", Netflix)
//   <key>=<value>       every other string field of extra (Amazon "store"), except "url"
//                       and "release_date", which are unique per item
//   <key>~2^<b>         every other numeric field of extra (Amazon "price",
//                       "average_rating", "rating_number"), bucketed by floor(log2(value));
//                       values <= 0 give bucket "<key>~0"
//   title=<token>       with title tokens on: lower-cased ASCII alphanumeric runs of >= 2
//                       characters that are not all digits (the serve TF-IDF tokens)
// Names are case-sensitive and de-duplicated per item. The vocabulary of a trained model
// keeps the names found on at least `min_items` of its catalog's items.
#pragma once

#include <string>
#include <vector>

#include "recforge/data/dataset.h"

namespace recforge::models::hybrid {

struct FeatureOptions {
  bool categories = true;     // category=<name>
  bool metadata = true;       // decade, string and numeric extra fields
  bool title_tokens = false;  // title=<token>
};

// Sorted, distinct feature names of one item (see above).
std::vector<std::string> ItemFeatureNames(const data::ItemInfo& info, const FeatureOptions& options);

}  // namespace recforge::models::hybrid
