// docs/cli.md cannot drift from the CLI (issue 18): its command reference is `recur help-markdown`
// (every command's own --help) spliced between two marker lines by scripts/update_cli_docs.sh,
// and this test fails while the committed file differs from what the binary prints now. Its
// conventions table must have a row for every command with every cell filled.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"

namespace fs = std::filesystem;

namespace {

const std::string kDoc = std::string(RECUR_SOURCE_DIR) + "/docs/cli.md";
const std::string kBegin = "<!-- BEGIN GENERATED: recur help-markdown (scripts/update_cli_docs.sh) -->";
const std::string kEnd = "<!-- END GENERATED -->";

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

class CliDocs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_docs_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // The subcommands `recur --help` lists.
  std::vector<std::string> commands() {
    const auto r = recur::test::run_recur("--help", dir_);
    std::vector<std::string> out;
    bool in = false;
    for (const std::string& l : lines_of(r.out)) {
      if (l.rfind("Subcommands:", 0) == 0) in = true;
      else if (in && l.size() > 2 && l[0] == ' ' && l[2] != ' ') out.push_back(l.substr(2, l.find(' ', 2) - 2));
    }
    return out;
  }
  fs::path dir_;
};

TEST_F(CliDocs, GeneratedReferenceIsWhatTheCommandsPrintNow) {
  const std::string doc = recur::test::slurp(kDoc);
  const size_t b = doc.find(kBegin + "\n"), e = doc.find("\n" + kEnd + "\n");
  ASSERT_NE(b, std::string::npos) << kDoc << ": no line " << kBegin;
  ASSERT_NE(e, std::string::npos) << kDoc << ": no line " << kEnd;
  const std::string committed = doc.substr(b + kBegin.size() + 1, e + 1 - (b + kBegin.size() + 1));
  const auto r = recur::test::run_recur("help-markdown", dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(committed, r.out) << kDoc << " differs from `recur help-markdown`; run scripts/update_cli_docs.sh and commit";
  // Every listed command has its section, and the hidden generator is not listed.
  const auto cmds = commands();
  ASSERT_GE(cmds.size(), 13u);
  for (const std::string& c : cmds) EXPECT_NE(r.out.find("### `recur " + c + "`"), std::string::npos) << c;
  EXPECT_EQ(std::set<std::string>(cmds.begin(), cmds.end()).count("help-markdown"), 0u);
}

TEST_F(CliDocs, ConventionsTableHasEveryCommandAndNoEmptyCell) {
  const auto lines = lines_of(recur::test::slurp(kDoc));
  const std::string head = "| command | input from `-` | output `-o` | `--json` | exit codes |";
  size_t at = 0;
  while (at < lines.size() && lines[at] != head) ++at;
  ASSERT_LT(at, lines.size()) << kDoc << ": no conventions table headed " << head;
  std::set<std::string> rows;
  for (size_t i = at + 2; i < lines.size() && lines[i].rfind("|", 0) == 0; ++i) {
    std::vector<std::string> cells;
    std::string cell;
    bool code = false;
    for (size_t k = 1; k < lines[i].size(); ++k) {
      const char ch = lines[i][k];
      if (ch == '`') code = !code;
      if (ch == '|' && !code) {
        cells.push_back(cell);
        cell.clear();
      } else {
        cell += ch;
      }
    }
    ASSERT_EQ(cells.size(), 5u) << lines[i];
    for (const std::string& c : cells) EXPECT_NE(c.find_first_not_of(' '), std::string::npos) << "empty cell: " << lines[i];
    const size_t q = cells[0].find("`recur ");
    ASSERT_NE(q, std::string::npos) << lines[i];
    rows.insert(cells[0].substr(q + 7, cells[0].find_first_of(" `", q + 7) - q - 7));
  }
  for (const std::string& c : commands()) EXPECT_EQ(rows.count(c), 1u) << "no row for recur " << c;
}

}  // namespace
