// tests/test_util.h - what many test files need (header only): a per-test scratch folder, the
// check that an error is recur's kind of error (one line, naming what the test expects), and
// byte surgery on prepared corpora.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>

#include "recur/core/error.h"

namespace recur::test {

// A scratch folder per process and test under the system's temporary folder, removed after a
// passing test and kept after a failing one (to look at).
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("recur_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Writes `bytes` to the scratch file `name` and returns its path.
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return path(name);
  }
  std::filesystem::path dir_;
};

// Damaging a prepared corpus on purpose (test_prepared.cpp, test_prepared_task.cpp): a shard's
// path in `dir`, little-endian bytes of a field, and bytes written over a file at an offset.
inline std::string shard_path(const std::string& dir, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard-%05d.bin", i);
  return (std::filesystem::path(dir) / buf).string();
}
inline std::string le_bytes(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(char(v >> (8 * i)));
  return s;
}
inline void poke_bytes(const std::string& file, size_t at, std::string_view bytes) {
  std::string s;
  {
    std::ifstream in(file, std::ios::binary);
    s.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  s.replace(at, bytes.size(), bytes);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << s;
}

// fn() must throw E (recur::Error or a subclass) with a one-line message that contains every
// part and none of nlohmann-json's internal wording.
template <typename E = FormatError, typename Fn>
void expect_one_line_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one containing \"" << *parts.begin() << "\"";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(msg.find("json.exception"), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing \"" << p << "\" in: " << msg;
  }
}

}  // namespace recur::test
