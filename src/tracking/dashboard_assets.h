// The dashboard's static files (web/dashboard/), compiled into the binary by
// cmake/embed_assets.cmake. Private to the dashboard library.
#pragma once

#include <cstddef>

namespace recforge::tracking::dashboard_assets {

struct Asset {
  const char* name;  // file name relative to web/dashboard/, e.g. "app.js"
  const unsigned char* data;
  std::size_t size;  // bytes (data carries one extra trailing 0)
};

extern const Asset kAssets[];
extern const std::size_t kAssetCount;

}  // namespace recforge::tracking::dashboard_assets
