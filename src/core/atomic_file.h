// src/core/atomic_file.h - writing a whole file or nothing: the bytes go to a temporary file next
// to the target, which is flushed, fsynced and renamed over it, so a reader never sees half a
// file and a crash leaves the old one. Internal to the library (every folder's sources see it).
#pragma once

#include <string>
#include <string_view>

namespace recur::detail {

// Throws Error "<path>: cannot write <what>: <reason>" (what: "the page", "the token file", ...);
// the temporary file is removed on failure.
void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& what);

}  // namespace recur::detail
