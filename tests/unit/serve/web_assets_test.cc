// The embedded web assets of `recforge serve` (issue 5): the OpenAPI document is complete
// (every route with its methods, parameter bounds, the error responses) and
// self-consistent (every $ref resolves), and every page and Swagger UI file is embedded
// with its content type.
#include "recforge/serve/web_assets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace recforge::serve {
namespace {

using nlohmann::json;

json Document() { return json::parse(OpenApiJson()); }

// Every "$ref" string anywhere in `node`, with the JSON pointer of where it sits.
void CollectRefs(const json& node, const std::string& where,
                 std::vector<std::pair<std::string, std::string>>* refs) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if (key == "$ref" && value.is_string()) refs->emplace_back(where, value.get<std::string>());
      CollectRefs(value, where + "/" + key, refs);
    }
  } else if (node.is_array()) {
    for (std::size_t index = 0; index < node.size(); ++index) {
      CollectRefs(node[index], where + "/" + std::to_string(index), refs);
    }
  }
}

// The parameter named `name` of an operation, following a $ref into components.
json Parameter(const json& document, const json& operation, const std::string& name) {
  for (json parameter : operation.value("parameters", json::array())) {
    if (parameter.contains("$ref")) {
      parameter = document.at(json::json_pointer(parameter["$ref"].get<std::string>().substr(1)));
    }
    if (parameter.at("name") == name) return parameter;
  }
  return nullptr;
}

TEST(OpenApi, ParsesAsOpenApi3) {
  const json document = Document();
  ASSERT_TRUE(document.is_object());
  EXPECT_TRUE(document.at("openapi").get<std::string>().starts_with("3.0.")) << document["openapi"];
  EXPECT_FALSE(document.at("info").at("title").get<std::string>().empty());
  EXPECT_FALSE(document.at("info").at("version").get<std::string>().empty());
}

TEST(OpenApi, HasEveryRouteWithItsMethods) {
  const json paths = Document().at("paths");
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"/health", "get"},        {"/ready", "get"},
      {"/livez", "get"},         {"/readyz", "get"},
      {"/recommend", "post"},    {"/recommend/{user_id}", "get"},
      {"/recommend/batch", "post"}, {"/items/{item_id}/similar", "get"},
      {"/popular", "get"},       {"/events", "post"},
      {"/admin/reload", "post"}, {"/metrics", "get"},
      {"/users/{user_id}/history", "get"}, {"/info", "get"},
      {"/openapi.json", "get"},  {"/docs", "get"},
      {"/", "get"},
  };
  for (const auto& [path, method] : routes) {
    ASSERT_TRUE(paths.contains(path)) << "missing route " << path;
    EXPECT_TRUE(paths[path].contains(method)) << "missing " << method << " " << path;
    const json& operation = paths[path][method];
    EXPECT_TRUE(operation.contains("responses")) << path;
    EXPECT_TRUE(operation.contains("operationId")) << path;
  }
  // Nothing documented that the list above does not know about.
  EXPECT_EQ(paths.size(), routes.size());
}

TEST(OpenApi, EveryRefResolves) {
  const json document = Document();
  std::vector<std::pair<std::string, std::string>> refs;
  CollectRefs(document, "", &refs);
  ASSERT_GT(refs.size(), 20u);
  for (const auto& [where, ref] : refs) {
    ASSERT_TRUE(ref.starts_with("#/")) << where << ": only local refs expected, got " << ref;
    const json::json_pointer pointer(ref.substr(1));
    EXPECT_TRUE(document.contains(pointer)) << where << ": dangling $ref " << ref;
  }
}

TEST(OpenApi, PathParametersAreDeclared) {
  const json document = Document();
  for (const auto& [path, item] : document.at("paths").items()) {
    for (const char* name : {"user_id", "item_id"}) {
      if (path.find(std::string("{") + name + "}") == std::string::npos) continue;
      for (const auto& [method, operation] : item.items()) {
        const json parameter = Parameter(document, operation, name);
        ASSERT_FALSE(parameter.is_null()) << method << " " << path << " lacks parameter " << name;
        EXPECT_EQ(parameter.at("in"), "path");
        EXPECT_EQ(parameter.at("required"), true);
      }
    }
  }
}

TEST(OpenApi, TopKAndKAreBoundedTo1To1000) {
  const json document = Document();
  const json& schemas = document.at("components").at("schemas");
  const json& top_k = schemas.at("RecommendRequest").at("properties").at("top_k");
  EXPECT_EQ(top_k.at("minimum"), 1);
  EXPECT_EQ(top_k.at("maximum"), 1000);
  for (const auto& [path, method] : std::vector<std::pair<std::string, std::string>>{
           {"/recommend/{user_id}", "get"}, {"/items/{item_id}/similar", "get"}, {"/popular", "get"}}) {
    const json parameter = Parameter(document, document["paths"][path][method], "k");
    ASSERT_FALSE(parameter.is_null()) << path;
    EXPECT_EQ(parameter.at("in"), "query");
    EXPECT_EQ(parameter.at("schema").at("minimum"), 1) << path;
    EXPECT_EQ(parameter.at("schema").at("maximum"), 1000) << path;
  }
}

TEST(OpenApi, ErrorResponsesUseTheErrorSchema) {
  const json document = Document();
  const json& error = document.at("components").at("schemas").at("Error");
  const json& inner = error.at("properties").at("error");
  EXPECT_EQ(inner.at("properties").at("code").at("type"), "integer");
  EXPECT_EQ(inner.at("properties").at("message").at("type"), "string");

  std::set<std::string> codes_seen;
  for (const auto& [path, item] : document.at("paths").items()) {
    for (const auto& [method, operation] : item.items()) {
      for (const auto& [code, response] : operation.at("responses").items()) {
        if (code[0] != '4' && code[0] != '5') continue;
        codes_seen.insert(code);
        json resolved = response;
        if (resolved.contains("$ref")) {
          resolved = document.at(json::json_pointer(resolved["$ref"].get<std::string>().substr(1)));
        }
        const json& schema = resolved.at("content").at("application/json").at("schema");
        EXPECT_EQ(schema.value("$ref", ""), "#/components/schemas/Error") << method << " " << path << " " << code;
      }
    }
  }
  for (const char* code : {"400", "401", "403", "404", "405", "413", "422", "500", "503"}) {
    EXPECT_TRUE(codes_seen.contains(code)) << "no route documents " << code;
  }
}

TEST(OpenApi, RequestBodiesAndSpecialRoutes) {
  const json document = Document();
  const json& paths = document.at("paths");
  for (const char* path : {"/recommend", "/recommend/batch", "/events"}) {
    EXPECT_TRUE(paths[path]["post"]["requestBody"]["required"].get<bool>()) << path;
  }
  // POST /events takes one event or an array of them.
  const json& events = paths["/events"]["post"]["requestBody"]["content"]["application/json"]["schema"];
  ASSERT_TRUE(events.contains("oneOf"));
  EXPECT_EQ(events["oneOf"].size(), 2u);
  // The admin route needs the bearer token, and documents 401 and 403.
  const json& reload = paths["/admin/reload"]["post"];
  ASSERT_TRUE(reload.contains("security"));
  const std::string scheme = reload["security"][0].begin().key();
  EXPECT_EQ(document["components"]["securitySchemes"][scheme]["scheme"], "bearer");
  EXPECT_TRUE(reload["responses"].contains("401"));
  EXPECT_TRUE(reload["responses"].contains("403"));
  // /metrics is Prometheus text, the pages are HTML.
  EXPECT_TRUE(paths["/metrics"]["get"]["responses"]["200"]["content"].contains("text/plain"));
  EXPECT_TRUE(paths["/docs"]["get"]["responses"]["200"]["content"].contains("text/html"));
  EXPECT_TRUE(paths["/"]["get"]["responses"]["200"]["content"].contains("text/html"));
  // The recommendation sources of issue 5.
  const json& sources = document["components"]["schemas"]["Source"]["enum"];
  for (const char* source : {"model", "fallback:popular", "fallback:item-to-item", "fallback:content"}) {
    EXPECT_NE(std::find(sources.begin(), sources.end(), source), sources.end()) << source;
  }
}

TEST(WebAssets, PagesAndSwaggerUiAreEmbeddedWithContentTypes) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"/", "text/html"},
      {"/index.html", "text/html"},
      {"/app.js", "text/javascript"},
      {"/style.css", "text/css"},
      {"/docs", "text/html"},
      {"/docs/", "text/html"},
      {"/docs/docs.js", "text/javascript"},
      {"/docs/swagger-ui.css", "text/css"},
      {"/docs/swagger-ui-bundle.js", "text/javascript"},
      {"/docs/favicon-32x32.png", "image/png"},
      {"/openapi.json", "application/json"},
  };
  for (const auto& [path, type] : expected) {
    const auto asset = FindAsset(path);
    ASSERT_TRUE(asset.has_value()) << path;
    EXPECT_TRUE(asset->content_type.starts_with(type)) << path << ": " << asset->content_type;
    EXPECT_GT(asset->body.size(), 100u) << path;
  }
  // Swagger UI is the real bundle from swagger-ui-dist, not a stub.
  EXPECT_GT(FindAsset("/docs/swagger-ui-bundle.js")->body.size(), 500'000u);
  EXPECT_NE(FindAsset("/docs/swagger-ui-bundle.js")->body.find("SwaggerUIBundle"), std::string_view::npos);
  EXPECT_TRUE(FindAsset("/docs/favicon-32x32.png")->body.starts_with("\x89PNG"));
  EXPECT_EQ(FindAsset("/openapi.json")->body, OpenApiJson());
}

TEST(WebAssets, PagesReferenceTheirFilesLocally) {
  const std::string_view index = FindAsset("/")->body;
  EXPECT_NE(index.find("/app.js"), std::string_view::npos);
  EXPECT_NE(index.find("/style.css"), std::string_view::npos);
  const std::string_view docs = FindAsset("/docs")->body;
  EXPECT_NE(docs.find("/docs/swagger-ui-bundle.js"), std::string_view::npos);
  EXPECT_NE(docs.find("/docs/swagger-ui.css"), std::string_view::npos);
  EXPECT_NE(FindAsset("/docs/docs.js")->body.find("/openapi.json"), std::string_view::npos);
  // No CDN: nothing is loaded from another host.
  for (const char* path : {"/", "/docs", "/app.js", "/docs/docs.js"}) {
    const std::string_view body = FindAsset(path)->body;
    EXPECT_EQ(body.find("http://"), std::string_view::npos) << path;
    EXPECT_EQ(body.find("https://"), std::string_view::npos) << path;
  }
}

TEST(WebAssets, UnknownPathsAreNotFound) {
  for (const char* path : {"", "/nope", "/docs/nope.js", "/web_assets.cc", "/docs/../index.html",
                           "/package.json", "/docs/swagger-ui-bundle.js.map", "/recommend"}) {
    EXPECT_FALSE(FindAsset(path).has_value()) << path;
  }
}

}  // namespace
}  // namespace recforge::serve
