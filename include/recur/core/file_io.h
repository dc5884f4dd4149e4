// recur/core/file_io.h - the one way recur writes a file: a sibling temporary file, written
// with every call checked, flushed and fsynced, then renamed over the target, so a reader sees
// the old file or the new one and never a half-written one (a full disk, a file-size limit or a
// killed process leave the previous file intact).
//
// Temporary names are "<path>.tmp.<pid>.<n>": the pid tells a later run which temporaries belong
// to processes that no longer exist (remove_stale_temporaries).
#pragma once

#include <string>
#include <string_view>

namespace recur {

// Writes `bytes` to `path` atomically. Throws Error "<path>: cannot write <what>: <strerror>"
// (for example "run/last.safetensors: cannot write the checkpoint: File too large" under a
// file-size limit) and leaves no temporary behind.
void write_file_atomic(const std::string& path, std::string_view bytes, const std::string& what = "the file");

// A fresh temporary name next to `path` for writers that create the file themselves (libsmf,
// gnuplot); hand it to commit_temporary afterwards.
std::string temporary_path(const std::string& path);
// Fsyncs the finished temporary `tmp` and renames it over `path` (then fsyncs the directory,
// best effort). On failure removes `tmp` and throws Error "<path>: cannot write <what>: ...".
void commit_temporary(const std::string& tmp, const std::string& path, const std::string& what = "the file");

// Removes "<name>.tmp.<pid>[.<n>]" files in `dir` whose pid is not a running process (left by a
// run that was killed mid-write). Returns how many were removed; errors are ignored, since a
// leftover temporary is harmless.
int remove_stale_temporaries(const std::string& dir);

}  // namespace recur
