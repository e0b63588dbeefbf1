// End to end (issue 5): the real `recforge serve` daemon on a small trained model
// (synth -> prepare -> train ials), its demo page (/) and Swagger UI (/docs) rendered by
// headless Chromium (JS run, then the DOM dumped) and screenshotted. Skipped with a
// message when Chromium is not installed (RECFORGE_CHROMIUM overrides its path) or the
// CLI has no `serve` yet. RECFORGE_SCREENSHOT_DIR keeps copies of the screenshots.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "testlib/browser.h"
#include "testlib/testlib.h"

namespace recforge::testing {
namespace {

namespace fs = std::filesystem;

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  return argv;
}

// `recforge serve ... --port 0` as a child process, run in `dir` (its event log and any
// other file it writes stay there). The port comes from the first http://127.0.0.1:PORT
// it prints on stdout.
class ServeProcess {
 public:
  ServeProcess(std::vector<std::string> args, const fs::path& dir) {
    int out_pipe[2];
    if (pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      if (chdir(dir.c_str()) != 0) _exit(126);
      dup2(out_pipe[1], STDOUT_FILENO);
      int err = open((dir / "serve.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) dup2(err, STDERR_FILENO);
      close(out_pipe[0]);
      std::vector<char*> argv = Argv(args);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out_pipe[1]);
    out_ = out_pipe[0];
    const std::regex url_pattern(R"(http://(127\.0\.0\.1|localhost):(\d+))");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::smatch match;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::regex_search(output_, match, url_pattern)) {
        port_ = std::stoi(match[2].str());
        break;
      }
      pollfd fd{out_, POLLIN, 0};
      if (poll(&fd, 1, 200) <= 0) continue;
      char chunk[512];
      ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) break;
      output_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && exit_code_ < 0) Stop();
    if (out_ >= 0) close(out_);
  }
  int port() const { return port_; }
  const std::string& output() const { return output_; }
  // SIGTERM (drain), then the exit code (0 = clean shutdown).
  int Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string output_;
};

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Text as it appears in Chromium's DOM dump.
std::string HtmlEscaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

class ServeBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = ChromiumPath();
    if (chromium_.empty()) GTEST_SKIP() << "chromium not found (apt-get install chromium, or set RECFORGE_CHROMIUM)";
    int exit_code = -1;
    serve_help_ = CaptureCommand({RECFORGE_CLI_BINARY, "serve", "--help"}, dir_ / "help.log", &exit_code);
    if (exit_code != 0) GTEST_SKIP() << "`recforge serve --help` failed (exit " << exit_code << "): no serve command yet";
  }

  // A small trained model: synth (with titles and categories) -> prepare -> ials.
  void TrainModel() {
    const std::string raw = (dir_ / "raw").string(), prepared = (dir_ / "prepared").string();
    auto synth = RunCli({"data", "synth", "-o", raw, "--interactions", "20000", "--users", "400", "--items", "300",
                         "--categories", "6", "--seed", "7", "-q"});
    ASSERT_EQ(synth.exit_code, 0) << synth.err;
    auto prepare = RunCli({"data", "prepare", raw, "-o", prepared, "--split", "random", "--test-ratio", "0.2", "-q"});
    ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
    auto train = RunCli({"train", "-d", prepared, "--model", "ials:factors=16,iters=5", "-o",
                         (dir_ / "ials.bin").string(), "-q"});
    ASSERT_EQ(train.exit_code, 0) << train.err;
  }

  std::vector<std::string> ServeArgs() const {
    std::vector<std::string> args = {RECFORGE_CLI_BINARY, "serve", "--model", (dir_ / "ials.bin").string(),
                                     "--host", "127.0.0.1", "--port", "0", "--threads", "2"};
    auto has = [&](const char* flag) { return serve_help_.find(flag) != std::string::npos; };
    if (has("--dataset")) args.insert(args.end(), {"--dataset", (dir_ / "prepared").string()});
    if (has("--events")) args.insert(args.end(), {"--events", (dir_ / "events.jsonl").string()});
    if (has("--tracking-uri")) args.insert(args.end(), {"--tracking-uri", (dir_ / "mlruns.db").string()});
    return args;
  }

  std::string Dom(const std::string& url) { return HeadlessChromium(chromium_, dir_.path()).Dom(url); }

  void Screenshot(const std::string& url, const std::string& name) {
    HeadlessChromium(chromium_, dir_.path()).Screenshot(url, dir_ / name, "1280,1000");
  }

  static void ExpectIn(const std::string& dom, const std::string& text, const std::string& page) {
    ExpectInPage(dom, text, page);
  }

  TempDir dir_;
  std::string chromium_;
  std::string serve_help_;
};

TEST_F(ServeBrowser, RendersDemoPageAndSwaggerDocs) {
  ASSERT_NO_FATAL_FAILURE(TrainModel());
  ServeProcess serve(ServeArgs(), dir_.path());
  ASSERT_GT(serve.port(), 0) << "recforge serve printed no http://127.0.0.1:PORT; stdout:\n"
                             << serve.output() << "\nstderr:\n" << ReadText(dir_ / "serve.log");
  const std::string base = "http://127.0.0.1:" + std::to_string(serve.port()) + "/";

  httplib::Client client("127.0.0.1", serve.port());
  client.set_read_timeout(10, 0);
  bool ready = false;
  for (int attempt = 0; attempt < 300 && !ready; ++attempt) {
    auto response = client.Get("/readyz");
    ready = response && response->status == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ready) << "not ready after 30 s:\n" << ReadText(dir_ / "serve.log");

  // What the page should show for its first sample user, u0 (synth ids are u0, u1, ...).
  auto recommend = client.Post("/recommend", R"({"user_id": "u0", "top_k": 10})", "application/json");
  ASSERT_TRUE(recommend && recommend->status == 200) << (recommend ? recommend->body : "no answer");
  const auto recommended = nlohmann::json::parse(recommend->body);
  ASSERT_FALSE(recommended["items"].empty());
  auto history = client.Get("/users/u0/history?limit=50");
  ASSERT_TRUE(history && history->status == 200) << (history ? history->body : "no answer");
  const auto history_items = nlohmann::json::parse(history->body)["items"];
  ASSERT_FALSE(history_items.empty());

  // The demo page: model info, sample users, recommendations and history with titles
  // and categories, the source, popular items.
  std::string dom = Dom(base);
  ExpectIn(dom, "data-ready=\"true\"", "demo page");
  ExpectIn(dom, "RecForge", "demo page");
  ExpectIn(dom, "ials", "demo page (model spec)");
  ExpectIn(dom, "data-user=\"u0\"", "demo page (sample users)");
  ExpectIn(dom, "data-user=\"u1\"", "demo page (sample users)");
  for (std::size_t index = 0; index < 3 && index < recommended["items"].size(); ++index) {
    const auto& item = recommended["items"][index];
    ExpectIn(dom, "data-item-id=\"" + item["item_id"].get<std::string>() + "\"", "demo page (recommendations)");
    if (item.contains("title")) ExpectIn(dom, HtmlEscaped(item["title"].get<std::string>()), "demo page");
    if (item.contains("categories") && !item["categories"].empty()) {
      ExpectIn(dom, HtmlEscaped(item["categories"][0].get<std::string>()), "demo page (categories)");
    }
  }
  ExpectIn(dom, ">" + recommended["source"].get<std::string>() + "<", "demo page (source badge)");
  const auto& last_seen = history_items[0];
  ExpectIn(dom, "data-item-id=\"" + last_seen["item_id"].get<std::string>() + "\"", "demo page (history)");
  if (last_seen.contains("title")) ExpectIn(dom, HtmlEscaped(last_seen["title"].get<std::string>()), "demo page");
  EXPECT_EQ(dom.find("error "), std::string::npos) << "an API call of the page failed:\n" << dom;

  // /docs: Swagger UI from the embedded swagger-ui-dist, rendering /openapi.json.
  dom = Dom(base + "docs");
  ExpectIn(dom, "swagger-ui", "/docs");
  ExpectIn(dom, "RecForge serving API", "/docs (title from openapi.json)");
  for (const char* route : {"/recommend", "/recommend/batch", "/items/{item_id}/similar", "/popular", "/events",
                            "/admin/reload", "/metrics", "/health", "/readyz"}) {
    ExpectIn(dom, std::string("data-path=\"") + route + "\"", "/docs");
  }

  // The event flow: /?user=u0&event=ITEM posts "u0 viewed ITEM" through the page's event
  // form; the page then shows the stored event, ITEM leaves u0's recommendations (the
  // list refreshed, new entries marked fresh) and heads u0's history.
  const std::string viewed = recommended["items"][0]["item_id"].get<std::string>();
  dom = Dom(base + "?user=u0&event=" + viewed);
  ExpectIn(dom, "data-ready=\"true\"", "demo page after an event");
  ExpectIn(dom, "stored 1 event: u0 \u2192 " + viewed, "demo page (event status)");
  auto list = [&dom](const std::string& id) {
    const auto start = dom.find("id=\"" + id + "\"");
    if (start == std::string::npos) return std::string();
    return dom.substr(start, dom.find("</ol>", start) - start);
  };
  const std::string recommendations = list("recommendations"), history_list = list("history");
  ASSERT_FALSE(recommendations.empty()) << dom;
  EXPECT_EQ(recommendations.find("data-item-id=\"" + viewed + "\""), std::string::npos)
      << "the viewed item is still recommended:\n" << recommendations;
  EXPECT_NE(recommendations.find("class=\"fresh\""), std::string::npos) << recommendations;
  const auto first_history = history_list.find("data-item-id=\"");
  ASSERT_NE(first_history, std::string::npos) << history_list;
  EXPECT_EQ(history_list.substr(first_history, 14 + viewed.size() + 1), "data-item-id=\"" + viewed + "\"")
      << "newest first:\n" << history_list;
  auto after = client.Get("/users/u0/history?limit=1");
  ASSERT_TRUE(after && after->status == 200);
  EXPECT_EQ(nlohmann::json::parse(after->body)["items"][0]["item_id"], viewed) << "the page's event reached the server";

  Screenshot(base, "serve_demo.png");
  Screenshot(base + "docs", "serve_docs.png");

  EXPECT_EQ(serve.Stop(), 0) << "recforge serve should exit cleanly on SIGTERM";
}

}  // namespace
}  // namespace recforge::testing
