#include "recur/core/file_io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <vector>

#include "recur/core/error.h"

namespace recur {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& tmp, const std::string& what, int err) {
  std::remove(tmp.c_str());
  throw Error(path + ": cannot write " + what + ": " + std::strerror(err));
}

void sync_directory_of(const std::string& path) {
  // Best effort: makes the rename itself durable; failing here cannot corrupt the file.
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Closes a descriptor this reader opened (never standard input).
struct FdCloser {
  int fd;
  bool own;
  ~FdCloser() {
    if (own && fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string input_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

std::string read_input(const std::string& path, const ReadLimits& limits) {
  const std::string name = input_name(path);
  const bool is_stdin = path == "-";
  const std::string want = "expected " + limits.expected;
  int fd = 0;
  if (!is_stdin) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) throw FormatError(name + ": no such file; " + want);
    if (S_ISDIR(st.st_mode)) throw FormatError(name + ": is a directory; " + want);
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw FormatError(name + ": cannot open: " + std::strerror(errno));
  }
  const FdCloser closer{fd, !is_stdin};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw FormatError(name + ": cannot read: " + std::strerror(errno));
  // A terminal is a character device too, and typing into `recur classify MODEL` is meant.
  if ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && !::isatty(fd))
    throw FormatError(name + ": is a device; " + want + " (a regular file or a pipe)");
  const bool regular = S_ISREG(st.st_mode);
  if (regular && int64_t(st.st_size) > limits.file_max_bytes)
    throw FormatError(name + ": " + std::to_string(int64_t(st.st_size)) + " bytes exceeds the limit of " +
                      std::to_string(limits.file_max_bytes) + " bytes for " + limits.expected);
  std::string bytes;
  try {
    if (regular) bytes.reserve(size_t(st.st_size));
    std::vector<char> buf(size_t(1) << 20);
    while (true) {
      const ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw FormatError(name + ": read error: " + std::strerror(errno));
      if (n == 0) break;
      bytes.append(buf.data(), size_t(n));
      // A regular file that grows while read is held to the file limit, anything else to the
      // stream limit.
      const int64_t limit = regular ? limits.file_max_bytes : limits.stream_max_bytes;
      if (int64_t(bytes.size()) > limit)
        throw FormatError(name + ": more than " + std::to_string(limit) + " bytes" +
                          (regular ? "" : " from a pipe or terminal") + "; the limit for " + limits.expected +
                          (regular ? "" : " read from a stream (use a regular file)"));
    }
  } catch (const std::bad_alloc&) {
    throw FormatError(name + ": out of memory reading " +
                      (regular ? std::to_string(int64_t(st.st_size)) + " bytes" : std::string("the stream")));
  }
  return bytes;
}

std::string temporary_path(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void write_file_atomic(const std::string& path, std::string_view bytes, const std::string& what) {
  write_file_atomic(path, std::span<const std::string_view>(&bytes, 1), what);
}

void write_file_atomic(const std::string& path, std::span<const std::string_view> pieces, const std::string& what) {
  const std::string tmp = temporary_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, tmp, what, errno);
  for (const std::string_view bytes : pieces) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : EIO;
        ::close(fd);
        fail(path, tmp, what, err);
      }
      done += size_t(n);
    }
  }
  // Without fsync a crash after the rename can leave an empty file under the final name.
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, tmp, what, err);
  }
  if (::close(fd) != 0) fail(path, tmp, what, errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(path, tmp, what, errno);
  sync_directory_of(path);
}

void commit_temporary(const std::string& tmp, const std::string& path, const std::string& what) {
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, tmp, what, errno);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, tmp, what, err);
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(path, tmp, what, errno);
  sync_directory_of(path);
}

int remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos) continue;
    // "<pid>" or "<pid>.<n>", digits only.
    const std::string rest = name.substr(at + 5);
    const size_t dot = rest.find('.');
    const std::string pid_text = rest.substr(0, dot);
    const std::string n_text = dot == std::string::npos ? "1" : rest.substr(dot + 1);
    auto digits = [](const std::string& s) {
      return !s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos;
    };
    if (!digits(pid_text) || !digits(n_text)) continue;
    const pid_t pid = pid_t(std::stol(pid_text));
    // kill(pid, 0) fails with ESRCH only when no such process exists; anything else (EPERM,
    // or a live process) means the file may still be in use.
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (fs::remove(it->path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace recur
