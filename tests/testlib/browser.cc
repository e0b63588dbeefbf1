#include "testlib/browser.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>

namespace recforge::testing {

namespace fs = std::filesystem;

std::string ChromiumPath() {
  if (const char* path = std::getenv("RECFORGE_CHROMIUM"); path && *path) return path;
  for (const char* candidate : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
    if (access(candidate, X_OK) == 0) return candidate;
  }
  return "";
}

std::string CaptureCommand(std::vector<std::string> args, const fs::path& err_file, int* exit_code) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const std::string err_path = err_file.string();
  int out_pipe[2];
  if (pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err >= 0) dup2(err, STDERR_FILENO);
    close(out_pipe[0]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  std::string out;
  char buffer[65536];
  ssize_t n;
  while ((n = read(out_pipe[0], buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<std::size_t>(n));
  close(out_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

HeadlessChromium::HeadlessChromium(std::string binary, fs::path work_dir)
    : binary_(std::move(binary)), dir_(std::move(work_dir)) {}

std::vector<std::string> HeadlessChromium::Command(const std::vector<std::string>& extra,
                                                   const std::string& url) const {
  std::vector<std::string> args = {"/usr/bin/timeout", "120", binary_, "--headless", "--no-sandbox",
                                   "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                   "--hide-scrollbars", "--user-data-dir=" + (dir_ / "chromium").string(),
                                   "--virtual-time-budget=5000"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(url);
  return args;
}

std::string HeadlessChromium::Dom(const std::string& url) const {
  int exit_code = -1;
  std::string dom = CaptureCommand(Command({"--dump-dom"}, url), dir_ / "chromium.log", &exit_code);
  EXPECT_EQ(exit_code, 0) << url;
  return dom;
}

void HeadlessChromium::Screenshot(const std::string& url, const fs::path& png, const std::string& window_size) const {
  int exit_code = -1;
  CaptureCommand(Command({"--screenshot=" + png.string(), "--window-size=" + window_size}, url),
                 dir_ / "chromium.log", &exit_code);
  EXPECT_EQ(exit_code, 0) << url;
  ASSERT_TRUE(fs::exists(png)) << url;
  EXPECT_GT(fs::file_size(png), 20000u) << png << " looks blank";
  std::ifstream in(png, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  if (const char* keep = std::getenv("RECFORGE_SCREENSHOT_DIR"); keep && *keep) {
    fs::create_directories(keep);
    fs::copy_file(png, fs::path(keep) / png.filename(), fs::copy_options::overwrite_existing);
  }
}

void ExpectInPage(const std::string& dom, const std::string& text, const std::string& page) {
  EXPECT_NE(dom.find(text), std::string::npos) << "'" << text << "' missing from " << page;
}

}  // namespace recforge::testing
