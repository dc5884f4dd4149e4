// Command-line input/output conventions of issue 18 through the built `recur` binary: '-' reads
// standard input wherever a file is read (through the one reader, core/file_io.h read_input, with
// its size limit), -o writes a command's result to a file or standard output, --json output of
// every reporting command (checked field by field against the text output of the same run), the
// column options on eval/classify/tag, a CSV whose header is narrower than its rows, RFC 4180
// quoted newlines, and errors that name the model kinds a command accepts.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_run.h"
#include "test_util.h"
#include "recur/core/error.h"
#include "recur/core/file_io.h"
#include "recur/data/task_data.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Result = recur::test::CliResult;
using recur::test::slurp;

const std::string kFixtures = std::string(RECUR_SOURCE_DIR) + "/tests/fixtures/v1/";

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

// Every line of `s` parsed as JSON (JSON Lines); a line that is not JSON fails the test.
std::vector<json> json_lines(const std::string& s) {
  std::vector<json> out;
  for (const std::string& l : lines_of(s)) out.push_back(json::parse(l));
  return out;
}

// The number after `key` on the line of `text` that starts with it ("loss        3.8687 ...").
double number_after(const std::string& text, const std::string& key) {
  for (const std::string& l : lines_of(text))
    if (l.rfind(key, 0) == 0) return std::strtod(l.c_str() + key.size(), nullptr);
  ADD_FAILURE() << "no line starting with '" << key << "' in:\n" << text;
  return NAN;
}

class CliIo : public recur::test::TempDirTest {
 protected:
  Result run(const std::string& args, const std::string& env = "") { return recur::test::run_recur(args, dir_, env); }
  // A small model of a task, trained for a few steps.
  std::string train(const std::string& name, const std::string& data_file, const std::string& opts) {
    const std::string out = path("run_" + name);
    const Result r = run("train '" + data_file + "' --out '" + out + "' " + opts +
                         " --hidden 8 --embed 8 --batch 4 --threads 1 --steps 3 --quiet");
    EXPECT_EQ(r.rc, 0) << r.err;
    return out + "/last.safetensors";
  }
  std::string classifier() {
    std::string csv = "text,label,a,b\n";
    for (int i = 0; i < 40; ++i) csv += std::string(i % 2 ? "good fine film" : "bad poor film") + "," + (i % 2 ? "pos" : "neg") + ",,\n";
    // The Emojify shape: the label in column 2 of 4 (the last two are empty).
    return train("cls", write("cls.csv", csv), "--task classify --label-column 2");
  }
};

const std::string kTagger = kFixtures + "tagger.safetensors", kSeq2seq = kFixtures + "seq2seq.safetensors",
                  kLmChar = kFixtures + "lm_char.safetensors", kLmWord = kFixtures + "lm_word.safetensors",
                  kMusic = kFixtures + "music.safetensors";

// ---- 1. one reader, '-' = standard input, the same limit ----

TEST_F(CliIo, StandardInputIsReadWithALimitAndDevicesAreRefused) {
  // A pipe on fd 0 that never ends before the limit: the reader stops at it, naming <stdin>.
  ::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const int saved = ::dup(0);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(::dup2(fds[0], 0), 0);
  ::close(fds[0]);
  std::thread writer([w = fds[1]] {
    const std::string block(1 << 16, 'y');
    for (int i = 0; i < 64; ++i)
      if (::write(w, block.data(), block.size()) < 0) break;  // EPIPE once the reader gave up
    ::close(w);
  });
  std::string msg;
  try {
    recur::read_input("-", {.file_max_bytes = 1 << 20, .stream_max_bytes = 1 << 20, .expected = "a UTF-8 text file"});
  } catch (const recur::FormatError& e) {
    msg = e.what();
  }
  ASSERT_EQ(::dup2(saved, 0), 0);  // closes the pipe's read end: the writer gets EPIPE and ends
  ::close(saved);
  writer.join();
  EXPECT_NE(msg.find("<stdin>: more than 1048576 bytes"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  // Through the CLI: /dev/zero on stdin is a device, refused at once with one line and exit 1.
  for (const std::string& args : {"score '" + kLmWord + "' --file -", "eval '" + kLmWord + "' -",
                                  "translate '" + kSeq2seq + "' --file -", "train - --out '" + path("z") + "'"}) {
    SCOPED_TRACE(args);
    const Result r = run(args + " < /dev/zero");
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find("<stdin>: is a device"), std::string::npos) << r.err;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  }
  // Invalid UTF-8 on stdin is named as <stdin> with its offset.
  write("bad.txt", "ok\n\xff\n");
  const Result r = run("score '" + kLmWord + "' --file - < '" + path("bad.txt") + "'");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("<stdin>: "), std::string::npos) << r.err;
}

// ---- 2. '-' wherever a file is read, the same result as the file ----

TEST_F(CliIo, DashReadsStandardInputWithTheSameResultAsTheFile) {
  const std::string lm_eval = kFixtures + "lm_eval.txt", tag_eval = kFixtures + "tag_eval.conll";
  struct Case {
    std::string from_file, from_stdin, input;
    bool first_line_names_input;  // "file        NAME"
  };
  const std::string sentences = write("sentences.txt", "the cat sat\nred green\n");
  const std::vector<Case> cases = {
      {"eval '" + kLmChar + "' '" + lm_eval + "'", "eval '" + kLmChar + "' -", lm_eval, true},
      {"eval '" + kTagger + "' '" + tag_eval + "'", "eval '" + kTagger + "' -", tag_eval, true},
      {"tag '" + kTagger + "' '" + tag_eval + "'", "tag '" + kTagger + "' -", tag_eval, false},
      {"score '" + kLmWord + "' --file '" + sentences + "'", "score '" + kLmWord + "' --file -", sentences, false},
      {"translate '" + kSeq2seq + "' --file '" + sentences + "'", "translate '" + kSeq2seq + "' --file -", sentences, false},
      {"sample '" + kLmChar + "' --length 20 --prime-file '" + sentences + "'",
       "sample '" + kLmChar + "' --length 20 --prime-file -", sentences, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.from_stdin);
    const Result f = run(c.from_file + " --threads 1");
    ASSERT_EQ(f.rc, 0) << f.err;
    const Result s = run(c.from_stdin + " --threads 1 < '" + c.input + "'");
    ASSERT_EQ(s.rc, 0) << s.err;
    ASSERT_FALSE(s.out.empty());
    if (c.first_line_names_input) {
      const auto fl = lines_of(f.out), sl = lines_of(s.out);
      ASSERT_EQ(fl.size(), sl.size());
      EXPECT_EQ(sl[0], "file        <stdin>");
      EXPECT_EQ(fl[0], "file        " + c.input);
      for (size_t i = 1; i < fl.size(); ++i) EXPECT_EQ(sl[i], fl[i]);
    } else {
      EXPECT_EQ(s.out, f.out);
    }
  }
  // A pipe too (not only a redirected file).
  const Result piped = run("score '" + kLmWord + "' --file -", "printf 'the cat sat\\nred green\\n' |");
  ASSERT_EQ(piped.rc, 0) << piped.err;
  EXPECT_EQ(piped.out, run("score '" + kLmWord + "' --file '" + sentences + "'").out);
}

TEST_F(CliIo, TrainReadsDataFromStandardInputOnce) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += i % 2 ? "the cat sat on a mat\n" : "a dog ran to the red house\n";
  const std::string data = write("train.txt", text);
  const Result r = run("train - --out '" + path("run") + "' --level word --steps 2 --hidden 8 --batch 4 --threads 1 --quiet < '" + data + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  const Result info = run("info '" + path("run") + "/last.safetensors' --json");
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_EQ(json::parse(info.out).at("train_state").at("step"), 2);
  // The same run from the file: the same vocabulary (read the same text).
  ASSERT_EQ(run("train '" + data + "' --out '" + path("file") + "' --level word --steps 2 --hidden 8 --batch 4 --threads 1 --quiet").rc, 0);
  EXPECT_EQ(json::parse(info.out).at("vocabulary"),
            json::parse(run("info '" + path("file") + "/last.safetensors' --json").out).at("vocabulary"));
  // Standard input is read once: two inputs from '-' are refused before anything is read.
  const Result twice = run("train - --valid - --out '" + path("twice") + "' --level word < '" + data + "'");
  EXPECT_EQ(twice.rc, 1);
  EXPECT_NE(twice.err.find("standard input can be read only once"), std::string::npos) << twice.err;
}

TEST_F(CliIo, MidiEncodeAndDecodeReadAndWriteStandardStreams) {
  const std::string tokens = kFixtures + "music_eval.txt";
  const std::string mid = path("a.mid");
  ASSERT_EQ(run("midi decode '" + tokens + "' -o '" + mid + "'").rc, 0);
  // decode: tokens from stdin, MIDI bytes to stdout, the same bytes as the file.
  const Result d = run("midi decode - -o - < '" + tokens + "'");
  ASSERT_EQ(d.rc, 0) << d.err;
  EXPECT_EQ(d.out, slurp(mid));
  EXPECT_EQ(d.out.substr(0, 4), "MThd");
  // encode: MIDI from stdin, the same tokens as from the file.
  const Result e = run("midi encode - < '" + mid + "'");
  ASSERT_EQ(e.rc, 0) << e.err;
  EXPECT_EQ(e.out, run("midi encode '" + mid + "'").out);
  EXPECT_NE(e.out.find("NOTE_ON_60"), std::string::npos) << e.out;
}

// ---- 2b. -o on every command that writes a result ----

TEST_F(CliIo, OutputOptionWritesTheSameResultAsStandardOutput) {
  const std::string tag_eval = kFixtures + "tag_eval.conll", mid = path("music.mid");
  ASSERT_EQ(run("midi decode '" + kFixtures + "music_eval.txt' -o '" + mid + "'").rc, 0);
  const std::vector<std::string> commands = {
      "tag '" + kTagger + "' '" + tag_eval + "' --threads 1",
      "eval '" + kLmChar + "' '" + kFixtures + "lm_eval.txt' --threads 1",
      "score '" + kLmWord + "' 'the cat sat' 'red green' --threads 1",
      "translate '" + kSeq2seq + "' 'red green' --threads 1",
      "sample '" + kLmWord + "' --count 3 --seed 12 --threads 1",
      "sample '" + kLmWord + "' --count 2 --seed 3 --json --threads 1",
      "music-stats '" + mid + "'",
      "midi encode '" + mid + "'",
  };
  for (const std::string& c : commands) {
    SCOPED_TRACE(c);
    const Result out = run(c);
    ASSERT_EQ(out.rc, 0) << out.err;
    ASSERT_FALSE(out.out.empty());
    fs::remove(path("result"));
    const Result to_file = run(c + " -o '" + path("result") + "'");
    ASSERT_EQ(to_file.rc, 0) << to_file.err;
    EXPECT_EQ(to_file.out, "");
    EXPECT_EQ(slurp(path("result")), out.out);
    const Result dash = run(c + " --output -");
    ASSERT_EQ(dash.rc, 0) << dash.err;
    EXPECT_EQ(dash.out, out.out);
  }
  // show: -o FILE, -o - (the page on stdout, the summary on stderr) and the old --out.
  const Result page = run("show '" + kLmChar + "' 'the cat' -o - --threads 1");
  ASSERT_EQ(page.rc, 0) << page.err;
  EXPECT_NE(page.out.find("<html"), std::string::npos);
  EXPECT_NE(page.err.find("recur: wrote <stdout>: "), std::string::npos) << page.err;
  ASSERT_EQ(run("show '" + kLmChar + "' 'the cat' --out '" + path("old.html") + "' --threads 1").rc, 0);
  EXPECT_EQ(slurp(path("old.html")), page.out);
  const Result none = run("show '" + kLmChar + "' 'the cat'");
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.err.find("-o/--output: missing"), std::string::npos) << none.err;
}

// ---- 3. --json on every reporting command ----

TEST_F(CliIo, EvalJsonHasTheTextReportsNumbers) {
  const std::string lm_eval = kFixtures + "lm_eval.txt";
  const Result t = run("eval '" + kLmChar + "' '" + lm_eval + "' --threads 1");
  const Result j = run("eval '" + kLmChar + "' '" + lm_eval + "' --threads 1 --json");
  ASSERT_EQ(t.rc, 0) << t.err;
  ASSERT_EQ(j.rc, 0) << j.err;
  ASSERT_EQ(lines_of(j.out).size(), 1u);
  const json v = json::parse(j.out);
  EXPECT_EQ(v.at("file"), lm_eval);
  EXPECT_EQ(v.at("kind"), "lm");
  EXPECT_EQ(v.at("model").get<std::string>(), lines_of(t.out)[1].substr(12));
  EXPECT_EQ(v.at("scored").get<double>(), number_after(t.out, "tokens      "));
  EXPECT_NEAR(v.at("loss").get<double>(), number_after(t.out, "loss        "), 1e-6);
  EXPECT_NEAR(v.at("perplexity").get<double>(), number_after(t.out, "perplexity  "), 1e-4);
  EXPECT_NEAR(v.at("bpc").get<double>(), number_after(t.out, "bpc         "), 1e-6);
  EXPECT_NE(t.out.find(v.at("counts").get<std::string>()), std::string::npos);
  EXPECT_NE(t.out.find(std::to_string(v.at("tokens").get<int64_t>()) + " tokens, " +
                       std::to_string(v.at("unk").get<int64_t>()) + " <unk>"),
            std::string::npos) << t.out;
  EXPECT_GE(v.at("oov").get<int64_t>(), 0);
  EXPECT_FALSE(v.contains("bits_per_token"));  // a char model has bpc

  // A task model: its metric by name, the loss and the number of targets of the text report.
  const std::string tag_eval = kFixtures + "tag_eval.conll";
  const Result tt = run("eval '" + kTagger + "' '" + tag_eval + "' --threads 1");
  const Result tj = run("eval '" + kTagger + "' '" + tag_eval + "' --threads 1 --json");
  ASSERT_EQ(tj.rc, 0) << tj.err;
  const json w = json::parse(tj.out);
  EXPECT_EQ(w.at("kind"), "tag");
  EXPECT_EQ(w.at("metric"), "f1");
  EXPECT_EQ(w.at("examples"), 2);
  EXPECT_NEAR(w.at("loss").get<double>(), number_after(tt.out, "loss        "), 1e-6);
  EXPECT_EQ(tt.out.find("(" + std::to_string(w.at("targets").get<int64_t>()) + " targets)") != std::string::npos, true) << tt.out;
  const std::string ent = lines_of(tt.out)[5];  // "entities    precision ..., F1 85.71"
  EXPECT_NEAR(100 * w.at("value").get<double>(), std::strtod(ent.c_str() + ent.rfind("F1 ") + 3, nullptr), 0.01) << ent;
}

TEST_F(CliIo, ScoreJsonAndTokenTsvHoldEveryTokensScore) {
  const std::string args = "score '" + kLmChar + "' 'the cat sat.' 'a bird sings' --threads 1";
  const Result t = run(args);
  const Result j = run(args + " --json");
  const Result tsv = run(args + " --token-tsv");
  ASSERT_EQ(j.rc, 0) << j.err;
  ASSERT_EQ(tsv.rc, 0) << tsv.err;
  const json v = json::parse(j.out);
  const auto text_rows = lines_of(t.out);  // header, 2 sentences, total
  ASSERT_EQ(v.at("sentences").size(), 2u);
  int64_t tokens = 0;
  for (size_t i = 0; i < 2; ++i) {
    const json& s = v.at("sentences")[i];
    const auto cols = split(text_rows[i + 1], '\t');
    EXPECT_EQ(s.at("sentence"), cols[5]);
    EXPECT_NEAR(s.at("ln_prob").get<double>(), std::stod(cols[0]), 1e-4);
    EXPECT_NEAR(s.at("log10_prob").get<double>(), std::stod(cols[1]), 1e-4);
    EXPECT_EQ(s.at("tokens").get<int64_t>(), std::stoll(cols[2]));
    EXPECT_EQ(s.at("oov").get<int64_t>(), std::stoll(cols[3]));
    EXPECT_NEAR(s.at("ppl").get<double>(), std::stod(cols[4]), 1e-3);
    ASSERT_EQ(int64_t(s.at("per_token").size()), s.at("tokens").get<int64_t>());
    double sum = 0;
    for (const json& k : s.at("per_token")) {
      sum += k.at("ln_prob").get<double>();
      EXPECT_NEAR(k.at("p").get<double>(), std::exp(k.at("ln_prob").get<double>()), 1e-9);
      EXPECT_TRUE(k.at("oov").is_boolean());
      EXPECT_TRUE(k.at("token").is_string());
    }
    EXPECT_NEAR(sum, s.at("ln_prob").get<double>(), 1e-6);
    tokens += s.at("tokens").get<int64_t>();
  }
  EXPECT_EQ(v.at("total").at("sentences"), 2);
  EXPECT_EQ(v.at("total").at("tokens").get<int64_t>(), tokens);
  // --token-tsv: a header, then one row of 6 columns per token, the same scores.
  const auto rows = lines_of(tsv.out);
  ASSERT_EQ(int64_t(rows.size()), tokens + 1);
  EXPECT_EQ(rows[0], "sentence\tindex\ttoken\tln_prob\tp\toov");
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto cols = split(rows[r], '\t');
    ASSERT_EQ(cols.size(), 6u) << rows[r];
    const size_t s = std::stoul(cols[0]) - 1, k = std::stoul(cols[1]) - 1;
    const json& tok = v.at("sentences").at(s).at("per_token").at(k);
    EXPECT_EQ(cols[2], tok.at("token").get<std::string>());
    EXPECT_NEAR(std::stod(cols[3]), tok.at("ln_prob").get<double>(), 1e-5);
    EXPECT_EQ(cols[5], tok.at("oov").get<bool>() ? "1" : "0");
  }
  EXPECT_EQ(tsv.out.find("p="), std::string::npos);
}

TEST_F(CliIo, ClassifyTagTranslateAndSampleJsonLinesMatchTheirTextOutput) {
  // classify: one object per text; the label is the most probable and matches the text output.
  const std::string cls = classifier();
  const Result ct = run("classify '" + cls + "' 'good film' 'poor bad film' --threads 1");
  const Result cj = run("classify '" + cls + "' 'good film' 'poor bad film' --threads 1 --json");
  ASSERT_EQ(cj.rc, 0) << cj.err;
  const auto objs = json_lines(cj.out);
  const auto tl = lines_of(ct.out);
  ASSERT_EQ(objs.size(), 2u);
  const std::vector<std::string> texts = {"good film", "poor bad film"};
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(objs[i].at("text"), texts[i]);
    EXPECT_EQ(objs[i].at("label").get<std::string>(), split(tl[i], '\t')[0]);
    double sum = 0, best = -1;
    std::string arg;
    for (const auto& [label, p] : objs[i].at("probabilities").items()) {
      sum += p.get<double>();
      if (p.get<double>() > best) best = p.get<double>(), arg = label;
      EXPECT_NE(tl[i].find(label + "="), std::string::npos);
    }
    EXPECT_EQ(objs[i].at("probabilities").size(), 2u);
    EXPECT_NEAR(sum, 1.0, 1e-4);
    EXPECT_EQ(arg, objs[i].at("label"));
  }
  // tag: one object per sentence, the tags of the text output's last column.
  const std::string tag_eval = kFixtures + "tag_eval.conll";
  const Result tt = run("tag '" + kTagger + "' '" + tag_eval + "' --threads 1");
  const Result tj = run("tag '" + kTagger + "' '" + tag_eval + "' --threads 1 --json");
  ASSERT_EQ(tj.rc, 0) << tj.err;
  std::vector<std::string> tokens, tags;
  for (const std::string& l : lines_of(tt.out)) {
    const auto cols = split(l, ' ');
    if (l.empty() || cols[0] == "-DOCSTART-") continue;
    tokens.push_back(cols[0]);
    tags.push_back(cols.back());
  }
  size_t k = 0;
  const auto sents = json_lines(tj.out);
  EXPECT_EQ(sents.size(), 2u);
  for (const json& s : sents) {
    ASSERT_EQ(s.at("tokens").size(), s.at("tags").size());
    EXPECT_GT(s.at("line").get<int64_t>(), 0);
    for (size_t i = 0; i < s.at("tokens").size(); ++i, ++k) {
      ASSERT_LT(k, tokens.size());
      EXPECT_EQ(s.at("tokens")[i], tokens[k]);
      EXPECT_EQ(s.at("tags")[i], tags[k]);
    }
  }
  EXPECT_EQ(k, tokens.size());
  // translate: {source, output}, the output of the text run.
  const Result st = run("translate '" + kSeq2seq + "' 'red green' 'blue black white' --threads 1");
  const Result sj = run("translate '" + kSeq2seq + "' 'red green' 'blue black white' --threads 1 --json");
  ASSERT_EQ(sj.rc, 0) << sj.err;
  const auto tr = json_lines(sj.out);
  ASSERT_EQ(tr.size(), 2u);
  EXPECT_EQ(tr[0].at("source"), "red green");
  EXPECT_EQ(tr[1].at("source"), "blue black white");
  EXPECT_EQ(tr[0].at("output"), lines_of(st.out)[0]);
  EXPECT_EQ(tr[1].at("output"), lines_of(st.out)[1]);
  // sample: {index, text} per sample, the text run's lines (same seed).
  const Result lt = run("sample '" + kLmWord + "' --count 3 --seed 12 --threads 1");
  const Result lj = run("sample '" + kLmWord + "' --count 3 --seed 12 --threads 1 --json");
  ASSERT_EQ(lj.rc, 0) << lj.err;
  const auto samples = json_lines(lj.out);
  ASSERT_EQ(samples.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(samples[i].at("index"), int64_t(i + 1));
    EXPECT_EQ(samples[i].at("text"), lines_of(lt.out)[i]);
  }
  // A conditioned generator: {condition, text}.
  std::string gen;
  for (int i = 0; i < 40; ++i) gen += std::string(i % 2 ? "A\tabab" : "B\tcdcd") + "\n";
  const std::string g = train("gen", write("gen.tsv", gen), "--task generate");
  const Result gt = run("sample '" + g + "' --count 2 --seed 5 --threads 1");
  const Result gj = run("sample '" + g + "' --count 2 --seed 5 --threads 1 --json");
  ASSERT_EQ(gj.rc, 0) << gj.err;
  const auto gs = json_lines(gj.out);
  const auto gl = lines_of(gt.out);
  ASSERT_EQ(gs.size(), gl.size());
  ASSERT_EQ(gs.size(), 4u);  // 2 per label
  for (size_t i = 0; i < gs.size(); ++i)
    EXPECT_EQ(gs[i].at("condition").get<std::string>() + "\t" + gs[i].at("text").get<std::string>(), gl[i]);
  // A music model's samples are token lines or MIDI files: --json is refused, not ignored.
  const Result mj = run("sample '" + kMusic + "' --json --length 5");
  EXPECT_EQ(mj.rc, 1);
  EXPECT_NE(mj.err.find("--json: does not apply to a music model"), std::string::npos) << mj.err;
}

TEST_F(CliIo, MusicStatsJsonHasTheTablesNumbers) {
  const std::string mid = path("a.mid");
  ASSERT_EQ(run("midi decode '" + kFixtures + "music_eval.txt' -o '" + mid + "'").rc, 0);
  const Result t = run("music-stats '" + mid + "' '" + mid + "'");
  const Result j = run("music-stats '" + mid + "' '" + mid + "' --json");
  ASSERT_EQ(j.rc, 0) << j.err;
  const json v = json::parse(j.out);
  ASSERT_EQ(v.at("sources").size(), 2u);
  const json& s = v.at("sources")[0];
  EXPECT_EQ(s.at("source"), mid);
  EXPECT_EQ(s.at("notes"), v.at("sources")[1].at("notes"));
  // The table's cell of a row, without the spaces around it.
  auto row = [&](const std::string& name) {
    for (const std::string& l : lines_of(t.out))
      if (l.rfind("| " + name + " |", 0) == 0) {
        const std::string cell = split(l, '|')[2];
        return cell.substr(1, cell.size() - 2);
      }
    return std::string("?");
  };
  EXPECT_EQ(std::to_string(s.at("pieces").get<int>()), row("pieces"));
  EXPECT_EQ(std::to_string(s.at("notes").get<int>()), row("notes"));
  EXPECT_EQ(std::to_string(s.at("pitch_min").get<int>()) + "-" + std::to_string(s.at("pitch_max").get<int>()),
            row("pitch range (all)"));
  for (const char* f : {"seconds", "pitch_mean", "pitch_std", "pitch_range_mean", "notes_per_second", "mean_duration",
                        "polyphony", "in_key", "key_correlation"})
    EXPECT_TRUE(s.at(f).is_number()) << f;
  EXPECT_NEAR(s.at("notes_per_second").get<double>(), std::stod(row("notes per second")), 0.006);
}

// ---- 4. columns and headers on eval, classify, tag ----

TEST_F(CliIo, EvalReadsACsvWhoseHeaderIsNarrowerThanItsRows) {
  const std::string cls = classifier();
  // The Emojify test file's shape: a 2-field header over 4-field rows, CRLF.
  std::string test = "text,label\r\n";
  for (int i = 0; i < 10; ++i) test += std::string(i % 2 ? "good film" : "poor film") + "," + (i % 2 ? "pos" : "neg") + ",,\r\n";
  const std::string file = write("test.csv", test);
  const Result r = run("eval '" + cls + "' '" + file + "' --threads 1");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(number_after(r.out, "examples    "), 10) << r.out;
  // Explicitly: --header 1 gives the same; --header 0 reads the header as a row and fails on it.
  const Result h1 = run("eval '" + cls + "' '" + file + "' --threads 1 --header 1");
  ASSERT_EQ(h1.rc, 0) << h1.err;
  EXPECT_EQ(h1.out, r.out);
  const Result h0 = run("eval '" + cls + "' '" + file + "' --threads 1 --header 0");
  EXPECT_EQ(h0.rc, 1);
  EXPECT_NE(h0.err.find(file + ":2: 4 fields; expected 2 as on line 1"), std::string::npos) << h0.err;
  // Columns in another order: --text-column / --label-column as on train.
  std::string swapped;
  for (int i = 0; i < 6; ++i) swapped += std::string(i % 2 ? "pos" : "neg") + "\t" + (i % 2 ? "good film" : "poor film") + "\n";
  const std::string sw = write("swapped.tsv", swapped);
  EXPECT_EQ(run("eval '" + cls + "' '" + sw + "' --threads 1").rc, 1);  // the model's columns: text first
  const Result cols = run("eval '" + cls + "' '" + sw + "' --threads 1 --text-column 2 --label-column 1");
  ASSERT_EQ(cols.rc, 0) << cols.err;
  EXPECT_EQ(number_after(cols.out, "examples    "), 6);
  const Result bad = run("eval '" + cls + "' '" + sw + "' --text-column 0");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("--text-column: got 0, expected a 1-based column"), std::string::npos) << bad.err;
  // classify with a column option reads a table: the labels of the text column.
  const Result cc = run("classify '" + cls + "' --file '" + sw + "' --text-column 2 --header 0 --json --threads 1");
  ASSERT_EQ(cc.rc, 0) << cc.err;
  const auto objs = json_lines(cc.out);
  ASSERT_EQ(objs.size(), 6u);
  EXPECT_EQ(objs[0].at("line"), 1);
  const Result plain = run("classify '" + cls + "' 'poor film' --threads 1 --json");
  EXPECT_EQ(objs[0].at("probabilities"), json_lines(plain.out).at(0).at("probabilities"));
}

TEST_F(CliIo, TagTakesTheTokenColumn) {
  // Tokens in the second column: with --token-column 2 the tags are those of the usual file.
  const std::string tag_eval = kFixtures + "tag_eval.conll";
  std::string moved;
  for (const std::string& l : lines_of(slurp(tag_eval))) {
    const auto cols = split(l, ' ');
    moved += l.empty() || cols[0] == "-DOCSTART-" ? l + "\n" : "x " + cols[0] + "\n";
  }
  const Result r = run("tag '" + kTagger + "' '" + write("moved.conll", moved) + "' --token-column 2 --json --threads 1");
  ASSERT_EQ(r.rc, 0) << r.err;
  const Result ref = run("tag '" + kTagger + "' '" + tag_eval + "' --json --threads 1");
  const auto a = json_lines(r.out), b = json_lines(ref.out);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].at("tokens"), b[i].at("tokens"));
    EXPECT_EQ(a[i].at("tags"), b[i].at("tags"));
  }
}

// ---- 5. RFC 4180 ----

TEST_F(CliIo, CsvFieldsMaySpanLines) {
  const std::string file = write("q.csv",
                                 "text,label\r\n\"two\r\nlines, one \"\"text\"\"\",pos\r\n\r\n\"one line\",neg\r\nfine,pos\n"
                                 "\"a\nb\nc\",neg\nlast,pos\n");
  const auto rows = recur::read_labelled_texts(file, {});
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].text, "two\r\nlines, one \"text\"");
  EXPECT_EQ(rows[0].label, "pos");
  EXPECT_EQ(rows[0].line, 2);
  EXPECT_EQ(rows[1].text, "one line");
  EXPECT_EQ(rows[1].line, 5);
  EXPECT_EQ(rows[2].line, 6);
  EXPECT_EQ(rows[3].text, "a\nb\nc");
  EXPECT_EQ(rows[3].line, 7);
  EXPECT_EQ(rows[4].line, 10);  // line numbers count the lines inside quotes
  // An unterminated quote names the line where the field opened.
  const std::string bad = write("bad.csv", "text,label\nok,pos\n\"never closed,neg\nmore,pos\n");
  try {
    recur::read_labelled_texts(bad, {});
    ADD_FAILURE() << "no error";
  } catch (const recur::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(bad + ":3: unterminated quoted field"), std::string::npos) << e.what();
  }
  // A feature file's target text may hold a line break too.
  int64_t width = 0;
  const auto seqs = recur::read_feature_sequences(write("f.csv", "s1,0.5,\"red\ngreen\"\ns1,0.25,\ns2,1,blue\n"), &width,
                                                   {.target_text = true});
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0].target, "red\ngreen");
  EXPECT_EQ(seqs[0].steps, 2);
  EXPECT_EQ(seqs[1].line, 4);
}

// ---- 6. errors and help name the model kinds ----

TEST_F(CliIo, ErrorsNameTheKindsACommandAccepts) {
  const std::string cls = classifier();
  const Result s = run("sample '" + cls + "'");
  EXPECT_EQ(s.rc, 1);
  EXPECT_NE(s.err.find("sample needs a language, music or generate model; " + cls + " is a classify model"), std::string::npos) << s.err;
  const Result c = run("classify '" + kLmChar + "' 'hello'");
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("classify needs a classify model (recur train --task classify); " + kLmChar + " is a language or music model"),
            std::string::npos) << c.err;
  const Result t = run("tag '" + cls + "' -", "printf 'a\\n' |");
  EXPECT_EQ(t.rc, 1);
  EXPECT_NE(t.err.find("tag needs a tag model (recur train --task tag); " + cls + " is a classify model"), std::string::npos) << t.err;
  const Result sc = run("score '" + kTagger + "' 'a b'");
  EXPECT_EQ(sc.rc, 1);
  EXPECT_NE(sc.err.find("score needs a language model"), std::string::npos) << sc.err;
  EXPECT_NE(sc.err.find(kTagger + " is a tag model"), std::string::npos) << sc.err;
  for (const Result& r : {s, c, t, sc}) EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  // eval --help describes every task's metrics.
  const Result h = run("eval --help");
  ASSERT_EQ(h.rc, 0);
  for (const char* k : {"perplexity", "classify:", "accuracy", "tag:", "F1", "seq2seq:", "BLEU", "generate:"})
    EXPECT_NE(h.out.find(k), std::string::npos) << k;
}

}  // namespace
