// Headless Chromium for the browser tests of `recforge ui` and `recforge serve`.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace recforge::testing {

// $RECFORGE_CHROMIUM, else the first of the usual install paths; "" when none.
std::string ChromiumPath();

// Runs argv (no shell) and returns its stdout; stderr is appended to `err_file`;
// *exit_code gets the exit status (128 + signal when killed).
std::string CaptureCommand(std::vector<std::string> args, const std::filesystem::path& err_file, int* exit_code);

class HeadlessChromium {
 public:
  // `work_dir` holds the profile and chromium.log.
  HeadlessChromium(std::string binary, std::filesystem::path work_dir);
  // The DOM after the page's scripts ran (5 s of virtual time); expects exit code 0.
  std::string Dom(const std::string& url) const;
  // Saves a screenshot and expects a non-trivial PNG; with $RECFORGE_SCREENSHOT_DIR set,
  // a copy is kept there.
  void Screenshot(const std::string& url, const std::filesystem::path& png, const std::string& window_size) const;

 private:
  std::vector<std::string> Command(const std::vector<std::string>& extra, const std::string& url) const;
  std::string binary_;
  std::filesystem::path dir_;
};

void ExpectInPage(const std::string& dom, const std::string& text, const std::string& page);

}  // namespace recforge::testing
