// Replays every committed fuzz input - the seed corpora (fuzz/corpus/<target>/) and the inputs
// that once crashed a reader (fuzz/regressions/<target>/) - through the fuzz targets' entry
// functions (fuzz/targets.cpp), without libFuzzer, so every build checks them. A reader may
// answer an input with recur::Error; any other exception fails the test naming the file (a
// crash or, in the RECUR_SANITIZE build, a sanitizer report ends the process).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "targets.h"

namespace fs = std::filesystem;
using recur::fuzz::FuzzTarget;

namespace {

const fs::path kFuzzDir = RECUR_FUZZ_DIR;

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void replay(const FuzzTarget& t, const fs::path& file) {
  const std::string bytes = read_bytes(file);
  try {
    EXPECT_EQ(t.entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0) << file;
  } catch (const std::exception& e) {
    ADD_FAILURE() << file.string() << ": escaped the reader as " << typeid(e).name() << ": " << e.what();
  } catch (...) {
    ADD_FAILURE() << file.string() << ": escaped the reader as a non-standard exception";
  }
}

class FuzzReplay : public ::testing::TestWithParam<FuzzTarget> {};

TEST_P(FuzzReplay, SeedCorpusIsPresentAndReadsWithoutEscapes) {
  const auto files = files_in(kFuzzDir / "corpus" / GetParam().name);
  ASSERT_FALSE(files.empty()) << "no seed corpus in fuzz/corpus/" << GetParam().name << " (fuzz/make_corpus.sh)";
  for (const auto& f : files) replay(GetParam(), f);
}

TEST_P(FuzzReplay, RegressionsReadWithoutEscapes) {
  for (const auto& f : files_in(kFuzzDir / "regressions" / GetParam().name)) replay(GetParam(), f);
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::ValuesIn(recur::fuzz::fuzz_targets().begin(),
                                                                   recur::fuzz::fuzz_targets().end()),
                         [](const auto& info) { return std::string(info.param.name); });

// A folder under corpus/ or regressions/ that names no target would never be replayed.
TEST(FuzzReplayLayout, EveryFolderNamesATarget) {
  std::set<std::string> names;
  for (const FuzzTarget& t : recur::fuzz::fuzz_targets()) names.insert(t.name);
  for (const char* kind : {"corpus", "regressions"}) {
    if (!fs::is_directory(kFuzzDir / kind)) continue;
    for (const auto& e : fs::directory_iterator(kFuzzDir / kind))
      EXPECT_TRUE(names.count(e.path().filename().string())) << e.path() << " names no fuzz target";
  }
}

// The harness itself: an input a reader refuses must come back as 0 (recur::Error swallowed),
// so a failure above means an escape, not a rejected input.
TEST(FuzzReplayHarness, RefusedInputIsNotAnEscape) {
  const std::string junk = "\xff\xfe not a file any reader accepts {[";
  for (const FuzzTarget& t : recur::fuzz::fuzz_targets())
    EXPECT_EQ(t.entry(reinterpret_cast<const uint8_t*>(junk.data()), junk.size()), 0) << t.name;
}

}  // namespace
