#include "cli_common.h"

#include <cstdio>
#include <iostream>

#include "recforge/core/error.h"

namespace recforge::cli {

Session::Session(const GlobalOptions& options)
    : logger_(options.quiet ? LogLevel::kWarn : ParseLogLevel(options.log_level),
              options.log_format == "json" ? Logger::Format::kJsonLines : Logger::Format::kText),
      progress_(!options.no_progress && !options.quiet) {
  ctx_.threads = options.threads > 0 ? options.threads : HardwareThreads();
  ctx_.logger = &logger_;
  ctx_.progress = progress_.Callback();
}

void AddGlobalOptions(CLI::App& app, GlobalOptions& options) {
  app.add_option("--threads,-t", options.threads, "Worker threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", options.log_level, "debug|info|warn|error|off")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}));
  app.add_option("--log-format", options.log_format, "Log lines as text or JSON lines")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--quiet,-q", options.quiet, "Only warnings and errors on stderr");
  app.add_flag("--no-progress", options.no_progress, "Never draw a progress bar");
}

void PrintJson(const nlohmann::json& value) {
  std::cout << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

int RunGuarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const InvalidArgument& error) {
    std::fprintf(stderr, "recforge: error: %s\n", error.what());
    return 2;
  } catch (const ConfigError& error) {
    std::fprintf(stderr, "recforge: error: %s\n", error.what());
    return 2;
  } catch (const Error& error) {
    std::fprintf(stderr, "recforge: error: %s\n", error.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "recforge: error: out of memory\n");
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "recforge: internal error: %s\n", error.what());
    return 1;
  }
}

}  // namespace recforge::cli
