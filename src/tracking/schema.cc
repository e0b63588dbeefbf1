// The SQLite connection wrapper and the versioned schema of the tracking store.
#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <thread>

#include "sqlite_db.h"

namespace recforge::tracking::detail {

namespace {

[[noreturn]] void Fail(sqlite3* db, const fs::path& file, int rc, std::string_view what) {
  int primary = rc & 0xff;
  std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    throw BusyError(fmt::format("tracking store {}: {}: busy", file.string(), what));
  }
  if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
    throw FormatError(fmt::format("tracking store {}: not a valid tracking database ({})", file.string(),
                                  message));
  }
  throw IoError(fmt::format("tracking store {}: {}: {}", file.string(), what, message));
}

// Migration steps, applied in order from an empty file. Never edit a released step;
// append a new one and bump Store::kSchemaVersion.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE experiments (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT NOT NULL UNIQUE,
  created_ms  INTEGER NOT NULL
);
CREATE TABLE runs (
  id                TEXT PRIMARY KEY,
  experiment_id     INTEGER NOT NULL REFERENCES experiments(id),
  name              TEXT NOT NULL,
  status            TEXT NOT NULL CHECK (status IN ('RUNNING', 'FINISHED', 'FAILED', 'KILLED')),
  status_reason     TEXT NOT NULL DEFAULT '',
  start_ms          INTEGER NOT NULL,
  end_ms            INTEGER NOT NULL DEFAULT 0,
  heartbeat_ms      INTEGER NOT NULL,
  parent_id         TEXT REFERENCES runs(id) ON DELETE SET NULL,
  user              TEXT NOT NULL DEFAULT '',
  host              TEXT NOT NULL DEFAULT '',
  pid               INTEGER NOT NULL DEFAULT 0,
  command           TEXT NOT NULL DEFAULT '',
  recforge_version  TEXT NOT NULL DEFAULT '',
  git_commit        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_experiment ON runs(experiment_id, start_ms);
CREATE INDEX runs_by_parent ON runs(parent_id);
CREATE INDEX runs_by_status ON runs(status);
CREATE TABLE params (
  run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key     TEXT NOT NULL,
  value   TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE tags (
  run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key     TEXT NOT NULL,
  value   TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX tags_by_key ON tags(key, value);
-- Full history: one row per logged value. value is NULL for NaN.
CREATE TABLE metrics (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key           TEXT NOT NULL,
  value         REAL,
  step          INTEGER NOT NULL,
  timestamp_ms  INTEGER NOT NULL
);
CREATE INDEX metrics_by_run ON metrics(run_id, key, step, timestamp_ms);
CREATE TABLE artifacts (
  run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  path        TEXT NOT NULL,
  kind        TEXT NOT NULL,
  size        INTEGER NOT NULL,
  sha256      TEXT NOT NULL,
  created_ms  INTEGER NOT NULL,
  PRIMARY KEY (run_id, path)
);
CREATE INDEX artifacts_by_sha ON artifacts(sha256);
CREATE TABLE datasets (
  hash        TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  path        TEXT NOT NULL,
  counts      TEXT NOT NULL,
  parameters  TEXT NOT NULL,
  created_ms  INTEGER NOT NULL
);
CREATE TABLE lineage (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  direction  TEXT NOT NULL CHECK (direction IN ('input', 'output')),
  kind       TEXT NOT NULL,
  hash       TEXT NOT NULL,
  path       TEXT NOT NULL,
  UNIQUE (run_id, direction, kind, hash, path)
);
CREATE INDEX lineage_by_hash ON lineage(hash, direction);
CREATE TABLE registered_models (
  name        TEXT PRIMARY KEY,
  created_ms  INTEGER NOT NULL
);
-- artifact_path is relative to the artifact root (<run id>/<artifact path>).
CREATE TABLE model_versions (
  name           TEXT NOT NULL REFERENCES registered_models(name) ON DELETE CASCADE,
  version        INTEGER NOT NULL,
  run_id         TEXT NOT NULL REFERENCES runs(id),
  artifact_path  TEXT NOT NULL,
  sha256         TEXT NOT NULL,
  size           INTEGER NOT NULL,
  created_ms     INTEGER NOT NULL,
  description    TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions(run_id);
CREATE TABLE model_aliases (
  name     TEXT NOT NULL,
  alias    TEXT NOT NULL,
  version  INTEGER NOT NULL,
  PRIMARY KEY (name, alias),
  FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON DELETE CASCADE
);
)sql"},
};

}  // namespace

Statement::Statement(sqlite3* db, const fs::path* file, std::string_view sql) : db_(db), file_(file) {
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    Fail(db_, *file_, rc, fmt::format("preparing '{}'", sql.substr(0, 60)));
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), file_(other.file_), stmt_(std::exchange(other.stmt_, nullptr)) {}

void Statement::Bind(const std::vector<Arg>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    int index = static_cast<int>(i) + 1;
    int rc = std::visit(
        [&](const auto& value) {
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, std::monostate>) {
            return sqlite3_bind_null(stmt_, index);
          } else if constexpr (std::is_same_v<T, std::int64_t>) {
            return sqlite3_bind_int64(stmt_, index, value);
          } else if constexpr (std::is_same_v<T, double>) {
            return sqlite3_bind_double(stmt_, index, value);
          } else {
            return sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                                     SQLITE_TRANSIENT);
          }
        },
        args[i]);
    if (rc != SQLITE_OK) Fail(db_, *file_, rc, "binding a value");
  }
}

bool Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Fail(db_, *file_, rc, fmt::format("running '{}'", std::string_view(sqlite3_sql(stmt_)).substr(0, 60)));
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
std::int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }
double Statement::Double(int column) const { return sqlite3_column_double(stmt_, column); }
std::string Statement::Text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

Db::Db(const fs::path& file) : file_(file) {
  int rc = sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw IoError(fmt::format("tracking store {}: cannot open: {}", file.string(), message));
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(kBusyTimeout.count()));
  try {
    Exec("PRAGMA foreign_keys = ON");
    // WAL lets readers run beside the one writer; NORMAL sync is durable against a
    // crashed process (the WAL is fsynced at checkpoints), which is what we need.
    std::string mode = Retry([&] {
      auto statement = Query("PRAGMA journal_mode = WAL");
      return statement.Step() ? statement.Text(0) : std::string();
    });
    if (mode != "wal") {
      throw IoError(fmt::format("tracking store {}: cannot switch to WAL mode (journal mode is '{}')",
                                file.string(), mode));
    }
    Exec("PRAGMA synchronous = NORMAL");
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Db::~Db() { sqlite3_close(db_); }

void Db::Exec(const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error != nullptr ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      throw BusyError(fmt::format("tracking store {}: busy", file_.string()));
    }
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
      throw FormatError(fmt::format("tracking store {}: not a valid tracking database ({})", file_.string(),
                                    message));
    }
    throw IoError(fmt::format("tracking store {}: {}", file_.string(), message));
  }
}

void Db::Rollback() noexcept {
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Db::Backoff(int attempt, std::chrono::steady_clock::time_point started) {
  if (std::chrono::steady_clock::now() - started > kBusyDeadline) {
    throw IoError(fmt::format("tracking store {}: still busy after {} s of retries (another process holds "
                              "the write lock)",
                              file_.string(), kBusyDeadline.count()));
  }
  thread_local std::minstd_rand jitter(std::random_device{}());
  int base_ms = std::min(1 << std::min(attempt, 8), 200);
  std::uniform_int_distribution<int> spread(base_ms / 2 + 1, base_ms + base_ms / 2 + 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(spread(jitter)));
}

int Migrate(Db& db, int newest) {
  auto current_version = [&db] {
    auto exists = db.Query("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'");
    exists.Step();
    if (exists.Int(0) == 0) return 0;
    auto version = db.Query("SELECT COALESCE(MAX(version), 0) FROM schema_version");
    version.Step();
    return static_cast<int>(version.Int(0));
  };
  int found = db.Read(current_version);
  auto check_newer = [&](int version) {
    if (version > newest) {
      throw FormatError(fmt::format("tracking store {}: schema version {} is newer than this recforge "
                                    "understands ({}); upgrade recforge",
                                    db.file().string(), version, newest));
    }
  };
  check_newer(found);
  if (found == newest) return found;
  return db.Write([&] {
    int version = current_version();  // another process may have migrated meanwhile
    check_newer(version);
    db.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)");
    for (const auto& step : kMigrations) {
      if (step.version <= version || step.version > newest) continue;
      db.Exec(step.sql);
      auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
      db.Execute("INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)", step.version, now);
      version = step.version;
    }
    return version;
  });
}

}  // namespace recforge::tracking::detail
