#include "hybrid/item_features.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>

namespace recforge::models::hybrid {

std::vector<std::string> ItemFeatureNames(const data::ItemInfo& info, const FeatureOptions& options) {
  std::vector<std::string> names;
  if (options.categories) {
    for (const auto& category : info.categories) {
      if (!category.empty()) names.push_back("category=" + category);
    }
  }
  if (options.metadata && info.extra.is_object()) {
    for (const auto& [key, value] : info.extra.items()) {
      if (key == "url" || key == "release_date") continue;  // unique per item: an id in disguise
      if (key == "year" && value.is_number()) {
        const long long year = value.get<long long>();
        names.push_back(fmt::format("decade={}", year - ((year % 10) + 10) % 10));
      } else if (value.is_string()) {
        const std::string& text = value.get_ref<const std::string&>();
        if (!text.empty()) names.push_back(key + "=" + text);
      } else if (value.is_number()) {
        const double number = value.get<double>();
        if (!std::isfinite(number)) continue;
        names.push_back(number > 0 ? fmt::format("{}~2^{}", key, static_cast<long long>(std::floor(std::log2(number))))
                                   : key + "~0");
      }
    }
  }
  if (options.title_tokens) {
    const std::string& title = info.title;
    std::size_t at = 0;
    while (at < title.size()) {
      while (at < title.size() && !std::isalnum(static_cast<unsigned char>(title[at]))) ++at;
      std::size_t end = at;
      bool digits = true;
      while (end < title.size() && std::isalnum(static_cast<unsigned char>(title[end]))) {
        digits = digits && std::isdigit(static_cast<unsigned char>(title[end]));
        ++end;
      }
      if (end - at >= 2 && !digits) {
        std::string token = title.substr(at, end - at);
        for (char& c : token) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        names.push_back("title=" + token);
      }
      at = end;
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace recforge::models::hybrid
