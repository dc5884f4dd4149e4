// recur/core/error.h - the exception types. Every message is one line that names the file or
// argument, the place and what was expected, so the CLI can print it as it is.
#pragma once

#include <stdexcept>
#include <string>

namespace recur {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A tensor or argument of the wrong shape or size was given to the API.
struct ShapeError : Error {
  using Error::Error;
};

// A file (data, model, checkpoint) is malformed or unreadable.
struct FormatError : Error {
  using Error::Error;
};

}  // namespace recur
