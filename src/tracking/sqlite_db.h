// Internal: a thin RAII layer over one SQLite connection for the tracking store.
//
// Every write goes through Db::Write (BEGIN IMMEDIATE ... COMMIT); reads that need a
// consistent view go through Db::Read. Both retry the whole transaction with
// jittered backoff when SQLite reports SQLITE_BUSY / SQLITE_LOCKED even after the
// connection's busy timeout, so "database is locked" never reaches callers; after
// kBusyDeadline they give up with an IoError naming the database file.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "recforge/core/error.h"

namespace recforge::tracking::detail {

namespace fs = std::filesystem;

// SQLite reported BUSY/LOCKED: the enclosing transaction is rolled back and retried.
class BusyError : public IoError {
 public:
  using IoError::IoError;
};

using Arg = std::variant<std::monostate, std::int64_t, double, std::string>;

template <class T>
Arg ToArg(const T& value) {
  if constexpr (std::is_same_v<T, Arg>) {
    return value;
  } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
    return std::monostate{};
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<double>(value);
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<std::int64_t>(value);
  } else {
    return std::string(std::string_view(value));
  }
}

class Statement {
 public:
  Statement(sqlite3* db, const fs::path* file, std::string_view sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;

  void Bind(const std::vector<Arg>& args);
  bool Step();  // true: a row is available; false: done
  void Reset();

  bool IsNull(int column) const;
  std::int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;

 private:
  sqlite3* db_;
  const fs::path* file_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Db {
 public:
  static constexpr std::chrono::milliseconds kBusyTimeout{10000};
  static constexpr std::chrono::seconds kBusyDeadline{120};

  explicit Db(const fs::path& file);  // opens (creating) the file; foreign keys on
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  const fs::path& file() const { return file_; }
  sqlite3* handle() const { return db_; }

  // Runs one or more statements without results.
  void Exec(const char* sql);

  template <class... A>
  Statement Query(std::string_view sql, const A&... args) {
    Statement statement(db_, &file_, sql);
    statement.Bind(std::vector<Arg>{ToArg(args)...});
    return statement;
  }
  Statement QueryArgs(std::string_view sql, const std::vector<Arg>& args) {
    Statement statement(db_, &file_, sql);
    statement.Bind(args);
    return statement;
  }
  template <class... A>
  void Execute(std::string_view sql, const A&... args) {
    auto statement = Query(sql, args...);
    while (statement.Step()) {
    }
  }
  std::int64_t Changes() const { return sqlite3_changes(db_); }

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT (or as part of the enclosing
  // transaction), retrying on busy. fn must only touch the database and its own
  // locals: it may run more than once.
  template <class Fn>
  auto Write(Fn&& fn) {
    return Transaction(true, std::forward<Fn>(fn));
  }
  template <class Fn>
  auto Read(Fn&& fn) {
    return Transaction(false, std::forward<Fn>(fn));
  }
  // Retries fn (outside any transaction) while it reports busy.
  template <class Fn>
  auto Retry(Fn&& fn) -> decltype(fn()) {
    auto started = std::chrono::steady_clock::now();
    for (int attempt = 0;; ++attempt) {
      try {
        return fn();
      } catch (const BusyError&) {
        Backoff(attempt, started);
      }
    }
  }

 private:
  template <class Fn>
  auto Transaction(bool immediate, Fn&& fn) -> decltype(fn()) {
    if (!sqlite3_get_autocommit(db_)) return fn();  // nested: part of the outer one
    auto started = std::chrono::steady_clock::now();
    for (int attempt = 0;; ++attempt) {
      try {
        Exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN");
      } catch (const BusyError&) {
        Backoff(attempt, started);
        continue;
      }
      try {
        if constexpr (std::is_void_v<decltype(fn())>) {
          fn();
          Exec("COMMIT");
          return;
        } else {
          auto result = fn();
          Exec("COMMIT");
          return result;
        }
      } catch (const BusyError&) {
        Rollback();
        Backoff(attempt, started);
      } catch (...) {
        Rollback();
        throw;
      }
    }
  }
  void Rollback() noexcept;
  // Sleeps before the next attempt; throws IoError once kBusyDeadline has passed.
  void Backoff(int attempt, std::chrono::steady_clock::time_point started);

  fs::path file_;
  sqlite3* db_ = nullptr;
};

// Brings the schema to the newest version (each migration step in order, in one
// write transaction) and returns that version. Throws FormatError when the file was
// written by a newer schema.
int Migrate(Db& db, int newest);

}  // namespace recforge::tracking::detail
