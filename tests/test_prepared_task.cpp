// Prepared task corpora (recur/tasks/prepared_task.h): the examples on disk are the ones
// read_task_file gives (read a few bytes at a time, so records cross blocks and shards), training
// from a prepared task corpus logs the same losses as training on the file (also resumed in the
// middle of a shard) for tagging, classification and translation, and damaged corpora are
// refused with one line naming the file and the place. No data from ../shared.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "recur/tasks/prepared_task.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;
using test::expect_one_line_error;

struct Lcg {
  uint32_t x;
  uint32_t next() { return (x = x * 1103515245u + 12345u) >> 16; }
};

const char* kWords[] = {"the", "Cat", "sat", "on", "a", "mat", "caf\xc3\xa9", "dog", "ran", "\xe6\x97\xa5",
                        "in", "Park", "x", "Paris", "Smith", "EU"};

// CoNLL in IOB1 (chunks open with I-, B- only after a chunk of the same type), with a byte-order
// mark, -DOCSTART- lines, CRLF lines and runs of blank lines.
std::string conll_text(int sentences, uint32_t seed) {
  static const char* types[] = {"PER", "LOC", "ORG"};
  Lcg r{seed};
  std::string t = "\xEF\xBB\xBF-DOCSTART- -X- O\n\n";
  for (int s = 0; s < sentences; ++s) {
    const uint32_t n = 1 + r.next() % 9;
    std::string prev = "O";
    for (uint32_t i = 0; i < n; ++i) {
      std::string tag = "O";
      const uint32_t k = r.next() % 10;
      if (k < 4) {
        const std::string type = types[k % 3];
        tag = (prev != "O" && prev.substr(2) == type && r.next() % 2) ? "B-" + type : "I-" + type;
      }
      t += std::string(kWords[r.next() % 16]) + " NN " + tag + (r.next() % 7 == 0 ? "\r\n" : "\n");
      prev = tag;
    }
    t += r.next() % 5 == 0 ? "\n\n" : "\n";
    if (s % 17 == 16) t += "-DOCSTART- -X- O\n\n";
  }
  return t;
}

// CSV with a header and quoted texts that hold commas, doubled quotes and line breaks.
std::string csv_text(int rows, uint32_t seed) {
  Lcg r{seed};
  std::string t = "text,label\n";
  for (int i = 0; i < rows; ++i) {
    std::string text;
    const uint32_t n = 1 + r.next() % 8;
    for (uint32_t w = 0; w < n; ++w) text += (w ? " " : "") + std::string(kWords[r.next() % 16]);
    const uint32_t q = r.next() % 4;
    if (q == 0) text = "\"" + text + ", \"\"quoted\"\"\n and on\"";
    t += text + "," + (r.next() % 3 == 0 ? "pos" : r.next() % 2 ? "neg" : "mixed") + "\n";
  }
  return t;
}

std::string tsv_text(int rows, uint32_t seed) {
  Lcg r{seed};
  std::string t;
  for (int i = 0; i < rows; ++i) {
    const uint32_t n = 1 + r.next() % 10;
    for (uint32_t w = 0; w < n; ++w) t += (w ? " " : "") + std::string(kWords[r.next() % 16]);
    t += std::string("\t") + (r.next() % 2 ? "1" : "0") + "\n";
    if (i % 13 == 0) t += "\n";
  }
  return t;
}

std::string pairs_text(int rows, uint32_t seed) {
  Lcg r{seed};
  std::string t;
  for (int i = 0; i < rows; ++i) {
    const uint32_t n = 1 + r.next() % 6, m = 1 + r.next() % 7;
    for (uint32_t w = 0; w < n; ++w) t += (w ? " " : "") + std::string(kWords[r.next() % 16]);
    t += "\t";
    for (uint32_t w = 0; w < m; ++w) t += (w ? " " : "") + std::string(kWords[(r.next() % 16 + 3) % 16]) + (w + 1 == m ? "." : "");
    t += r.next() % 6 == 0 ? "\r\n" : "\n";
  }
  return t;
}

class PreparedTaskTest : public test::TempDirTest {
 protected:
  // In the scratch folder, so the commands name their files relative to it.
  test::CliResult run(const std::string& args) { return test::run_recur(args, dir_, "cd '" + dir_.string() + "' &&"); }

  // Every example of the prepared corpus equals read_task_file's, for several block sizes (a
  // block smaller than a line: it then holds the one line).
  void expect_same_examples(const TaskSpec& task, const std::string& file) {
    const std::vector<RawExample> want = read_task_file(task, file, true);
    for (int64_t block : {1, 7, 64, 1 << 20}) {
      TaskPrepareOptions o;
      o.read_block = block;
      o.shard_ids = 61;
      const TaskPrepareResult r = prepare_task_corpus(task, file, path("p"), o);
      const PreparedTaskCorpus c(path("p"));
      ASSERT_EQ(c.size(), int64_t(want.size())) << block;
      EXPECT_EQ(r.examples, int64_t(want.size()));
      EXPECT_GT(r.shards, 2);
      for (size_t i = 0; i < want.size(); ++i) {
        const RawExample got = c.read(int64_t(i));
        ASSERT_EQ(got.input, want[i].input) << "example " << i << " block " << block;
        ASSERT_EQ(got.output, want[i].output) << i;
        ASSERT_EQ(got.label, want[i].label) << i;
        ASSERT_EQ(got.line, want[i].line) << i;
        ASSERT_EQ(c.length(int64_t(i)), int64_t(std::max(want[i].input.size(), want[i].output.size())));
      }
    }
  }

  std::vector<std::string> losses(const std::string& run_dir, const char* type = "train") {
    return test::metric_losses(run_dir, type);
  }

  // The same run on the task file and on its prepared corpus (shards of 150 ids: a run crosses
  // several); the prepared run stops at step 7 and is resumed, in the middle of a shard.
  void expect_identical(const std::string& task, const std::string& train, const std::string& valid,
                        const std::string& prepare_flags, const std::string& train_flags) {
    const auto p = run("prepare --task " + task + " " + train + " --out prep --shard-tokens 150 --quiet" + prepare_flags);
    ASSERT_EQ(p.rc, 0) << p.err;
    ASSERT_GT(PreparedTaskCorpus(path("prep")).manifest().shards.size(), 3u);
    const std::string flags = " --task " + task + " --valid " + valid + " --test " + valid +
                              " --hidden 12 --layers 1 --embed 8 --batch 6 --threads 1 --log-every 1 --valid-every 5 "
                              "--seed 3" + train_flags;
    const auto t = run("train " + train + " --out text" + flags + prepare_flags + " --steps 14");
    ASSERT_EQ(t.rc, 0) << t.err;
    const auto half = run("train prep --out prepared" + flags + " --steps 7");
    ASSERT_EQ(half.rc, 0) << half.err;
    const auto rest = run("train prep --out prepared --resume --steps 14");
    ASSERT_EQ(rest.rc, 0) << rest.err;
    const auto want = losses(path("text"));
    ASSERT_EQ(want.size(), 14u);
    EXPECT_EQ(losses(path("prepared")), want);
    auto without_stop = [](std::vector<std::string> v) {
      std::erase_if(v, [](const std::string& e) { return e.starts_with("7:"); });
      return v;
    };
    const auto v = losses(path("text"), "valid");
    ASSERT_EQ(v.size(), 3u);  // steps 5, 10 and the end
    EXPECT_EQ(without_stop(losses(path("prepared"), "valid")), v);
    // The test report of the best checkpoint at the end (the stop at step 7 wrote one too).
    const auto test_text = losses(path("text"), "test"), test_prepared = losses(path("prepared"), "test");
    ASSERT_EQ(test_text.size(), 1u);
    ASSERT_FALSE(test_prepared.empty());
    EXPECT_EQ(test_prepared.back(), test_text.back());
  }
};

TEST_F(PreparedTaskTest, TheExamplesAreReadTaskFilesAcrossBlocksAndShards) {
  TaskSpec tag;
  tag.kind = TaskKind::tag;
  expect_same_examples(tag, write("train.conll", conll_text(60, 3)));
  TaskSpec csv;
  csv.kind = TaskKind::classify;
  expect_same_examples(csv, write("train.csv", csv_text(50, 4)));
  csv.lowercase = false;
  expect_same_examples(csv, path("train.csv"));
  TaskSpec tsv;
  tsv.kind = TaskKind::classify;
  expect_same_examples(tsv, write("train.tsv", tsv_text(50, 5)));
  TaskSpec pairs;
  pairs.kind = TaskKind::seq2seq;
  expect_same_examples(pairs, write("train.pairs", pairs_text(50, 6)));
}

TEST_F(PreparedTaskTest, TagScheme) {
  TaskSpec tag;
  tag.kind = TaskKind::tag;
  EXPECT_EQ(prepare_task_corpus(tag, write("a.conll", conll_text(60, 3)), path("a")).tag_scheme, TagScheme::iob1);
  EXPECT_EQ(prepare_task_corpus(tag, write("b.conll", "x B-PER\ny I-PER\n\nz O\n"), path("b")).tag_scheme, TagScheme::bio);
  EXPECT_EQ(prepare_task_corpus(tag, write("c.conll", "x B-PER\ny I-PER\n\nz S-LOC\n"), path("c")).tag_scheme,
            TagScheme::bioes);
  EXPECT_EQ(prepare_task_corpus(tag, write("d.conll", "x NN\ny VB\n\nz S-LOC\n"), path("d")).tag_scheme, TagScheme::none);
}

TEST_F(PreparedTaskTest, TaggerWithCrfAndCharactersLossesAreBitIdenticalAlsoResumedMidShard) {
  // IOB1 tags trained as BIOES (the CRF's default): the tags are converted on the way in.
  write("train.conll", conll_text(80, 7));
  write("valid.conll", conll_text(20, 8));
  expect_identical("tag", "train.conll", "valid.conll", "", " --crf --char-rnn --char-embed 4 --char-hidden 4");
}

TEST_F(PreparedTaskTest, ClassifierLossesAreBitIdenticalAlsoResumedMidShard) {
  write("train.csv", csv_text(90, 9));
  write("valid.csv", csv_text(20, 10));
  expect_identical("classify", "train.csv", "valid.csv", " --keep-case", "");
}

TEST_F(PreparedTaskTest, ClassifierWithCharactersLossesAreBitIdenticalAlsoResumedMidShard) {
  // Lower-cased text (the classifier's default): the characters are counted from the words as read.
  write("train.csv", csv_text(90, 13));
  write("valid.csv", csv_text(20, 14));
  expect_identical("classify", "train.csv", "valid.csv", "", " --char-rnn --char-embed 4 --char-hidden 4");
}

TEST_F(PreparedTaskTest, TranslationWithAttentionLossesAreBitIdenticalAlsoResumedMidShard) {
  write("train.txt", pairs_text(90, 11));
  write("valid.txt", pairs_text(20, 12));
  expect_identical("seq2seq", "train.txt", "valid.txt", "", " --bidirectional --attention general --max-vocab 12");
}

TEST_F(PreparedTaskTest, FlagsThatContradictTheCorpusAreRefused) {
  write("train.conll", conll_text(30, 3));
  ASSERT_EQ(run("prepare --task tag train.conll --out prep --quiet").rc, 0);
  const auto task = run("train prep --task classify --out run --steps 1");
  EXPECT_EQ(task.rc, 1);
  EXPECT_NE(task.err.find("--task classify does not match the prepared corpus's task tag"), std::string::npos) << task.err;
  const auto col = run("train prep --task tag --out run --steps 1 --tag-column 3");
  EXPECT_EQ(col.rc, 1);
  EXPECT_NE(col.err.find("--tag-column: the prepared corpus fixes how its file was read"), std::string::npos) << col.err;
  const auto pv = run("train train.conll --task tag --out run --steps 1 --valid prep");
  EXPECT_EQ(pv.rc, 1);
  EXPECT_NE(pv.err.find("--valid prep: a prepared corpus; a task's validation and test sets are task files"),
            std::string::npos) << pv.err;
  const auto vf = run("train prep --task tag --out run --steps 1 --valid-fraction 0.1");
  EXPECT_EQ(vf.rc, 1);
  EXPECT_NE(vf.err.find("a prepared corpus is not split"), std::string::npos) << vf.err;
  // A prepared text corpus is not a task corpus; a fine-tuned classifier meets a class it does not
  // know before the first step.
  write("text.txt", "a b c\nd e f\n");
  ASSERT_EQ(run("prepare text.txt --out tprep --level word --quiet").rc, 0);
  const auto lm = run("train tprep --task tag --out run --steps 1");
  EXPECT_EQ(lm.rc, 1);
  EXPECT_NE(lm.err.find("tprep: a prepared text corpus (recur prepare without --task)"), std::string::npos) << lm.err;
  write("a.tsv", "good film\tpos\nbad film\tneg\nfine\tpos\nawful\tneg\n");
  write("b.tsv", "good film\tpos\nmeh\tmixed\n");
  ASSERT_EQ(run("train a.tsv --task classify --valid a.tsv --out cls --steps 1 --hidden 4 --embed 4 --threads 1").rc, 0);
  ASSERT_EQ(run("prepare --task classify b.tsv --out bprep --quiet").rc, 0);
  const auto unknown = run("train bprep --task classify --init-from cls/last.safetensors --out ft --steps 1");
  EXPECT_EQ(unknown.rc, 1);
  EXPECT_NE(unknown.err.find("bprep/manifest.json: label 'mixed' was not seen in training; expected one of: neg, pos"),
            std::string::npos) << unknown.err;
  // prepare: text flags with --task, several inputs, an unknown task and column flags without
  // --task are usage errors.
  for (const std::string args : {"prepare --task tag train.conll --out p2 --level word",
                                 "prepare --task tag train.conll train.conll --out p2",
                                 "prepare --task generate train.conll --out p2", "prepare train.conll --out p2 --tag-column 2"}) {
    const auto r = run(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // Bad task files: the error names the file and line, as recur train's does.
  write("bad.conll", "a O\nb I-PER x\n");
  const auto bad = run("prepare --task tag bad.conll --out p3 --quiet");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("bad.conll:2: 3 columns; expected 2"), std::string::npos) << bad.err;
  write("bad.csv", "text,label\n\"open quote,pos\n");
  const auto q = run("prepare --task classify bad.csv --out p4 --quiet");
  EXPECT_EQ(q.rc, 1);
  EXPECT_NE(q.err.find("bad.csv:2: unterminated quoted field"), std::string::npos) << q.err;
}

// ---- damaged corpora --------------------------------------------------------------------------

class DamagedTaskCorpusTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    TaskSpec t;
    t.kind = TaskKind::tag;
    TaskPrepareOptions o;
    o.shard_ids = 200;
    prepare_task_corpus(t, write("c.conll", conll_text(60, 3)), path("p"), o);
  }
  std::string shard(int i) const { return test::shard_path(path("p"), i); }
  static void poke(const std::string& p, size_t at, std::string_view b) { test::poke_bytes(p, at, b); }
  static std::string le(uint64_t v, int n) { return test::le_bytes(v, n); }
  void open() { PreparedTaskCorpus c(path("p")); }
};

TEST_F(DamagedTaskCorpusTest, IntactCorpusOpens) { EXPECT_NO_THROW(open()); }

TEST_F(DamagedTaskCorpusTest, WrongMagicAndVersion) {
  poke(shard(1), 0, "RECURTOK");
  expect_one_line_error([&] { open(); }, {"shard-00001.bin", "byte 0", "magic RECURTSK"});
  poke(shard(1), 0, "RECURTSK");
  poke(shard(1), 8, le(9, 4));
  expect_one_line_error([&] { open(); }, {"shard-00001.bin", "byte 8", "version 9", "expected 1"});
}

TEST_F(DamagedTaskCorpusTest, TruncatedShardNamesTheShardAndSize) {
  std::string s = test::slurp(shard(0));
  const size_t full = s.size();
  s.resize(full - 5);
  std::ofstream(shard(0), std::ios::binary | std::ios::trunc) << s;
  expect_one_line_error([&] { open(); },
                        {"shard-00000.bin", "truncated at byte " + std::to_string(full - 5), "expected " + std::to_string(full)});
}

TEST_F(DamagedTaskCorpusTest, CountsThatOverflowAreRefused) {
  auto m = nlohmann::json::parse(test::slurp(path("p/manifest.json")));
  const auto ids = m["shards"][0]["ids"];
  m["shards"][0]["ids"] = uint64_t(1) << 62;
  std::ofstream(path("p/manifest.json"), std::ios::trunc) << m.dump();
  expect_one_line_error([&] { open(); }, {"manifest.json", "\"ids\"", "an integer in [5, 1099511627776]"});
  m["shards"][0]["ids"] = ids;
  std::ofstream(path("p/manifest.json"), std::ios::trunc) << m.dump();
  poke(shard(0), 40, le(uint64_t(1) << 61, 8));
  expect_one_line_error([&] { open(); }, {"shard-00000.bin", "byte 40", "examples 2305843009213693952"});
}

TEST_F(DamagedTaskCorpusTest, OtherTablesAreRefusedByName) {
  std::string t = test::slurp(path("p/tables.json"));
  t.replace(t.find("\"the\""), 5, "\"teh\"");
  std::ofstream(path("p/tables.json"), std::ios::binary | std::ios::trunc) << t;
  expect_one_line_error([&] { open(); }, {"tables.json", "do not match", "manifest.json", "one recur prepare run"});
}

TEST_F(DamagedTaskCorpusTest, BadIdsAndOffsetsAreFoundWhenRead) {
  const PreparedTaskManifest m = read_prepared_task_manifest(path("p/manifest.json"));
  // Example 0's first word id (after the 5-word record head) set past the table.
  poke(shard(0), 64 + 4 * 5, le(900000, 4));
  {
    const PreparedTaskCorpus c(path("p"));
    expect_one_line_error([&] { (void)c.read(0); }, {"shard-00000.bin", "byte 84", "word id 900000", "input words"});
  }
  // Example 1's end offset moved before its start.
  const int64_t offsets_at = 64 + 4 * m.shards[0].ids;
  poke(shard(0), size_t(offsets_at + 16), le(2, 8));
  const PreparedTaskCorpus c(path("p"));
  expect_one_line_error([&] { (void)c.read(1); }, {"shard-00000.bin", "byte " + std::to_string(offsets_at + 8), "example 1", "spans ids"});
}

}  // namespace
}  // namespace recur
