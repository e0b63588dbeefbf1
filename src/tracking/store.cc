#include "recforge/tracking/store.h"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <random>
#include <unordered_map>

#include <fmt/format.h>

#include "recforge/core/error.h"
#include "recforge/core/file_io.h"
#include "recforge/core/version.h"
#include "run_filter.h"
#include "sqlite_db.h"

namespace recforge::tracking {

using detail::Arg;
using detail::Db;

namespace {

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string HostName() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) return "unknown";
  return buffer;
}

std::string UserName() {
  if (const char* user = std::getenv("USER"); user != nullptr && *user != '\0') return user;
  if (const passwd* entry = getpwuid(geteuid()); entry != nullptr && entry->pw_name != nullptr) {
    return entry->pw_name;
  }
  return std::to_string(geteuid());
}

std::string NewRunId() {
  std::random_device device;
  std::string id;
  id.reserve(32);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int word = 0; word < 4; ++word) {
    std::uint32_t bits = device();
    for (int nibble = 0; nibble < 8; ++nibble) {
      id.push_back(kHex[bits & 0xf]);
      bits >>= 4;
    }
  }
  return id;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

bool AllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

std::string GeneratedRunName(const RunStart& start) {
  std::string prefix = "run";
  for (const char* key : {"family", "model", "command"}) {
    auto it = start.tags.find(key);
    if (it != start.tags.end() && !it->second.empty()) {
      prefix = it->second.substr(0, it->second.find_first_of(":, "));
      break;
    }
  }
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d-%H%M%S", &local);
  return prefix + "-" + stamp;
}

// Registered model and alias names: letters, digits, '_', '-', '.'; not all digits.
void CheckRegistryName(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && !AllDigits(name) && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
  if (!ok) {
    throw InvalidArgument(fmt::format("{} '{}' is invalid: use letters, digits, '_', '-' and '.' (not only digits)",
                                      what, name));
  }
}

// Copies source to dest (through a temporary file renamed into place), hashing the
// bytes as they pass.
Artifact CopyHashing(const fs::path& source, const fs::path& dest) {
  std::error_code ec;
  if (fs::is_directory(source, ec)) {
    throw IoError(fmt::format("{}: is a directory, expected a file to log as an artifact", source.string()));
  }
  std::FILE* in = std::fopen(source.c_str(), "rb");
  if (in == nullptr) throw IoError(fmt::format("{}: cannot open: {}", source.string(), std::strerror(errno)));
  fs::create_directories(dest.parent_path(), ec);
  if (ec) {
    std::fclose(in);
    throw IoError(fmt::format("{}: cannot create folder: {}", dest.parent_path().string(), ec.message()));
  }
  fs::path temp = dest;
  temp += fmt::format(".partial-{}-{}", getpid(), NewRunId().substr(0, 8));
  std::FILE* out = std::fopen(temp.c_str(), "wb");
  if (out == nullptr) {
    std::fclose(in);
    throw IoError(fmt::format("{}: cannot create: {}", temp.string(), std::strerror(errno)));
  }
  Sha256 hasher;
  std::vector<char> chunk(1u << 20);
  std::uint64_t size = 0;
  bool failed = false;
  std::string problem;
  while (true) {
    std::size_t got = std::fread(chunk.data(), 1, chunk.size(), in);
    if (got == 0) {
      if (std::ferror(in)) {
        failed = true;
        problem = fmt::format("{}: read error: {}", source.string(), std::strerror(errno));
      }
      break;
    }
    hasher.Update(chunk.data(), got);
    size += got;
    if (std::fwrite(chunk.data(), 1, got, out) != got) {
      failed = true;
      problem = fmt::format("{}: write error: {}", temp.string(), std::strerror(errno));
      break;
    }
  }
  std::fclose(in);
  if (std::fclose(out) != 0 && !failed) {
    failed = true;
    problem = fmt::format("{}: write error: {}", temp.string(), std::strerror(errno));
  }
  if (!failed) {
    fs::rename(temp, dest, ec);
    if (ec) {
      failed = true;
      problem = fmt::format("{}: cannot move into place: {}", dest.string(), ec.message());
    }
  }
  if (failed) {
    fs::remove(temp, ec);
    throw IoError(problem);
  }
  Artifact artifact;
  artifact.size = size;
  artifact.sha256 = hasher.HexDigest();
  return artifact;
}

// An artifact name must stay inside the run's folder.
fs::path CheckArtifactName(const std::string& run_id, const std::string& name) {
  fs::path relative = fs::path(name).lexically_normal();
  bool ok = !name.empty() && relative.is_relative() && !relative.empty() && relative != ".";
  for (const auto& part : relative) {
    if (part == "..") ok = false;
  }
  if (!ok) {
    throw InvalidArgument(fmt::format(
        "artifact name '{}' of run {} must be a relative path inside the run's artifact folder", name, run_id));
  }
  return relative;
}

}  // namespace

// ---------------------------------------------------------------------------- names

std::string_view Name(RunStatus status) {
  switch (status) {
    case RunStatus::kRunning: return "RUNNING";
    case RunStatus::kFinished: return "FINISHED";
    case RunStatus::kFailed: return "FAILED";
    case RunStatus::kKilled: return "KILLED";
  }
  return "RUNNING";
}

RunStatus ParseRunStatus(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (RunStatus status : {RunStatus::kRunning, RunStatus::kFinished, RunStatus::kFailed, RunStatus::kKilled}) {
    if (Name(status) == upper) return status;
  }
  throw InvalidArgument(
      fmt::format("run status '{}' is invalid (allowed: RUNNING, FINISHED, FAILED, KILLED)", name));
}

double Run::duration_seconds() const {
  std::int64_t end = end_ms != 0 ? end_ms : NowMs();
  return static_cast<double>(std::max<std::int64_t>(0, end - start_ms)) / 1000.0;
}

TrackingLocation TrackingLocation::Resolve(const std::string& uri_option) {
  std::string uri = uri_option;
  if (uri.empty()) {
    if (const char* env = std::getenv("RECFORGE_TRACKING_URI"); env != nullptr) uri = env;
  }
  TrackingLocation location;
  if (uri.empty()) {
    location.database = fs::absolute("mlruns.db");
    location.artifacts = fs::absolute("artifacts");
    return location;
  }
  constexpr std::string_view kScheme = "sqlite://";
  fs::path path;
  bool forced_file = false;
  if (uri.starts_with(kScheme)) {
    path = uri.substr(kScheme.size());  // "sqlite:///abs/x.db" -> "/abs/x.db"
    forced_file = true;
    if (path.empty() || path == "/") {
      throw InvalidArgument(fmt::format("tracking URI '{}' names no database file", uri));
    }
  } else if (auto colon = uri.find("://"); colon != std::string::npos) {
    throw InvalidArgument(fmt::format(
        "tracking URI '{}': unsupported scheme '{}' (use a path to a .db file, a directory or sqlite:///path.db)",
        uri, uri.substr(0, colon)));
  } else {
    path = uri;
  }
  path = fs::absolute(path).lexically_normal();
  std::string extension = Lower(path.extension().string());
  std::error_code ec;
  bool is_file = forced_file || extension == ".db" || extension == ".sqlite" || extension == ".sqlite3" ||
                 fs::is_regular_file(path, ec);
  if (is_file) {
    if (!path.has_filename()) throw InvalidArgument(fmt::format("tracking URI '{}' names no database file", uri));
    location.database = path;
    location.artifacts = path.parent_path() / "artifacts";
  } else {
    if (!path.has_filename()) path = path.parent_path();
    location.database = path / "mlruns.db";
    location.artifacts = path / "artifacts";
  }
  return location;
}

bool IsRegistryReference(const std::string& text) {
  if (text.empty()) return false;
  std::error_code ec;
  if (fs::exists(text, ec)) return false;
  if (text.find('@') != std::string::npos) return true;
  auto slash = text.find('/');
  return slash != std::string::npos && slash > 0 && text.find('/', slash + 1) == std::string::npos &&
         AllDigits(std::string_view(text).substr(slash + 1));
}

// ---------------------------------------------------------------------------- store

struct Store::Impl {
  explicit Impl(const TrackingLocation& where) : location(where), db(Open(where)) {}

  static fs::path Open(const TrackingLocation& where) {
    std::error_code ec;
    if (where.database.has_parent_path()) fs::create_directories(where.database.parent_path(), ec);
    if (ec) {
      throw IoError(fmt::format("tracking store {}: cannot create its folder: {}", where.database.string(),
                                ec.message()));
    }
    return where.database;
  }

  const std::string& DbName() const { return location.database.native(); }

  // Full run id for an id or a unique prefix of >= 6 hex characters.
  std::string ResolveRunId(const std::string& id_or_prefix) {
    std::string wanted = Lower(id_or_prefix);
    if (wanted.empty()) throw NotFound(fmt::format("tracking store {}: empty run id", DbName()));
    return db.Read([&] {
      auto exact = db.Query("SELECT id FROM runs WHERE id = ?", wanted);
      if (exact.Step()) return exact.Text(0);
      if (wanted.size() >= 6 && wanted.size() < 32 && IsHex(wanted)) {
        auto prefix = db.Query("SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 2",
                               static_cast<std::int64_t>(wanted.size()), wanted);
        std::vector<std::string> found;
        while (prefix.Step()) found.push_back(prefix.Text(0));
        if (found.size() == 1) return found[0];
        if (found.size() > 1) {
          throw NotFound(fmt::format("tracking store {}: run id prefix '{}' is ambiguous ({}, {}, ...)", DbName(),
                                     id_or_prefix, found[0], found[1]));
        }
      }
      throw NotFound(fmt::format("tracking store {}: no run '{}'", DbName(), id_or_prefix));
    });
  }

  std::optional<Experiment> FindExperiment(const std::string& name_or_id) {
    return db.Read([&]() -> std::optional<Experiment> {
      static constexpr const char* kSelect =
          "SELECT e.id, e.name, e.created_ms, (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id) "
          "FROM experiments e WHERE ";
      auto read = [](detail::Statement& statement) {
        Experiment experiment;
        experiment.id = statement.Int(0);
        experiment.name = statement.Text(1);
        experiment.created_ms = statement.Int(2);
        experiment.run_count = statement.Int(3);
        return experiment;
      };
      auto by_name = db.Query(std::string(kSelect) + "e.name = ?", name_or_id);
      if (by_name.Step()) return read(by_name);
      if (AllDigits(name_or_id) && name_or_id.size() < 18) {
        auto by_id = db.Query(std::string(kSelect) + "e.id = ?", std::stoll(name_or_id));
        if (by_id.Step()) return read(by_id);
      }
      return std::nullopt;
    });
  }

  std::int64_t GetOrCreateExperiment(const std::string& name) {
    if (name.empty()) throw InvalidArgument(fmt::format("tracking store {}: experiment name is empty", DbName()));
    return db.Write([&] {
      auto found = db.Query("SELECT id FROM experiments WHERE name = ?", name);
      if (found.Step()) return found.Int(0);
      db.Execute("INSERT INTO experiments (name, created_ms) VALUES (?, ?)", name, NowMs());
      return static_cast<std::int64_t>(sqlite3_last_insert_rowid(db.handle()));
    });
  }

  // Runs matching `where` (over runs r), with params, tags and latest metrics.
  std::vector<Run> LoadRuns(const std::string& where, const std::vector<Arg>& args) {
    return db.Read([&] {
      std::vector<Run> runs;
      std::unordered_map<std::string, std::size_t> index;
      auto rows = db.QueryArgs(
          "SELECT r.id, r.experiment_id, e.name, r.name, r.status, r.status_reason, r.start_ms, r.end_ms, "
          "r.heartbeat_ms, COALESCE(r.parent_id, ''), r.user, r.host, r.pid, r.command, r.recforge_version, "
          "r.git_commit FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE " +
              where + " ORDER BY r.start_ms DESC, r.id",
          args);
      while (rows.Step()) {
        Run run;
        run.id = rows.Text(0);
        run.experiment_id = rows.Int(1);
        run.experiment = rows.Text(2);
        run.name = rows.Text(3);
        run.status = ParseRunStatus(rows.Text(4));
        run.status_reason = rows.Text(5);
        run.start_ms = rows.Int(6);
        run.end_ms = rows.Int(7);
        run.heartbeat_ms = rows.Int(8);
        run.parent_id = rows.Text(9);
        run.user = rows.Text(10);
        run.host = rows.Text(11);
        run.pid = rows.Int(12);
        run.command = rows.Text(13);
        run.recforge_version = rows.Text(14);
        run.git_commit = rows.Text(15);
        index.emplace(run.id, runs.size());
        runs.push_back(std::move(run));
      }
      if (runs.empty()) return runs;
      auto for_each = [&](const std::string& sql, auto&& fn) {
        auto statement = db.QueryArgs(sql + " JOIN runs r ON r.id = x.run_id WHERE " + where, args);
        while (statement.Step()) {
          auto it = index.find(statement.Text(0));
          if (it != index.end()) fn(runs[it->second], statement);
        }
      };
      for_each("SELECT x.run_id, x.key, x.value FROM params x",
               [](Run& run, detail::Statement& row) { run.params[row.Text(1)] = row.Text(2); });
      for_each("SELECT x.run_id, x.key, x.value FROM tags x",
               [](Run& run, detail::Statement& row) { run.tags[row.Text(1)] = row.Text(2); });
      // Latest per key: the last row in (step, timestamp, insertion) order wins.
      auto metrics = db.QueryArgs(
          "SELECT x.run_id, x.key, x.value FROM metrics x JOIN runs r ON r.id = x.run_id WHERE " + where +
              " ORDER BY x.run_id, x.key, x.step, x.timestamp_ms, x.id",
          args);
      while (metrics.Step()) {
        auto it = index.find(metrics.Text(0));
        if (it == index.end()) continue;
        runs[it->second].metrics[metrics.Text(1)] =
            metrics.IsNull(2) ? std::numeric_limits<double>::quiet_NaN() : metrics.Double(2);
      }
      return runs;
    });
  }

  Run LoadRun(const std::string& id) {
    auto runs = LoadRuns("r.id = ?", {Arg(id)});
    if (runs.empty()) throw NotFound(fmt::format("tracking store {}: no run '{}'", DbName(), id));
    return std::move(runs.front());
  }

  void InsertMetrics(const std::string& run_id, const std::vector<Metric>& metrics) {
    std::int64_t now = NowMs();
    std::vector<std::string> keys;
    keys.reserve(metrics.size());
    for (const auto& metric : metrics) {
      if (metric.key.empty()) {
        throw InvalidArgument(fmt::format("tracking store {}: run {}: metric key is empty", DbName(), run_id));
      }
      keys.push_back(Lower(metric.key));
    }
    db.Write([&] {
      auto insert = db.Query("INSERT INTO metrics (run_id, key, value, step, timestamp_ms) VALUES (?, ?, ?, ?, ?)");
      for (std::size_t i = 0; i < metrics.size(); ++i) {
        const auto& metric = metrics[i];
        insert.Reset();
        insert.Bind({Arg(run_id), Arg(keys[i]),
                     std::isnan(metric.value) ? Arg(std::monostate{}) : Arg(metric.value), Arg(metric.step),
                     Arg(metric.timestamp_ms != 0 ? metric.timestamp_ms : now)});
        while (insert.Step()) {
        }
      }
    });
  }

  std::vector<ModelVersion> LoadVersions(const std::string& where, const std::vector<Arg>& args) {
    return db.Read([&] {
      std::vector<ModelVersion> versions;
      auto rows = db.QueryArgs(
          "SELECT name, version, run_id, artifact_path, sha256, size, created_ms, description FROM model_versions "
          "WHERE " +
              where + " ORDER BY name, version",
          args);
      while (rows.Step()) {
        ModelVersion version;
        version.name = rows.Text(0);
        version.version = rows.Int(1);
        version.run_id = rows.Text(2);
        version.artifact_path = (location.artifacts / rows.Text(3)).string();
        version.sha256 = rows.Text(4);
        version.size = static_cast<std::uint64_t>(rows.Int(5));
        version.created_ms = rows.Int(6);
        version.description = rows.Text(7);
        auto aliases = db.Query("SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias",
                                version.name, version.version);
        while (aliases.Step()) version.aliases.push_back(aliases.Text(0));
        versions.push_back(std::move(version));
      }
      return versions;
    });
  }

  std::optional<RegisteredModel> LoadModel(const std::string& name) {
    return db.Read([&]() -> std::optional<RegisteredModel> {
      auto row = db.Query("SELECT name, created_ms FROM registered_models WHERE name = ?", name);
      if (!row.Step()) return std::nullopt;
      RegisteredModel model;
      model.name = row.Text(0);
      model.created_ms = row.Int(1);
      model.versions = LoadVersions("name = ?", {Arg(name)});
      auto aliases = db.Query("SELECT alias, version FROM model_aliases WHERE name = ?", name);
      while (aliases.Step()) model.aliases[aliases.Text(0)] = aliases.Int(1);
      return model;
    });
  }

  // Marks RUNNING runs whose process is gone (same host) or whose heartbeat is stale
  // as FAILED. The update re-checks status and heartbeat, so a run that heartbeats
  // or ends in the meantime is left alone.
  void FailDeadRuns() {
    struct Candidate {
      std::string id, host;
      std::int64_t pid, heartbeat_ms, start_ms;
    };
    auto candidates = db.Read([&] {
      std::vector<Candidate> found;
      auto rows = db.Query("SELECT id, host, pid, heartbeat_ms, start_ms FROM runs WHERE status = 'RUNNING'");
      while (rows.Step()) found.push_back({rows.Text(0), rows.Text(1), rows.Int(2), rows.Int(3), rows.Int(4)});
      return found;
    });
    if (candidates.empty()) return;
    std::int64_t now = NowMs();
    std::int64_t stale_ms = std::chrono::duration_cast<std::chrono::milliseconds>(kStaleHeartbeat).count();
    struct Verdict {
      std::string id, reason;
      std::int64_t heartbeat_ms, end_ms;
    };
    std::vector<Verdict> dead;
    for (const auto& run : candidates) {
      std::string reason;
      if (run.host == host && run.pid > 0 && kill(static_cast<pid_t>(run.pid), 0) == -1 && errno == ESRCH) {
        reason = fmt::format("process {} on {} is gone (died without ending the run)", run.pid, run.host);
      } else if (now - run.heartbeat_ms > stale_ms) {
        reason = fmt::format("no heartbeat for {} s (limit {} s); process {} on {} presumed dead",
                             (now - run.heartbeat_ms) / 1000, kStaleHeartbeat.count(), run.pid, run.host);
      }
      if (!reason.empty()) dead.push_back({run.id, reason, run.heartbeat_ms, std::max(run.heartbeat_ms, run.start_ms)});
    }
    if (dead.empty()) return;
    db.Write([&] {
      for (const auto& run : dead) {
        db.Execute(
            "UPDATE runs SET status = 'FAILED', status_reason = ?, end_ms = ? "
            "WHERE id = ? AND status = 'RUNNING' AND heartbeat_ms = ?",
            run.reason, run.end_ms, run.id, run.heartbeat_ms);
      }
    });
  }

  TrackingLocation location;
  Db db;
  int schema_version = 0;
  std::string host = HostName();
};

Store::Store(const TrackingLocation& location) : impl_(std::make_unique<Impl>(location)) {
  impl_->schema_version = detail::Migrate(impl_->db, kSchemaVersion);
  impl_->FailDeadRuns();
}

Store::~Store() = default;

const TrackingLocation& Store::location() const { return impl_->location; }
int Store::schema_version() const { return impl_->schema_version; }

// ---- experiments

std::int64_t Store::GetOrCreateExperiment(const std::string& name) { return impl_->GetOrCreateExperiment(name); }

Experiment Store::CreateExperiment(const std::string& name) {
  if (name.empty()) {
    throw InvalidArgument(fmt::format("tracking store {}: experiment name is empty", impl_->DbName()));
  }
  auto& db = impl_->db;
  db.Write([&] {
    auto found = db.Query("SELECT id FROM experiments WHERE name = ?", name);
    if (found.Step()) {
      throw InvalidArgument(fmt::format("tracking store {}: experiment '{}' already exists", impl_->DbName(), name));
    }
    db.Execute("INSERT INTO experiments (name, created_ms) VALUES (?, ?)", name, NowMs());
  });
  return *impl_->FindExperiment(name);
}

void Store::RenameExperiment(const std::string& from, const std::string& to) {
  if (to.empty()) throw InvalidArgument(fmt::format("tracking store {}: experiment name is empty", impl_->DbName()));
  auto& db = impl_->db;
  db.Write([&] {
    auto existing = impl_->FindExperiment(from);
    if (!existing) throw NotFound(fmt::format("tracking store {}: no experiment '{}'", impl_->DbName(), from));
    auto clash = db.Query("SELECT id FROM experiments WHERE name = ? AND id != ?", to, existing->id);
    if (clash.Step()) {
      throw InvalidArgument(fmt::format("tracking store {}: experiment '{}' already exists", impl_->DbName(), to));
    }
    db.Execute("UPDATE experiments SET name = ? WHERE id = ?", to, existing->id);
  });
}

std::vector<Experiment> Store::ListExperiments() {
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<Experiment> experiments;
    auto rows = db.Query(
        "SELECT e.id, e.name, e.created_ms, (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id) "
        "FROM experiments e ORDER BY e.id");
    while (rows.Step()) experiments.push_back({rows.Int(0), rows.Text(1), rows.Int(2), rows.Int(3)});
    return experiments;
  });
}

std::optional<Experiment> Store::FindExperiment(const std::string& name_or_id) {
  return impl_->FindExperiment(name_or_id);
}

// ---- runs

Run Store::StartRun(const RunStart& start) {
  auto& db = impl_->db;
  std::string name = start.name.empty() ? GeneratedRunName(start) : start.name;
  std::string experiment = start.experiment.empty() ? std::string("Default") : start.experiment;
  std::string parent = start.parent_id.empty() ? std::string() : impl_->ResolveRunId(start.parent_id);
  std::string user = UserName();
  std::int64_t pid = getpid();
  return db.Write([&] {
    std::string id = NewRunId();
    std::int64_t now = NowMs();
    std::int64_t experiment_id = impl_->GetOrCreateExperiment(experiment);
    if (!parent.empty()) {
      auto exists = db.Query("SELECT 1 FROM runs WHERE id = ?", parent);
      if (!exists.Step()) throw NotFound(fmt::format("tracking store {}: no run '{}'", impl_->DbName(), parent));
    }
    db.Execute(
        "INSERT INTO runs (id, experiment_id, name, status, status_reason, start_ms, end_ms, heartbeat_ms, "
        "parent_id, user, host, pid, command, recforge_version, git_commit) "
        "VALUES (?, ?, ?, 'RUNNING', '', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
        id, experiment_id, name, now, now, parent.empty() ? Arg(std::monostate{}) : Arg(parent), user,
        impl_->host, pid, start.command, std::string(Version()), std::string(GitCommit()));
    for (const auto& [key, value] : start.tags) {
      if (key.empty()) throw InvalidArgument(fmt::format("tracking store {}: tag key is empty", impl_->DbName()));
      db.Execute("INSERT OR REPLACE INTO tags (run_id, key, value) VALUES (?, ?, ?)", id, key, value);
    }
    return impl_->LoadRun(id);
  });
}

void Store::EndRun(const std::string& run_id, RunStatus status, const std::string& reason) {
  if (status == RunStatus::kRunning) {
    throw InvalidArgument(fmt::format("run {}: cannot end a run with status RUNNING (use FINISHED, FAILED or KILLED)",
                                      run_id));
  }
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  db.Write([&] {
    std::int64_t now = NowMs();
    db.Execute("UPDATE runs SET status = ?, status_reason = ?, end_ms = ?, heartbeat_ms = ? WHERE id = ?",
               std::string(Name(status)), reason, now, now, id);
  });
}

void Store::Heartbeat(const std::string& run_id) {
  auto& db = impl_->db;
  bool found = db.Write([&] {
    db.Execute("UPDATE runs SET heartbeat_ms = ? WHERE id = ?", NowMs(), run_id);
    return db.Changes() > 0;
  });
  if (!found) throw NotFound(fmt::format("tracking store {}: no run '{}'", impl_->DbName(), run_id));
}

void Store::LogParams(const std::string& run_id, const std::map<std::string, std::string>& params) {
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  db.Write([&] {
    for (const auto& [key, value] : params) {
      if (key.empty()) throw InvalidArgument(fmt::format("run {}: param key is empty", id));
      db.Execute("INSERT OR REPLACE INTO params (run_id, key, value) VALUES (?, ?, ?)", id, key, value);
    }
  });
}

void Store::LogMetric(const std::string& run_id, const std::string& key, double value, std::int64_t step) {
  impl_->InsertMetrics(impl_->ResolveRunId(run_id), {Metric{key, value, step, 0}});
}

void Store::LogMetrics(const std::string& run_id, const std::vector<Metric>& metrics) {
  if (metrics.empty()) return;
  impl_->InsertMetrics(impl_->ResolveRunId(run_id), metrics);
}

void Store::SetTags(const std::string& run_id, const std::map<std::string, std::string>& tags) {
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  db.Write([&] {
    for (const auto& [key, value] : tags) {
      if (key.empty()) throw InvalidArgument(fmt::format("run {}: tag key is empty", id));
      db.Execute("INSERT OR REPLACE INTO tags (run_id, key, value) VALUES (?, ?, ?)", id, key, value);
    }
  });
}

Artifact Store::LogArtifact(const std::string& run_id, const fs::path& source, const std::string& name,
                            const std::string& kind) {
  std::string id = impl_->ResolveRunId(run_id);
  fs::path relative = CheckArtifactName(id, name);
  if (kind.empty()) throw InvalidArgument(fmt::format("run {}: artifact '{}' has no kind", id, name));
  // The copy happens outside any transaction: the write lock is held only for the row.
  Artifact artifact = CopyHashing(source, impl_->location.artifacts / id / relative);
  artifact.path = relative.generic_string();
  artifact.kind = kind;
  auto& db = impl_->db;
  db.Write([&] {
    db.Execute("INSERT OR REPLACE INTO artifacts (run_id, path, kind, size, sha256, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
               id, artifact.path, artifact.kind, artifact.size, artifact.sha256, NowMs());
  });
  return artifact;
}

void Store::LogLineage(const std::string& run_id, const std::string& direction, const std::string& kind,
                       const std::string& hash, const std::string& path) {
  if (direction != "input" && direction != "output") {
    throw InvalidArgument(fmt::format("run {}: lineage direction '{}' is invalid (allowed: input, output)", run_id,
                                      direction));
  }
  if (hash.empty()) throw InvalidArgument(fmt::format("run {}: lineage {} '{}' has no hash", run_id, direction, path));
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  db.Write([&] {
    db.Execute("INSERT OR IGNORE INTO lineage (run_id, direction, kind, hash, path) VALUES (?, ?, ?, ?, ?)", id,
               direction, kind, hash, path);
  });
}

void Store::RecordDataset(const DatasetRecord& dataset) {
  if (dataset.hash.empty()) {
    throw InvalidArgument(fmt::format("tracking store {}: dataset '{}' has no content hash", impl_->DbName(),
                                      dataset.path));
  }
  auto& db = impl_->db;
  db.Write([&] {
    db.Execute(
        "INSERT INTO datasets (hash, kind, path, counts, parameters, created_ms) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (hash) DO UPDATE SET kind = excluded.kind, path = excluded.path, counts = excluded.counts, "
        "parameters = excluded.parameters",
        dataset.hash, dataset.kind, dataset.path, dataset.counts.dump(), dataset.parameters.dump(),
        dataset.created_ms != 0 ? dataset.created_ms : NowMs());
  });
}

Run Store::GetRun(const std::string& id_or_prefix) { return impl_->LoadRun(impl_->ResolveRunId(id_or_prefix)); }

std::vector<Run> Store::ListRuns(const RunQuery& query) {
  // Parse first: a bad filter is reported before any work.
  auto filter = detail::RunFilter::Parse(query.filter);
  auto order = detail::ParseOrderBy(query.order_by);
  std::string where = "1 = 1";
  std::vector<Arg> args;
  if (!query.experiment.empty()) {
    auto experiment = impl_->FindExperiment(query.experiment);
    if (!experiment) {
      throw NotFound(fmt::format("tracking store {}: no experiment '{}'", impl_->DbName(), query.experiment));
    }
    where += " AND r.experiment_id = ?";
    args.emplace_back(experiment->id);
  }
  if (!query.parent_id.empty()) {
    where += " AND r.parent_id = ?";
    args.emplace_back(impl_->ResolveRunId(query.parent_id));
  }
  auto runs = impl_->LoadRuns(where, args);
  if (!filter.empty()) {
    std::erase_if(runs, [&](const Run& run) { return !filter.Matches(run); });
  }
  detail::SortRuns(runs, order);
  if (query.limit != 0 && runs.size() > query.limit) runs.resize(query.limit);
  return runs;
}

std::vector<Metric> Store::MetricHistory(const std::string& run_id, const std::string& key) {
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<Metric> history;
    auto rows = db.Query(
        "SELECT key, value, step, timestamp_ms FROM metrics WHERE run_id = ? AND key = ? "
        "ORDER BY step, timestamp_ms, id",
        id, Lower(key));
    while (rows.Step()) {
      history.push_back({rows.Text(0), rows.IsNull(1) ? std::numeric_limits<double>::quiet_NaN() : rows.Double(1),
                         rows.Int(2), rows.Int(3)});
    }
    return history;
  });
}

std::vector<std::string> Store::MetricKeys(const std::string& run_id) {
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<std::string> keys;
    auto rows = db.Query("SELECT DISTINCT key FROM metrics WHERE run_id = ? ORDER BY key", id);
    while (rows.Step()) keys.push_back(rows.Text(0));
    return keys;
  });
}

std::vector<Artifact> Store::Artifacts(const std::string& run_id) {
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<Artifact> artifacts;
    auto rows = db.Query("SELECT path, kind, size, sha256 FROM artifacts WHERE run_id = ? ORDER BY path", id);
    while (rows.Step()) {
      artifacts.push_back({rows.Text(0), rows.Text(1), static_cast<std::uint64_t>(rows.Int(2)), rows.Text(3)});
    }
    return artifacts;
  });
}

std::vector<LineageEdge> Store::Lineage(const std::string& run_id) {
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<LineageEdge> edges;
    auto rows = db.Query("SELECT run_id, direction, kind, hash, path FROM lineage WHERE run_id = ? ORDER BY id", id);
    while (rows.Step()) edges.push_back({rows.Text(0), rows.Text(1), rows.Text(2), rows.Text(3), rows.Text(4)});
    return edges;
  });
}

std::optional<DatasetRecord> Store::FindDataset(const std::string& hash) {
  auto& db = impl_->db;
  return db.Read([&]() -> std::optional<DatasetRecord> {
    auto row = db.Query("SELECT hash, kind, path, counts, parameters, created_ms FROM datasets WHERE hash = ?", hash);
    if (!row.Step()) return std::nullopt;
    DatasetRecord dataset;
    dataset.hash = row.Text(0);
    dataset.kind = row.Text(1);
    dataset.path = row.Text(2);
    try {
      dataset.counts = nlohmann::json::parse(row.Text(3));
      dataset.parameters = nlohmann::json::parse(row.Text(4));
    } catch (const nlohmann::json::exception& error) {
      throw FormatError(fmt::format("tracking store {}: dataset {}: corrupt JSON: {}", impl_->DbName(), hash,
                                    error.what()));
    }
    dataset.created_ms = row.Int(5);
    return dataset;
  });
}

std::vector<std::string> Store::RunsWriting(const std::string& hash) {
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<std::string> ids;
    auto rows = db.Query(
        "SELECT r.id FROM runs r WHERE r.id IN (SELECT run_id FROM lineage WHERE hash = ? AND direction = 'output' "
        "UNION SELECT run_id FROM artifacts WHERE sha256 = ?) ORDER BY r.start_ms, r.id",
        hash, hash);
    while (rows.Step()) ids.push_back(rows.Text(0));
    return ids;
  });
}

std::vector<std::string> Store::RunsReading(const std::string& hash) {
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<std::string> ids;
    auto rows = db.Query(
        "SELECT r.id FROM runs r WHERE r.id IN (SELECT run_id FROM lineage WHERE hash = ? AND direction = 'input') "
        "ORDER BY r.start_ms, r.id",
        hash);
    while (rows.Step()) ids.push_back(rows.Text(0));
    return ids;
  });
}

std::optional<Run> Store::FindFinishedRunByTag(const std::string& experiment, const std::string& key,
                                               const std::string& value) {
  auto& db = impl_->db;
  auto id = db.Read([&]() -> std::optional<std::string> {
    auto row = db.Query(
        "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id JOIN tags t ON t.run_id = r.id "
        "WHERE e.name = ? AND r.status = 'FINISHED' AND t.key = ? AND t.value = ? "
        "ORDER BY r.end_ms DESC, r.id LIMIT 1",
        experiment, key, value);
    if (!row.Step()) return std::nullopt;
    return row.Text(0);
  });
  if (!id) return std::nullopt;
  return impl_->LoadRun(*id);
}

void Store::DeleteRun(const std::string& run_id) {
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  db.Write([&] {
    auto versions = db.Query("SELECT name, version FROM model_versions WHERE run_id = ? ORDER BY name, version", id);
    if (versions.Step()) {
      throw InvalidArgument(fmt::format(
          "run {}: cannot delete it, its model is registered as {}/{} (the registry references its artifact)", id,
          versions.Text(0), versions.Int(1)));
    }
    db.Execute("UPDATE runs SET parent_id = NULL WHERE parent_id = ?", id);
    db.Execute("DELETE FROM runs WHERE id = ?", id);
  });
  std::error_code ec;
  fs::remove_all(impl_->location.artifacts / id, ec);
  if (ec) {
    throw IoError(fmt::format("run {}: deleted, but its artifact folder {} could not be removed: {}", id,
                              (impl_->location.artifacts / id).string(), ec.message()));
  }
}

// ---- model registry

ModelVersion Store::RegisterModel(const std::string& name, const std::string& run_id,
                                  const std::string& description) {
  CheckRegistryName("model name", name);
  std::string id = impl_->ResolveRunId(run_id);
  auto& db = impl_->db;
  auto artifact = db.Read([&]() -> std::optional<Artifact> {
    auto row = db.Query(
        "SELECT path, kind, size, sha256 FROM artifacts WHERE run_id = ? AND kind = 'model' "
        "ORDER BY created_ms DESC, path LIMIT 1",
        id);
    if (!row.Step()) return std::nullopt;
    return Artifact{row.Text(0), row.Text(1), static_cast<std::uint64_t>(row.Int(2)), row.Text(3)};
  });
  if (!artifact) {
    throw NotFound(fmt::format("run {}: has no artifact of kind 'model' to register as '{}'", id, name));
  }
  fs::path file = impl_->location.artifacts / id / artifact->path;
  std::string actual = Sha256File(file);
  if (actual != artifact->sha256) {
    throw FormatError(fmt::format("{}: checksum mismatch (sha256 {} recorded for run {}, file has {}); the model "
                                  "file was modified or corrupted",
                                  file.string(), artifact->sha256, id, actual));
  }
  std::string relative = (fs::path(id) / artifact->path).generic_string();
  std::int64_t version = db.Write([&] {
    std::int64_t now = NowMs();
    db.Execute("INSERT OR IGNORE INTO registered_models (name, created_ms) VALUES (?, ?)", name, now);
    auto next = db.Query("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?", name);
    next.Step();
    std::int64_t number = next.Int(0);
    db.Execute(
        "INSERT INTO model_versions (name, version, run_id, artifact_path, sha256, size, created_ms, description) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        name, number, id, relative, artifact->sha256, artifact->size, now, description);
    return number;
  });
  return impl_->LoadVersions("name = ? AND version = ?", {Arg(name), Arg(version)}).front();
}

std::vector<RegisteredModel> Store::ListModels() {
  auto& db = impl_->db;
  return db.Read([&] {
    std::vector<std::string> names;
    auto rows = db.Query("SELECT name FROM registered_models ORDER BY name");
    while (rows.Step()) names.push_back(rows.Text(0));
    std::vector<RegisteredModel> models;
    for (const auto& name : names) {
      if (auto model = impl_->LoadModel(name)) models.push_back(std::move(*model));
    }
    return models;
  });
}

RegisteredModel Store::GetModel(const std::string& name) {
  auto model = impl_->LoadModel(name);
  if (!model) throw NotFound(fmt::format("tracking store {}: no registered model '{}'", impl_->DbName(), name));
  return std::move(*model);
}

void Store::SetAlias(const std::string& name, const std::string& alias, std::int64_t version) {
  CheckRegistryName("alias", alias);
  auto& db = impl_->db;
  db.Write([&] {
    auto exists = db.Query("SELECT 1 FROM model_versions WHERE name = ? AND version = ?", name, version);
    if (!exists.Step()) {
      throw NotFound(fmt::format("tracking store {}: model '{}' has no version {}", impl_->DbName(), name, version));
    }
    db.Execute("INSERT OR REPLACE INTO model_aliases (name, alias, version) VALUES (?, ?, ?)", name, alias, version);
  });
}

void Store::DeleteAlias(const std::string& name, const std::string& alias) {
  auto& db = impl_->db;
  bool removed = db.Write([&] {
    db.Execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", name, alias);
    return db.Changes() > 0;
  });
  if (!removed) {
    throw NotFound(fmt::format("tracking store {}: model '{}' has no alias '{}'", impl_->DbName(), name, alias));
  }
}

ModelVersion Store::ResolveModel(const std::string& reference) {
  std::string name = reference;
  std::optional<std::string> alias;
  std::optional<std::int64_t> number;
  if (auto at = reference.find('@'); at != std::string::npos) {
    name = reference.substr(0, at);
    alias = reference.substr(at + 1);
  } else if (auto slash = reference.rfind('/');
             slash != std::string::npos && AllDigits(std::string_view(reference).substr(slash + 1)) &&
             reference.size() - slash < 18) {
    name = reference.substr(0, slash);
    number = std::stoll(reference.substr(slash + 1));
  }
  auto model = impl_->LoadModel(name);
  if (!model) throw NotFound(fmt::format("tracking store {}: no registered model '{}'", impl_->DbName(), name));
  if (model->versions.empty()) throw NotFound(fmt::format("model '{}' has no versions", name));
  if (alias) {
    auto it = model->aliases.find(*alias);
    if (it == model->aliases.end()) {
      std::string known;
      for (const auto& [known_alias, known_version] : model->aliases) {
        known += (known.empty() ? "" : ", ") + known_alias;
      }
      throw NotFound(fmt::format("model '{}' has no alias '{}' (aliases: {})", name, *alias,
                                 known.empty() ? "none" : known));
    }
    number = it->second;
  }
  if (!number) return model->versions.back();
  for (const auto& version : model->versions) {
    if (version.version == *number) return version;
  }
  throw NotFound(fmt::format("model '{}' has no version {} (versions 1..{})", name, *number,
                             model->versions.back().version));
}

void Store::VerifyModelVersion(const ModelVersion& version) {
  std::error_code ec;
  if (!fs::exists(version.artifact_path, ec)) {
    throw IoError(fmt::format("{}: model file of {}/{} is missing", version.artifact_path, version.name,
                              version.version));
  }
  std::string actual = Sha256File(version.artifact_path);
  if (actual != version.sha256) {
    throw FormatError(fmt::format("{}: checksum mismatch for model {}/{} (registered sha256 {}, file has {})",
                                  version.artifact_path, version.name, version.version, version.sha256, actual));
  }
}

}  // namespace recforge::tracking
