// Error types thrown by library code. The CLI, HTTP handlers and MPI main are the
// only places that catch them (see STYLE.md §4). Every message names the file,
// line, field or parameter at fault.
#pragma once

#include <stdexcept>
#include <string>

namespace recforge {

// Base of every error the library throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A value supplied by the user (flag, spec key, request field) is invalid.
// The CLI maps it to exit code 2.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A file or directory cannot be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

// Input data is malformed beyond what the caller allowed (e.g. --max-errors exceeded,
// unrecognised format, corrupt binary file).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A configuration file or spec string is invalid.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A named thing (user, item, run, model) does not exist.
class NotFound : public Error {
 public:
  using Error::Error;
};

}  // namespace recforge
