#include "recur/core/file_io.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

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

}  // namespace

std::string temporary_path(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void write_file_atomic(const std::string& path, std::string_view bytes, const std::string& what) {
  const std::string tmp = temporary_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, tmp, what, errno);
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
