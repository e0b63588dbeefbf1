// The dashboard's JSON API and static pages, served in-process on a free port and
// fetched with a real HTTP client over a store populated through the Store API.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "dashboard_fixture.h"
#include "recforge/core/error.h"
#include "recforge/tracking/dashboard.h"

namespace recforge::testing {
namespace {

using json = nlohmann::json;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class DashboardApi : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = PopulateDashboardStore(dir_);
    dashboard_ = std::make_unique<tracking::Dashboard>(data_.location);
    dashboard_->Start("127.0.0.1", 0);
    ASSERT_GT(dashboard_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", dashboard_->port());
    client_->set_read_timeout(10, 0);
  }
  void TearDown() override {
    client_.reset();
    if (dashboard_) dashboard_->Stop();
  }

  // GET path; asserts the status and a JSON body, returns the body.
  json Get(const std::string& path, int expected_status = 200) {
    auto response = client_->Get(path);
    EXPECT_TRUE(response) << path << ": " << httplib::to_string(response.error());
    if (!response) return json();
    EXPECT_EQ(response->status, expected_status) << path << ": " << response->body;
    EXPECT_EQ(response->get_header_value("Content-Type"), "application/json") << path;
    json body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(body.is_discarded()) << path << ": " << response->body;
    if (expected_status >= 400) {
      EXPECT_TRUE(body.contains("error")) << path << ": " << response->body;
      EXPECT_EQ(body.value("status", 0), expected_status) << path;
    }
    return body;
  }

  static std::vector<std::string> Ids(const json& listing) {
    std::vector<std::string> ids;
    for (const auto& run : listing.at("runs")) ids.push_back(run.at("id"));
    return ids;
  }

  TempDir dir_;
  DashboardStore data_;
  std::unique_ptr<tracking::Dashboard> dashboard_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(DashboardApi, ListsExperimentsWithRunCounts) {
  json body = Get("/api/experiments");
  std::map<std::string, std::int64_t> counts;
  for (const auto& experiment : body.at("experiments")) counts[experiment.at("name")] = experiment.at("run_count");
  EXPECT_EQ(counts["movielens"], 3);
  EXPECT_EQ(counts["other"], 1);
}

TEST_F(DashboardApi, ListsRunsOfAnExperimentWithKeys) {
  json body = Get("/api/runs?experiment=movielens");
  auto ids = Ids(body);
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_NE(std::find(ids.begin(), ids.end(), data_.ials), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), data_.als), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), data_.other), ids.end());
  EXPECT_FALSE(body.at("truncated").get<bool>());
  EXPECT_EQ(body.at("param_keys"), json::array({"factors", "family", "reg"}));
  EXPECT_EQ(body.at("metric_keys"), json::array({"loss", "ndcg@10", "recall@10", "val_ndcg@10"}));
  for (const auto& run : body.at("runs")) {
    if (run.at("id") == data_.ials) {
      EXPECT_DOUBLE_EQ(run.at("metrics").at("ndcg@10").get<double>(), 0.3125);
      EXPECT_DOUBLE_EQ(run.at("metrics").at("loss").get<double>(), kIalsLoss.back());  // latest step
      EXPECT_EQ(run.at("params").at("family"), "ials");
      EXPECT_EQ(run.at("status"), "FINISHED");
    }
  }
  EXPECT_EQ(Ids(Get("/api/runs")).size(), 4u);  // every experiment
  EXPECT_EQ(Ids(Get("/api/runs?limit=2")).size(), 2u);
  EXPECT_TRUE(Get("/api/runs?limit=2").at("truncated").get<bool>());
  EXPECT_EQ(Ids(Get("/api/runs?parent=" + data_.ials)), std::vector<std::string>{data_.child});
}

TEST_F(DashboardApi, FiltersAndOrdersWithTheStoreLanguage) {
  const std::string filter = httplib::detail::encode_query_param("params.family = 'ials'");
  EXPECT_EQ(Ids(Get("/api/runs?filter=" + filter)), std::vector<std::string>{data_.ials});
  const std::string ndcg = httplib::detail::encode_query_param("metrics.ndcg@10 > 0.25 and attributes.experiment = 'movielens'");
  auto ids = Ids(Get("/api/runs?filter=" + ndcg));
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> expected = {data_.ials, data_.child};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ids, expected);

  const std::string desc = httplib::detail::encode_query_param("metrics.ndcg@10 desc");
  EXPECT_EQ(Ids(Get("/api/runs?experiment=movielens&order_by=" + desc)),
            (std::vector<std::string>{data_.ials, data_.child, data_.als}));
  const std::string asc = httplib::detail::encode_query_param("metrics.ndcg@10");
  EXPECT_EQ(Ids(Get("/api/runs?experiment=movielens&order_by=" + asc)),
            (std::vector<std::string>{data_.als, data_.child, data_.ials}));
}

TEST_F(DashboardApi, ShowsOneRunWithArtifactsLineageAndChildren) {
  json run = Get("/api/runs/" + data_.ials);
  EXPECT_EQ(run.at("id"), data_.ials);
  EXPECT_EQ(run.at("name"), "ials-64");
  EXPECT_EQ(run.at("experiment"), "movielens");
  EXPECT_EQ(run.at("params").at("factors"), "64");
  EXPECT_EQ(run.at("tags").at("owner"), "dashboard-test");
  EXPECT_EQ(run.at("tags").at("stage"), "dev");
  EXPECT_DOUBLE_EQ(run.at("metrics").at("recall@10").get<double>(), 0.4375);
  EXPECT_EQ(run.at("metric_keys"), json::array({"loss", "ndcg@10", "recall@10", "val_ndcg@10"}));
  ASSERT_EQ(run.at("artifacts").size(), 1u);
  EXPECT_EQ(run.at("artifacts")[0].at("path"), "model.bin");
  EXPECT_EQ(run.at("artifacts")[0].at("kind"), "model");
  EXPECT_EQ(run.at("artifacts")[0].at("size"), 4096);
  EXPECT_EQ(run.at("artifacts")[0].at("sha256").get<std::string>().size(), 64u);
  ASSERT_GE(run.at("lineage").size(), 1u);
  bool found_input = false;
  for (const auto& edge : run.at("lineage")) {
    if (edge.at("direction") == "input" && edge.at("hash") == data_.dataset_hash) {
      found_input = true;
      EXPECT_EQ(edge.at("kind"), "prepared");
      EXPECT_EQ(edge.at("path"), "/data/ml100k-prepared");
    }
  }
  EXPECT_TRUE(found_input) << run.at("lineage").dump();
  ASSERT_EQ(run.at("children").size(), 1u);
  EXPECT_EQ(run.at("children")[0].at("id"), data_.child);

  // A unique prefix and upper case resolve to the same run.
  EXPECT_EQ(Get("/api/runs/" + data_.ials.substr(0, 10)).at("id"), data_.ials);
  std::string upper = data_.ials;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(Get("/api/runs/" + upper).at("id"), data_.ials);
  EXPECT_EQ(Get("/api/runs/" + data_.other).at("status"), "FAILED");
  EXPECT_EQ(Get("/api/runs/" + data_.other).at("status_reason"), "exit code 1");
}

TEST_F(DashboardApi, ServesMetricHistoriesByStep) {
  json loss = Get("/api/runs/" + data_.ials + "/metrics/loss");
  EXPECT_EQ(loss.at("run_id"), data_.ials);
  EXPECT_EQ(loss.at("key"), "loss");
  ASSERT_EQ(loss.at("history").size(), kIalsLoss.size());
  for (std::size_t step = 0; step < kIalsLoss.size(); ++step) {
    EXPECT_EQ(loss.at("history")[step].at("step"), static_cast<std::int64_t>(step));
    EXPECT_DOUBLE_EQ(loss.at("history")[step].at("value").get<double>(), kIalsLoss[step]);
  }
  // '@' percent-encoded, as the page sends it.
  json ndcg = Get("/api/runs/" + data_.ials + "/metrics/val_ndcg%4010");
  ASSERT_EQ(ndcg.at("history").size(), kIalsValNdcg.size());
  EXPECT_DOUBLE_EQ(ndcg.at("history")[4].at("value").get<double>(), 0.3);
  EXPECT_EQ(Get("/api/runs/" + data_.ials + "/metrics/val_ndcg@10").at("key"), "val_ndcg@10");
}

TEST_F(DashboardApi, ComparesRunsSideBySide) {
  json body = Get("/api/compare?ids=" + data_.ials + "," + data_.als.substr(0, 8));
  ASSERT_EQ(body.at("runs").size(), 2u);
  EXPECT_EQ(body.at("runs")[0].at("id"), data_.ials);
  EXPECT_EQ(body.at("runs")[1].at("id"), data_.als);
  std::map<std::string, json> params, metrics;
  for (const auto& row : body.at("params")) params[row.at("key")] = row;
  for (const auto& row : body.at("metrics")) metrics[row.at("key")] = row;
  EXPECT_TRUE(params.at("family").at("differs").get<bool>());
  EXPECT_EQ(params.at("family").at("values"), json::array({"ials", "als"}));
  EXPECT_FALSE(params.at("reg").at("differs").get<bool>());
  EXPECT_DOUBLE_EQ(metrics.at("ndcg@10").at("values")[0].get<double>(), 0.3125);
  EXPECT_DOUBLE_EQ(metrics.at("ndcg@10").at("values")[1].get<double>(), 0.2468);
  EXPECT_TRUE(metrics.at("val_ndcg@10").at("values")[1].is_null());  // als has none
  EXPECT_TRUE(metrics.at("val_ndcg@10").at("differs").get<bool>());
  // The same run twice is listed once.
  EXPECT_EQ(Get("/api/compare?ids=" + data_.ials + "," + data_.ials).at("runs").size(), 1u);
}

TEST_F(DashboardApi, ListsRegisteredModelsWithAliases) {
  json body = Get("/api/models");
  ASSERT_EQ(body.at("models").size(), 1u);
  const json& model = body.at("models")[0];
  EXPECT_EQ(model.at("name"), "ml100k-ials");
  EXPECT_EQ(model.at("aliases").at("production"), 1);
  ASSERT_EQ(model.at("versions").size(), 1u);
  EXPECT_EQ(model.at("versions")[0].at("run_id"), data_.ials);
  EXPECT_EQ(model.at("versions")[0].at("aliases"), json::array({"production"}));
  EXPECT_EQ(model.at("versions")[0].at("description"), "first iALS");
}

TEST_F(DashboardApi, UnknownThingsAre404) {
  EXPECT_PRED2(Contains, Get("/api/runs/0123456789abcdef0123456789abcdef", 404).at("error").get<std::string>(), "not found");
  Get("/api/runs/ffffff", 404);
  Get("/api/runs/" + data_.ials + "/metrics/no_such_metric", 404);
  Get("/api/runs/0123456789abcdef0123456789abcdef/metrics/loss", 404);
  Get("/api/runs?experiment=no-such-experiment", 404);
  Get("/api/runs?parent=abcdefabcdef", 404);
  Get("/api/compare?ids=" + data_.ials + ",abcdefabcdef", 404);
  Get("/api/nothing", 404);
  Get("/api/runs/" + data_.ials + "/params", 404);
}

TEST_F(DashboardApi, BadParametersAre400) {
  EXPECT_PRED2(Contains, Get("/api/runs/not-a-run", 400).at("error").get<std::string>(), "not a run id");
  Get("/api/runs/abc", 400);                                   // too short a prefix
  Get("/api/runs/" + std::string(33, 'a'), 400);               // too long
  Get("/api/runs/%00%01%02abcdef", 400);                       // control characters
  Get("/api/runs?limit=0", 400);
  Get("/api/runs?limit=-3", 400);
  Get("/api/runs?limit=abc", 400);
  Get("/api/runs?limit=99999999999999999999", 400);
  Get("/api/runs?bogus=1", 400);
  Get("/api/runs?filter=a&filter=b", 400);
  Get("/api/runs?parent=xyz", 400);
  Get("/api/runs?filter=" + httplib::detail::encode_query_param("metrics.ndcg@10 >>> 3"), 400);
  Get("/api/runs?filter=" + httplib::detail::encode_query_param("((params.family = 'ials'"), 400);
  Get("/api/runs?filter=" + httplib::detail::encode_query_param("nonsense.key = 1"), 400);
  Get("/api/runs?order_by=" + httplib::detail::encode_query_param("metrics.ndcg@10 sideways"), 400);
  Get("/api/runs?filter=" + std::string(5000, 'x'), 400);
  Get("/api/runs?filter=%0Aparams.family%20%3D%20'ials'", 400);
  Get("/api/compare", 400);
  Get("/api/compare?ids=", 400);
  Get("/api/compare?ids=" + data_.ials + ",," + data_.als, 400);
  Get("/api/compare?ids=" + data_.ials + ",zzz", 400);
  Get("/api/experiments?x=1", 400);
  Get("/api/runs/" + data_.ials + "/metrics/" + std::string(300, 'k'), 400);
  Get("/api/runs/" + data_.ials + "/metrics/%01", 400);
}

TEST_F(DashboardApi, RefusesWritesAndForeignHosts) {
  auto post = client_->Post("/api/runs", "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  auto del = client_->Delete("/api/runs/" + data_.ials);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  // DNS rebinding: a page on another origin resolving to 127.0.0.1.
  auto foreign = client_->Get("/api/runs", {{"Host", "evil.example:5000"}});
  ASSERT_TRUE(foreign);
  EXPECT_EQ(foreign->status, 403);
  auto local = client_->Get("/api/experiments", {{"Host", "localhost:5000"}});
  ASSERT_TRUE(local);
  EXPECT_EQ(local->status, 200);
}

TEST_F(DashboardApi, ServesTheEmbeddedPage) {
  auto index = client_->Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_PRED2(Contains, index->get_header_value("Content-Type"), "text/html");
  EXPECT_PRED2(Contains, index->body, "/app.js");
  EXPECT_PRED2(Contains, index->get_header_value("Content-Security-Policy"), "default-src 'self'");
  auto script = client_->Get("/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_PRED2(Contains, script->get_header_value("Content-Type"), "javascript");
  EXPECT_PRED2(Contains, script->body, "function lineChart");
  auto style = client_->Get("/style.css");
  ASSERT_TRUE(style);
  EXPECT_EQ(style->status, 200);
  EXPECT_PRED2(Contains, style->get_header_value("Content-Type"), "text/css");
  auto missing = client_->Get("/secret.txt");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto traversal = client_->Get("/../../etc/passwd");
  ASSERT_TRUE(traversal);
  EXPECT_EQ(traversal->status, 404);
}

TEST_F(DashboardApi, SurvivesGarbageAndConcurrentClients) {
  const std::vector<std::string> garbage = {
      "/api/runs/%", "/api/runs/%zz", "/api/runs?filter=%", "/api/runs?experiment=%FF%FE",
      "/api/runs?filter=" + httplib::detail::encode_query_param("params.\xff = 'x'"),
      "/api/runs?order_by=;DROP%20TABLE%20runs", "/api/runs?filter=" +
          httplib::detail::encode_query_param("params.family = 'x' or 1=1; --"),
      "/api/compare?ids=" + std::string(1500, ','), "/api/runs?filter=" + std::string(20000, 'x'), "/api//runs", "/api/runs/" + data_.ials + "/metrics/",
      "/api/runs/" + data_.ials + "/metrics/%2F..%2F..", "/%00", "/api/models?limit=1"};
  for (const auto& path : garbage) {
    auto response = client_->Get(path);
    ASSERT_TRUE(response) << path;
    // Some are well-formed but match nothing (200), an over-long URI is refused by the
    // HTTP layer (414); none may fail the server (5xx).
    EXPECT_TRUE(response->status == 200 || response->status == 400 || response->status == 404 ||
                response->status == 414)
        << path << " -> " << response->status << " " << response->body;
    EXPECT_FALSE(json::parse(response->body, nullptr, false).is_discarded()) << path;
  }
  // The store survived (no injected SQL ran) and answers many clients at once.
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", dashboard_->port());
      for (int i = 0; i < 15; ++i) {
        auto response = client.Get(i % 2 ? "/api/runs?experiment=movielens" : "/api/runs/" + (t % 2 ? data_.ials : data_.als));
        if (response && response->status == 200) ++ok;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 8 * 15);
  EXPECT_EQ(Ids(Get("/api/runs")).size(), 4u);
}

TEST(DashboardServer, StartStopAndPortErrors) {
  TempDir dir;
  auto location = tracking::TrackingLocation::Resolve((dir.path() / "empty").string());
  tracking::Dashboard first(location);
  EXPECT_FALSE(first.running());
  first.Stop();  // before Start: a no-op
  first.Start("127.0.0.1", 0);
  EXPECT_TRUE(first.running());
  EXPECT_THROW(first.Start("127.0.0.1", 0), InvalidArgument);
  tracking::Dashboard second(location);
  EXPECT_THROW(second.Start("127.0.0.1", first.port()), IoError);  // in use
  EXPECT_THROW(second.Start("127.0.0.1", 70000), InvalidArgument);
  {
    httplib::Client client("127.0.0.1", first.port());
    auto response = client.Get("/api/runs");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body).at("count"), 0);  // an empty store is fine
  }
  first.Stop();
  first.Stop();
  EXPECT_FALSE(first.running());
}

}  // namespace
}  // namespace recforge::testing
