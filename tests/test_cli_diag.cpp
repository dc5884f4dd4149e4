// The diagnostics commands end to end: `train --diagnostics --plots`, `plot`, `diagnose
// gradients` and `show`, whose page is opened in headless Chromium (Debian's `chromium`; the
// test is skipped with a message when it is missing: scripts/setup.sh browser installs it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string out;  // stdout and stderr
};

Result run(const std::string& args, const fs::path& dir) {
  const fs::path log = dir / "cmd.log";
  const std::string cmd = args + " > '" + log.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ss.str()};
}

std::string cli() { return std::string("'") + RECUR_CLI + "'"; }
bool have(const char* program) {
  return std::system((std::string("command -v ") + program + " >/dev/null 2>&1").c_str()) == 0;
}
bool is_png(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in && std::string(magic + 1, 3) == "PNG" && fs::file_size(p) > 1000;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DiagCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("recur_cli_diag_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream data(dir_ / "data.txt");
    for (int i = 0; i < 80; ++i) data << "to be or not to be, that is the question " << i % 5 << "\n";
    data.close();
    plots_ = have("gnuplot");
    train_ = run(cli() + " train '" + (dir_ / "data.txt").string() + "' --out '" + (dir_ / "run").string() +
                     "' --layers 2 --hidden 16 --seq-len 20 --batch 4 --steps 30 --log-every 5 --valid-every 10"
                     " --diagnostics 10" + (plots_ ? " --plots" : ""),
                 dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static fs::path dir_;
  static bool plots_;
  static Result train_;
};
fs::path DiagCli::dir_;
bool DiagCli::plots_ = false;
Result DiagCli::train_;

TEST_F(DiagCli, TrainRecordsDiagnosticsAndPlots) {
  ASSERT_EQ(train_.status, 0) << train_.out;
  const std::string metrics = slurp(dir_ / "run" / "metrics.jsonl");
  int diag = 0;
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);)
    if (line.find("\"type\":\"diag\"") != std::string::npos) {
      ++diag;
      EXPECT_NE(line.find("\"grad_h_last\""), std::string::npos);
      EXPECT_NE(line.find("\"keep_mean\""), std::string::npos);
    }
  EXPECT_EQ(diag, 3);
  if (!plots_) GTEST_SKIP() << "gnuplot is not installed (apt-get install gnuplot-nox): plots not checked";
  for (const char* name : {"loss", "grad", "diagnostics"}) {
    EXPECT_TRUE(is_png(dir_ / "run" / (std::string(name) + ".png"))) << name;
    EXPECT_NE(slurp(dir_ / "run" / (std::string(name) + ".svg")).find("<svg"), std::string::npos) << name;
  }
}

TEST_F(DiagCli, PlotCommand) {
  ASSERT_EQ(train_.status, 0) << train_.out;
  if (!plots_) GTEST_SKIP() << "gnuplot is not installed (apt-get install gnuplot-nox)";
  const Result r = run(cli() + " plot '" + (dir_ / "run").string() + "' --out '" + (dir_ / "figs").string() + "'", dir_);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(is_png(dir_ / "figs" / "diagnostics.png"));
  // Exactly the three figures in two formats: gnuplot's temporaries were renamed, none is left.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_ / "figs")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"diagnostics.png", "diagnostics.svg", "grad.png", "grad.svg", "loss.png",
                                             "loss.svg"}));
  const Result missing = run(cli() + " plot '" + (dir_ / "nothing").string() + "'", dir_);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.out.find("metrics.jsonl: cannot open"), std::string::npos) << missing.out;
}

// The summary shows the basic RNN's gradient vanishing over far fewer steps than the gated cells'.
TEST_F(DiagCli, DiagnoseGradientsSummary) {
  const Result r = run(cli() + " diagnose gradients --gap 80 --hidden 32 --batch 8 --no-plot", dir_);
  ASSERT_EQ(r.status, 0) << r.out;
  auto vanish = [&](const std::string& cell) {
    std::smatch m;
    const std::regex re(cell + R"(\s+init\s+(>\s*)?(\d+))");
    if (!std::regex_search(r.out, m, re)) {
      ADD_FAILURE() << "no init line for " << cell << " in:\n" << r.out;
      return -1;
    }
    return m[1].matched ? 1000 : std::stoi(m[2]);
  };
  const int rnn = vanish("rnn_tanh"), gru = vanish("gru"), lstm = vanish("lstm");
  EXPECT_GT(rnn, 0);
  EXPECT_GT(gru, rnn + 15) << r.out;
  EXPECT_GT(lstm, rnn + 15) << r.out;
  EXPECT_NE(r.out.find("large init"), std::string::npos);
  if (plots_) {
    const Result p = run(cli() + " diagnose gradients --gap 30 --hidden 8 --batch 4 --out '" + dir_.string() + "'", dir_);
    ASSERT_EQ(p.status, 0) << p.out;
    EXPECT_TRUE(is_png(dir_ / "diagnose_gradients.png"));
  }
}

TEST_F(DiagCli, ShowRejectsBadGate) {
  ASSERT_EQ(train_.status, 0) << train_.out;
  const Result r = run(cli() + " show '" + (dir_ / "run" / "last.safetensors").string() + "' 'to be' --gate r --out '" +
                           (dir_ / "x.html").string() + "'",
                       dir_);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("--gate: got r"), std::string::npos) << r.out;
}

// Headless Chromium opens the page: no script error, the colours follow the picked unit, and
// a screenshot is kept next to the test binary (show_screenshot.png).
TEST_F(DiagCli, ShowPageRendersInChromium) {
  ASSERT_EQ(train_.status, 0) << train_.out;
  const fs::path page = dir_ / "page.html";
  for (const char* gate : {"none", "f"}) {
    const Result r = run(cli() + " show '" + (dir_ / "run" / "last.safetensors").string() +
                             "' 'to be or not to be, that is the question' --gate " + gate + " --out '" + page.string() + "'",
                         dir_);
    ASSERT_EQ(r.status, 0) << r.out;
  }
  const std::string html = slurp(page);
  EXPECT_EQ(html.find("http://"), std::string::npos) << "the page must not load anything";
  EXPECT_EQ(html.find("https://"), std::string::npos) << "the page must not load anything";
  const char* chromium = "/usr/bin/chromium";
  if (::access(chromium, X_OK) != 0)
    GTEST_SKIP() << "chromium is not installed: run 'bash scripts/setup.sh browser' to check the page in a browser";
  const std::string flags =
      std::string(chromium) +
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
      " --disable-component-update --disable-sync --hide-scrollbars --user-data-dir='" +
      (dir_ / "profile").string() + "'";
  auto dump = [&](const std::string& hash) {
    const Result r = run("timeout 120 " + flags + " --dump-dom 'file://" + page.string() + hash + "'", dir_);
    EXPECT_EQ(r.status, 0) << r.out;
    return r.out;
  };
  const std::string a = dump("#unit=0"), b = dump("#unit=2");
  EXPECT_EQ(a.find("id=\"script-error\""), std::string::npos) << a.substr(0, 2000);
  EXPECT_EQ(b.find("id=\"script-error\""), std::string::npos);
  const std::regex status(R"(unit=(\d+) signature=([0-9a-f]+))");
  std::smatch ma, mb;
  ASSERT_TRUE(std::regex_search(a, ma, status)) << "the page did not render";
  ASSERT_TRUE(std::regex_search(b, mb, status)) << "the page did not render";
  EXPECT_EQ(ma[1].str(), "0");
  EXPECT_EQ(mb[1].str(), "2");
  EXPECT_NE(ma[2].str(), mb[2].str()) << "picking another unit did not change the colours";
  EXPECT_NE(a.find("data-rendered=\"1\""), std::string::npos);

  const fs::path shot = fs::current_path() / "show_screenshot.png";
  fs::remove(shot);
  const Result s = run("timeout 120 " + flags + " --window-size=1100,700 --screenshot='" + shot.string() + "' 'file://" +
                           page.string() + "#unit=2'",
                       dir_);
  EXPECT_EQ(s.status, 0) << s.out;
  EXPECT_TRUE(is_png(shot)) << shot;
}

}  // namespace
