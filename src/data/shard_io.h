// src/data/shard_io.h - the byte-level pieces shared by the prepared-corpus formats (text:
// data/prepared.cpp; tasks: tasks/prepared_task.cpp): little-endian fields, hash text, shard
// names, the FNV-1a hash both formats name their tables by, a whole-file read and a pread that
// name the file (and the byte) when they fail. Internal to the library.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "recur/core/error.h"

namespace recur::detail {

inline void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xFF));
}
inline uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
// 64-bit FNV-1a of the bytes, from the standard offset basis unless told another.
inline uint64_t fnv1a(std::string_view bytes, uint64_t basis = 0xcbf29ce484222325ULL) {
  uint64_t h = basis;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}
// The whole of a small file (a manifest, a vocabulary, task tables); `what` names it in errors.
inline std::string slurp(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open " + what + ": " + std::strerror(errno));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw FormatError(path + ": read error");
  return s;
}
inline std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}
inline std::string shard_name(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard-%05lld.bin", (long long)i);
  return buf;
}
// `bytes` from offset `at` of the open file `fd` (named `path` in errors), retried on EINTR; a
// short file is "truncated" (it shrank after its size was checked).
inline void pread_all(int fd, const std::string& path, void* out, int64_t bytes, int64_t at) {
  auto* p = static_cast<char*>(out);
  int64_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pread(fd, p + done, size_t(bytes - done), off_t(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw FormatError(path + ": read error at byte " + std::to_string(at + done) + ": " + std::strerror(errno));
    if (n == 0)
      throw FormatError(path + ": truncated at byte " + std::to_string(at + done) + "; expected " +
                        std::to_string(at + bytes) + " bytes (the file shrank after it was opened)");
    done += n;
  }
}

}  // namespace recur::detail
