// recur/core/file_io.h - the one way recur writes a file: a sibling temporary file, written
// with every call checked, flushed and fsynced, then renamed over the target, so a reader sees
// the old file or the new one and never a half-written one (a full disk, a file-size limit or a
// killed process leave the previous file intact).
//
// Temporary names are "<path>.tmp.<pid>.<n>": the pid tells a later run which temporaries belong
// to processes that no longer exist (remove_stale_temporaries).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace recur {

// ---- reading: the one reader of every input, a path or "-" for standard input ----

// How an input is named in messages: "<stdin>" for "-", else the path itself.
std::string input_name(const std::string& path);

// Limits of read_input. A regular file's size is known before a byte is read and checked against
// file_max_bytes; a pipe, socket or terminal has no size and is read in blocks until
// stream_max_bytes, past which it is refused (an endless pipe such as `yes |` stops with an error
// instead of filling memory). Character and block devices other than a terminal (/dev/zero would
// be read forever) are refused at once, on stdin as on a path.
struct ReadLimits {
  int64_t file_max_bytes = int64_t(64) << 30;
  int64_t stream_max_bytes = int64_t(4) << 30;
  std::string expected = "a UTF-8 text file";  // what the caller wanted, for messages
};

// The whole of `path`, or of standard input when path is "-", as bytes. Throws FormatError naming
// input_name(path): no such file, a directory, a device, a size past the limit (the limit named),
// an open or read error, or running out of memory.
std::string read_input(const std::string& path, const ReadLimits& limits = {});

// ---- writing ----

// Writes `bytes` to `path` atomically. Throws Error "<path>: cannot write <what>: <strerror>"
// (for example "run/last.safetensors: cannot write the checkpoint: File too large" under a
// file-size limit) and leaves no temporary behind.
void write_file_atomic(const std::string& path, std::string_view bytes, const std::string& what = "the file");
// The same for a file made of `pieces` one after the other, written without joining them first
// (a checkpoint's tensors are hundreds of megabytes; a joined copy would double them).
void write_file_atomic(const std::string& path, std::span<const std::string_view> pieces,
                       const std::string& what = "the file");

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
