#include "testlib/testlib.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace recforge::testing {

TempDir::TempDir() {
  static std::mt19937_64 rng(std::random_device{}());
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path candidate = fs::temp_directory_path() / ("recforge-test-" + std::to_string(rng()));
    std::error_code ec;
    if (fs::create_directory(candidate, ec)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path TempDir::Write(const std::string& name, const std::string& content) const {
  fs::path path = path_ / name;
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
  return path;
}

void WriteGzip(const fs::path& path, const std::string& content) {
  gzFile file = gzopen(path.c_str(), "wb");
  if (file == nullptr) throw std::runtime_error("cannot write " + path.string());
  gzwrite(file, content.data(), static_cast<unsigned>(content.size()));
  gzclose(file);
}

std::optional<fs::path> RealDataDir() {
  const char* env = std::getenv("RECFORGE_DATA_DIR");
  fs::path dir = env != nullptr && *env != '\0' ? fs::path(env) : fs::path(RECFORGE_DEFAULT_DATA_DIR);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  return dir;
}

fs::path RealData(const std::string& relative) { return *RealDataDir() / relative; }

namespace {
std::string ReadAll(int fd) {
  std::string text;
  char buffer[65536];
  while (true) {
    ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  return text;
}

// Commands run by tests record their runs into a tracking store of this test process
// (removed at exit) unless the test names one: never into the working directory.
const std::string& TestTrackingStore() {
  // Never destroyed, so the exit handler below can still read it.
  static const std::string* const path = [] {
    std::string pattern = (fs::temp_directory_path() / "recforge-test-tracking-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    auto* made = new std::string(pattern);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(TestTrackingStore(), ec);
    });
    return made;
  }();
  return *path;
}

std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  bool has_uri = false;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    env.emplace_back(*entry);
    has_uri |= env.back().rfind("RECFORGE_TRACKING_URI=", 0) == 0;
  }
  if (!has_uri) env.push_back("RECFORGE_TRACKING_URI=" + TestTrackingStore());
  return env;
}
}  // namespace

CommandResult RunCli(const std::vector<std::string>& args) {
  // Built before fork: the child of a threaded process may only call async-signal-safe
  // functions until exec.
  std::vector<std::string> env = ChildEnvironment();
  std::vector<char*> envp;
  for (auto& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  std::string binary = RECFORGE_CLI_PATH;
  argv.push_back(binary.data());
  std::vector<std::string> copy = args;
  for (auto& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    close(out_pipe[0]);
    close(err_pipe[0]);
    execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandResult result;
  std::thread err_reader([&] { result.err = ReadAll(err_pipe[0]); });
  result.out = ReadAll(out_pipe[0]);
  err_reader.join();
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

data::Dataset MakeDataset(const std::vector<Row>& rows) {
  data::Dataset dataset;
  std::vector<std::string> users, items;
  for (const auto& row : rows) {
    if (std::find(users.begin(), users.end(), row.user) == users.end()) users.push_back(row.user);
    if (std::find(items.begin(), items.end(), row.item) == items.end()) items.push_back(row.item);
  }
  dataset.users = data::IdMap(users);
  dataset.items = data::IdMap(items);
  for (const auto& row : rows) {
    dataset.interactions.Append(*dataset.users.Find(row.user), *dataset.items.Find(row.item),
                                row.rating, row.time);
  }
  return dataset;
}

}  // namespace recforge::testing
