// Shared test helpers: temporary directories, the real-data folder, running the CLI.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "recforge/data/dataset.h"

namespace recforge::testing {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  // Writes `content` to a file inside the directory and returns its path.
  fs::path Write(const std::string& name, const std::string& content) const;

 private:
  fs::path path_;
};

// Writes gzip-compressed `content` to `path`.
void WriteGzip(const fs::path& path, const std::string& content);

// The shared real-data folder (RECFORGE_DATA_DIR env var, else ../shared/data beside
// the repo), or nullopt when it does not exist.
std::optional<fs::path> RealDataDir();

// Skips the current test with a message when the real-data folder (or a file inside
// it) is missing. Use as: RECFORGE_REQUIRE_DATA("ml-100k/u.data");
#define RECFORGE_REQUIRE_DATA(relative)                                                     \
  do {                                                                                      \
    auto recforge_data_dir = ::recforge::testing::RealDataDir();                            \
    if (!recforge_data_dir || !std::filesystem::exists(*recforge_data_dir / (relative))) {  \
      GTEST_SKIP() << "real data not found: " << (relative)                                 \
                   << " (set RECFORGE_DATA_DIR or place ../shared/data beside the repo)";  \
    }                                                                                       \
  } while (0)

// Path of the real-data file (call after RECFORGE_REQUIRE_DATA).
fs::path RealData(const std::string& relative);

// Result of running the CLI.
struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs build/<preset>/recforge with the given arguments (no shell), capturing output.
CommandResult RunCli(const std::vector<std::string>& args);

// A small explicit dataset builder: rows of (user id, item id, rating, time).
struct Row {
  std::string user;
  std::string item;
  float rating = 1;
  std::int64_t time = 0;
};
data::Dataset MakeDataset(const std::vector<Row>& rows);

}  // namespace recforge::testing
