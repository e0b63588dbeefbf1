// Serves the embedded web assets by URL path. The bytes come from the tables that
// cmake/embed_assets.cmake generates (web_assets_embedded.h); this file only maps URL
// paths to them, once, on first use.
#include "recforge/serve/web_assets.h"

#include <functional>
#include <map>
#include <string>

#include "web_assets_embedded.h"

namespace recforge::serve {
namespace {

std::string_view ContentTypeFor(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) { return name.ends_with(suffix); };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".json")) return "application/json";
  if (ends_with(".png")) return "image/png";
  return "text/plain; charset=utf-8";  // LICENSE, NOTICE
}

template <typename Asset>
StaticAsset MakeAsset(const Asset& asset) {
  return StaticAsset{ContentTypeFor(asset.name),
                     std::string_view(reinterpret_cast<const char*>(asset.data), asset.size)};
}

// std::less<> lets find() take the request's string_view without a copy.
using AssetMap = std::map<std::string, StaticAsset, std::less<>>;

AssetMap BuildAssetMap() {
  AssetMap by_path;
  // The demo page and its files sit at the root; docs.html/docs.js are the Swagger UI
  // page under /docs. Only the listed names are served: nothing else in web/serve/ is
  // reachable by URL.
  std::map<std::string_view, StaticAsset> site;
  for (std::size_t index = 0; index < site_assets::kAssetCount; ++index) {
    site.emplace(site_assets::kAssets[index].name, MakeAsset(site_assets::kAssets[index]));
  }
  by_path.emplace("/", site.at("index.html"));
  by_path.emplace("/index.html", site.at("index.html"));
  by_path.emplace("/app.js", site.at("app.js"));
  by_path.emplace("/style.css", site.at("style.css"));
  by_path.emplace("/openapi.json", site.at("openapi.json"));
  by_path.emplace("/docs", site.at("docs.html"));
  by_path.emplace("/docs/", site.at("docs.html"));
  by_path.emplace("/docs/index.html", site.at("docs.html"));
  by_path.emplace("/docs/docs.js", site.at("docs.js"));
  // Swagger UI's files keep their package names under /docs/ ("/docs/swagger-ui.css").
  for (std::size_t index = 0; index < swagger_assets::kAssetCount; ++index) {
    const auto& asset = swagger_assets::kAssets[index];
    by_path.emplace(std::string("/docs/") + asset.name, MakeAsset(asset));
    if (std::string_view(asset.name) == "favicon-32x32.png") {
      by_path.emplace("/favicon.ico", MakeAsset(asset));  // browsers ask for it on every page
    }
  }
  return by_path;
}

}  // namespace

std::optional<StaticAsset> FindAsset(std::string_view path) {
  static const AssetMap kByPath = BuildAssetMap();
  const auto it = kByPath.find(path);
  if (it == kByPath.end()) return std::nullopt;
  return it->second;
}

const std::string& OpenApiJson() {
  static const std::string kDocument = [] {
    for (std::size_t index = 0; index < site_assets::kAssetCount; ++index) {
      const auto& asset = site_assets::kAssets[index];
      if (std::string_view(asset.name) == "openapi.json") {
        return std::string(reinterpret_cast<const char*>(asset.data), asset.size);
      }
    }
    return std::string("{}");  // unreachable: the build embeds openapi.json
  }();
  return kDocument;
}

}  // namespace recforge::serve
