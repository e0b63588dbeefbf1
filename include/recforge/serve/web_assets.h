// The static web assets of `recforge serve`: the demo page, the Swagger UI (/docs) and
// the OpenAPI document. All are compiled into the binary at build time (web/serve/ and
// the npm package swagger-ui-dist, see src/CMakeLists.txt), so the daemon needs no files
// beside it and no CDN at run time.
//
// Thread-safety: every function is safe to call concurrently; the returned views point
// into static storage that lives for the whole program.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace recforge::serve {

// One embedded file: its MIME type (with charset for text types) and its bytes.
struct StaticAsset {
  std::string_view content_type;
  std::string_view body;
};

// The asset served at a URL path (query string already stripped), or nullopt.
// "/", "/index.html", "/app.js", "/style.css": the demo page (web/serve/).
// "/docs", "/docs/": the Swagger UI page pointing at /openapi.json.
// "/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/favicon-32x32.png", ...:
// files of the npm package swagger-ui-dist. "/openapi.json" is OpenApiJson().
std::optional<StaticAsset> FindAsset(std::string_view path);

// The complete OpenAPI 3.0 document of the HTTP API (web/serve/openapi.json), compact JSON.
const std::string& OpenApiJson();

}  // namespace recforge::serve
