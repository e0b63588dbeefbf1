// End to end: the real `recforge ui` binary on a populated store, its pages rendered
// by headless Chromium (JS run, then the DOM dumped) and screenshotted. Skipped with a
// message when Chromium is not installed (RECFORGE_CHROMIUM overrides its path;
// RECFORGE_SCREENSHOT_DIR keeps copies of the screenshots).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "dashboard_fixture.h"
#include "testlib/browser.h"

namespace recforge::testing {
namespace {

// `recforge ui --port 0` as a child process; the URL is the first stdout line.
class UiProcess {
 public:
  UiProcess(const tracking::TrackingLocation& location, const fs::path& log) {
    int out_pipe[2];
    if (pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out_pipe[1], STDOUT_FILENO);
      int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) dup2(err, STDERR_FILENO);
      close(out_pipe[0]);
      std::vector<std::string> args = {RECFORGE_CLI_BINARY, "ui", "--port", "0", "--tracking-uri",
                                       location.database.string()};
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out_pipe[1]);
    out_ = out_pipe[0];
    // Wait (at most 30 s) for the URL line.
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd fd{out_, POLLIN, 0};
      if (poll(&fd, 1, 200) <= 0) continue;
      char c[256];
      ssize_t n = read(out_, c, sizeof c);
      if (n <= 0) break;
      line.append(c, static_cast<std::size_t>(n));
    }
    url_ = line.substr(0, line.find('\n'));
  }
  ~UiProcess() {
    if (pid_ > 0 && exit_code_ < 0) Stop();
    if (out_ >= 0) close(out_);
  }
  const std::string& url() const { return url_; }
  // SIGTERM, then the exit code (0 = clean shutdown).
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
  int exit_code_ = -1;
  std::string url_;
};

class DashboardBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = ChromiumPath();
    if (chromium_.empty()) GTEST_SKIP() << "chromium not found (apt-get install chromium, or set RECFORGE_CHROMIUM)";
  }

  // The DOM after the page's scripts ran.
  std::string Dom(const std::string& url) {
    std::string dom = HeadlessChromium(chromium_, dir_.path()).Dom(url);
    EXPECT_NE(dom.find("data-ready=\"true\""), std::string::npos) << url << " did not finish rendering:\n" << dom;
    return dom;
  }

  void Screenshot(const std::string& url, const std::string& name) {
    HeadlessChromium(chromium_, dir_.path()).Screenshot(url, dir_ / name, "1280,900");
  }

  static void ExpectIn(const std::string& dom, const std::string& text, const std::string& page) {
    ExpectInPage(dom, text, page);
  }

  TempDir dir_;
  std::string chromium_;
};

TEST_F(DashboardBrowser, RendersRunsRunDetailCompareAndModels) {
  DashboardStore data = PopulateDashboardStore(dir_);
  UiProcess ui(data.location, dir_ / "ui.log");
  std::smatch match;
  ASSERT_TRUE(std::regex_match(ui.url(), match, std::regex(R"(http://127\.0\.0\.1:(\d+)/)")))
      << "recforge ui printed '" << ui.url() << "'";
  const std::string base = ui.url();

  // Runs table: every run, its params and latest metrics.
  std::string dom = Dom(base + "#/");
  for (const auto& id : {data.ials, data.als, data.child, data.other}) ExpectIn(dom, "#/run/" + id, "runs page");
  for (const char* text : {"ials-64", "als-32", "pop-baseline", "0.3125", "0.2468", "0.4375", "ndcg@10", "FINISHED",
                           "FAILED", "movielens (3)"}) {
    ExpectIn(dom, text, "runs page");
  }

  // The filter box's language, through the URL the form navigates to.
  dom = Dom(base + "#/?filter=params.family%20%3D%20'ials'");
  ExpectIn(dom, "#/run/" + data.ials, "filtered runs page");
  EXPECT_EQ(dom.find("#/run/" + data.als), std::string::npos) << "the filter should hide als-32";
  dom = Dom(base + "#/?filter=metrics.ndcg%40%40%20%3E");
  ExpectIn(dom, "class=\"message error\"", "bad filter");

  // Run detail: params, metrics, tags, artifact, lineage, curves drawn as SVG.
  dom = Dom(base + "#/run/" + data.ials);
  for (const char* text : {"0.3125", "0.4375", "dashboard-test", "model.bin", "4.0 KiB", "prepared",
                           "/data/ml100k-prepared", "ials-64-fold1", "<svg", "class=\"line\"", "val_ndcg@10",
                           "step 4: 0.4875", "step 2: 0.25"}) {
    ExpectIn(dom, text, "run page");
  }
  ExpectIn(dom, data.ials, "run page");

  // Compare: both runs, differing rows highlighted, overlaid curves.
  const std::string compare = base + "#/compare?ids=" + data.ials + "," + data.als;
  dom = Dom(compare);
  for (const char* text : {"Comparing 2 runs", "class=\"diff\"", "0.3125", "0.2468", "ials", "als", "<svg"}) {
    ExpectIn(dom, text, "compare page");
  }
  ExpectIn(dom, "#/run/" + data.als, "compare page");
  ExpectIn(dom, "#/run/" + data.ials, "compare page");

  dom = Dom(base + "#/models");
  for (const char* text : {"ml100k-ials", "@production", "v1", "first iALS"}) ExpectIn(dom, text, "models page");

  dom = Dom(base + "#/run/0123456789abcdef0123456789abcdef");
  ExpectIn(dom, "not found", "unknown run page");

  Screenshot(base + "#/", "runs.png");
  Screenshot(base + "#/run/" + data.ials, "run.png");
  Screenshot(compare, "compare.png");

  EXPECT_EQ(ui.Stop(), 0) << "recforge ui should exit cleanly on SIGTERM";
}

}  // namespace
}  // namespace recforge::testing
