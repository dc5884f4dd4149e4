// Prepared corpora (recur/data/prepared.h): the ids on disk are the text path's ids, the
// bounded-memory word count gives the in-memory vocabulary, training from a prepared corpus logs
// the same losses as training on the text (also resumed in the middle of a shard), and damaged
// corpora are refused with one line naming the file and the place.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "recur/data/prepared.h"
#include "recur/data/text_data.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;
using test::expect_one_line_error;

// Words from a small list with a skewed choice (so counts tie and differ), lines of 0..11 words,
// a byte-order mark, CRLF lines, blank lines, non-ASCII words and PTB's literal <unk>.
std::string corpus_text(int lines, uint32_t seed) {
  static const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "caf\xc3\xa9", "<unk>", "dog",
                                "ran", "\xe6\x97\xa5", "in", "park", "x"};
  std::string text = "\xEF\xBB\xBF";
  uint32_t x = seed;
  auto next = [&] { return (x = x * 1103515245u + 12345u) >> 16; };
  for (int l = 0; l < lines; ++l) {
    const uint32_t n = next() % 12;
    for (uint32_t w = 0; w < n; ++w) {
      if (w) text += (next() % 7 == 0) ? "  " : " ";
      const uint32_t r = next() % 100;
      text += words[r < 30 ? r % 3 : r % 14];
    }
    text += (next() % 9 == 0) ? "\r\n" : "\n";
  }
  return text;
}

class PreparedTest : public test::TempDirTest {
 protected:
  // Small blocks and shards, so lines cross block boundaries and ids cross shard boundaries.
  PrepareOptions small(TokenLevel level, TextMode mode) {
    PrepareOptions o;
    o.level = level;
    o.mode = mode;
    o.shard_tokens = 97;
    o.read_block = 40;
    return o;
  }
  static PrepareOptions words_only() {
    PrepareOptions o;
    o.level = TokenLevel::words;
    return o;
  }
  static std::vector<int32_t> all_ids(const TokenSource& s) {
    std::vector<int32_t> ids(size_t(s.size()));
    s.read(0, s.size(), ids.data());
    return ids;
  }
};

TEST_F(PreparedTest, IdsAndVocabularyAreTheTextPathsInEveryLevelAndMode) {
  const std::string text = corpus_text(300, 7);
  const std::string file = write("corpus.txt", text);
  const std::string body = text.substr(3);  // read_text_file drops the byte-order mark
  for (TokenLevel level : {TokenLevel::chars, TokenLevel::words})
    for (TextMode mode : {TextMode::stream, TextMode::lines}) {
      SCOPED_TRACE(std::string(token_level_name(level)) + " " + text_mode_name(mode));
      const std::string out = path(std::string("prep_") + token_level_name(level) + text_mode_name(mode));
      const PrepareResult r = prepare_corpus({file}, out, small(level, mode));
      const Vocab want_vocab = build_vocab(body, level, mode);
      const PreparedCorpus c(out);
      EXPECT_EQ(c.vocab(), want_vocab);
      EXPECT_GT(r.shards, 2);
      EXPECT_EQ(r.source_bytes, int64_t(body.size()));
      if (mode == TextMode::stream) {
        const std::vector<int32_t> want = encode_stream(want_vocab, body);
        EXPECT_EQ(all_ids(*c.tokens()), want);
        EXPECT_EQ(r.tokens, int64_t(want.size()));
      } else {
        const LineExamples want = encode_lines(want_vocab, body);
        const auto src = c.lines();
        ASSERT_EQ(src->size(), want.size());
        for (int64_t i = 0; i < want.size(); ++i) {
          std::vector<int32_t> ex(size_t(src->length(i)));
          src->read(i, ex.data());
          ASSERT_EQ(ex, std::vector<int32_t>(want.example(i).begin(), want.example(i).end())) << "example " << i;
        }
      }
    }
}

TEST_F(PreparedTest, SpilledWordCountsGiveTheInMemoryVocabulary) {
  const std::string text = corpus_text(400, 11) + "rare1 rare2 rare2 zz zz zz\n";
  const std::string file = write("corpus.txt", text);
  for (VocabOptions vo : {VocabOptions{0, 1}, VocabOptions{9, 1}, VocabOptions{0, 3}, VocabOptions{12, 2}}) {
    SCOPED_TRACE("max_vocab " + std::to_string(vo.max_vocab) + " min_count " + std::to_string(vo.min_count));
    PrepareOptions o = small(TokenLevel::words, TextMode::stream);
    o.vocab = vo;
    o.count_entries = 4;  // a handful of distinct words per run: many runs to merge
    int64_t runs = 0;
    const Vocab v = count_vocabulary({file}, o, dir_.string(), &runs);
    EXPECT_GT(runs, 3);
    EXPECT_EQ(v, build_vocab(text.substr(3), TokenLevel::words, TextMode::stream, vo));
  }
  for (const auto& e : fs::directory_iterator(dir_))  // the run files are removed
    EXPECT_EQ(e.path().filename().string().find("vocab-counts"), std::string::npos) << e.path();
}

// The bounded shuffle a corpus larger than memory gets (LinesOptions::shuffle_window): windows
// of consecutive examples cross shard boundaries, and the batches equal the in-memory ones.
TEST_F(PreparedTest, AShuffleWindowGivesTheSameBatchesFromDiskAsFromMemory) {
  const std::string text = corpus_text(300, 7);
  const std::string file = write("corpus.txt", text);
  const std::string out = path("prep");
  prepare_corpus({file}, out, small(TokenLevel::words, TextMode::lines));
  const PreparedCorpus c(out);
  ASSERT_GT(c.manifest().shards.size(), 3u);
  const LinesOptions opts{.batch_size = 6, .seed = 9, .shuffle_window = 23};
  LinesBatcher disk(c.lines(), opts), memory(encode_lines(c.vocab(), text.substr(3)), opts);
  ASSERT_EQ(disk.shuffle_window(), 23);
  TextBatch a, b;
  int64_t batches = 0;
  for (int i = 0; i < 3 * (disk.batches_per_epoch() + 1); ++i) {
    const bool more = disk.next(a);
    ASSERT_EQ(more, memory.next(b));
    if (!more) continue;
    ++batches;
    ASSERT_EQ(a.input.data, b.input.data) << "batch " << i;
    ASSERT_EQ(a.target.data, b.target.data) << "batch " << i;
  }
  EXPECT_EQ(batches, 3 * disk.batches_per_epoch());
}

TEST_F(PreparedTest, SeveralFilesAFolderAndSixteenOrThirtyTwoBitIds) {
  fs::create_directories(path("in/sub"));
  write("in/b.txt", "b b b\n");
  write("in/sub/c.txt", "c c\n");
  write("a.txt", "a\n");
  const PrepareResult r = prepare_corpus({path("a.txt"), path("in")}, path("out"), small(TokenLevel::words, TextMode::stream));
  EXPECT_EQ(r.token_bits, 16);
  const PreparedCorpus c(path("out"));
  const Vocab& v = c.vocab();
  // a.txt, then the folder's files in path order: in/b.txt, in/sub/c.txt.
  EXPECT_EQ(c.vocab().detokenize(all_ids(*c.tokens())), "a\nb b b\nc c\n");
  EXPECT_EQ(v.id("b"), 2);
  std::string many;  // 70000 distinct words need 32-bit ids
  for (int i = 0; i < 70000; ++i) many += "w" + std::to_string(i) + (i % 10 == 9 ? "\n" : " ");
  const PrepareResult big = prepare_corpus({write("many.txt", many)}, path("big"), words_only());
  EXPECT_EQ(big.token_bits, 32);
  const PreparedCorpus cb(path("big"));
  EXPECT_EQ(all_ids(*cb.tokens()), encode_stream(cb.vocab(), many));
}

TEST_F(PreparedTest, BadInputIsRefusedNamingTheFile) {
  const PrepareOptions o = small(TokenLevel::chars, TextMode::stream);
  expect_one_line_error([&] { prepare_corpus({write("empty.txt", "")}, path("o1"), o); }, {"empty.txt", "empty"});
  // The bad byte is in the third line, past the first 40-byte block: file offsets, not block offsets.
  const std::string bad = std::string(50, 'a') + "\n" + std::string(30, 'b') + "\nxy\xff\n";
  expect_one_line_error([&] { prepare_corpus({write("bad.txt", bad)}, path("o2"), o); },
                        {"bad.txt", "invalid UTF-8 at byte 84", "line 3", "column 3"});
  expect_one_line_error([&] { prepare_corpus({path("missing.txt")}, path("o3"), o); }, {"missing.txt", "no such file"});
  expect_one_line_error<Error>([&] { prepare_corpus({write("blank.txt", "  \n\n")}, path("o4"), small(TokenLevel::words, TextMode::stream)); },
                               {"blank.txt", "no tokens"});
  EXPECT_FALSE(is_prepared_corpus(path("o4")));
}

// ---- damaged corpora ------------------------------------------------------------------------

class DamagedCorpusTest : public PreparedTest {
 protected:
  void SetUp() override {
    PreparedTest::SetUp();
    prepare_corpus({write("c.txt", corpus_text(120, 3))}, path("p"), small(TokenLevel::words, TextMode::lines));
  }
  std::string shard(int i) const { return test::shard_path(path("p"), i); }
  static void poke(const std::string& p, size_t at, std::string_view b) { test::poke_bytes(p, at, b); }
  static std::string le(uint64_t v, int n) { return test::le_bytes(v, n); }
  std::string bytes_of(const std::string& p) { return test::slurp(p); }
  void open() { PreparedCorpus c(path("p")); }
};

TEST_F(DamagedCorpusTest, IntactCorpusOpens) { EXPECT_NO_THROW(open()); }

TEST_F(DamagedCorpusTest, WrongMagic) {
  poke(shard(1), 0, "NOTATOKF");
  expect_one_line_error([&] { open(); }, {"shard-00001.bin", "byte 0", "magic", "RECURTOK"});
}

TEST_F(DamagedCorpusTest, WrongVersion) {
  poke(shard(0), 8, le(7, 4));
  expect_one_line_error([&] { open(); }, {"shard-00000.bin", "byte 8", "version 7", "expected 1"});
}

TEST_F(DamagedCorpusTest, TruncatedShardNamesTheShardAndOffset) {
  const std::string s = bytes_of(shard(2));
  std::ofstream(shard(2), std::ios::binary | std::ios::trunc) << s.substr(0, s.size() - 5);
  expect_one_line_error([&] { open(); },
                        {"shard-00002.bin", "truncated at byte " + std::to_string(s.size() - 5),
                         "expected " + std::to_string(s.size()) + " bytes"});
  std::ofstream(shard(2), std::ios::binary | std::ios::trunc) << s.substr(0, 20);
  expect_one_line_error([&] { open(); }, {"shard-00002.bin", "truncated at byte 20", "64-byte shard header"});
}

TEST_F(DamagedCorpusTest, CountsThatOverflowAreRefused) {
  poke(shard(0), 32, le(uint64_t(1) << 63, 8));
  expect_one_line_error([&] { open(); }, {"shard-00000.bin", "byte 32", "token count 9223372036854775808", "2^48"});
  // The manifest's counts: a shard over the limit, and a total that is not the shards' sum.
  const std::string m = bytes_of(path("p/manifest.json"));
  auto j = nlohmann::json::parse(m);
  j["shards"][0]["tokens"] = uint64_t(1) << 62;
  std::ofstream(path("p/manifest.json"), std::ios::trunc) << j.dump();
  expect_one_line_error([&] { open(); }, {"manifest.json", "\"shards\"[0]", "\"tokens\"", "expected an integer in [1, "});
  j = nlohmann::json::parse(m);
  j["tokens"] = j["tokens"].get<int64_t>() + 1;
  std::ofstream(path("p/manifest.json"), std::ios::trunc) << j.dump();
  expect_one_line_error([&] { open(); }, {"manifest.json", "\"tokens\"", "the sum of the shards' tokens"});
}

TEST_F(DamagedCorpusTest, AnotherVocabularyIsRefusedByName) {
  // vocab.json from another prepare run: its hash is not the manifest's.
  prepare_corpus({write("other.txt", "other words here\n")}, path("q"), small(TokenLevel::words, TextMode::lines));
  fs::copy_file(path("q/vocab.json"), path("p/vocab.json"), fs::copy_options::overwrite_existing);
  expect_one_line_error([&] { open(); }, {"p/vocab.json", "does not match", "manifest.json", "one recur prepare run"});
  // A shard from the other run: its header's hash is not this corpus's.
  prepare_corpus({path("c.txt")}, path("p"), small(TokenLevel::words, TextMode::lines));  // back to a good corpus
  fs::copy_file(path("q/shard-00000.bin"), shard(1), fs::copy_options::overwrite_existing);
  expect_one_line_error([&] { open(); }, {"shard-00001.bin", "vocabulary", "vocab.json", "manifest.json"});
}

TEST_F(DamagedCorpusTest, BadIdsAndOffsetsAreFoundWhenRead) {
  const PreparedCorpus good(path("p"));
  const int64_t tokens0 = good.manifest().shards[0].tokens, examples0 = good.manifest().shards[0].examples;
  poke(shard(0), 64 + 2, le(60000, 2));  // the second id of shard 0
  poke(shard(0), size_t(64 + tokens0 * 2 + 8), le(uint64_t(tokens0) + 5, 8));  // example 0 ends past the ids
  const PreparedCorpus c(path("p"));  // headers still agree: opening is cheap and does not read ids
  const auto lines = c.lines();
  expect_one_line_error([&] { (void)lines->length(0); },
                        {"shard-00000.bin", "byte " + std::to_string(64 + tokens0 * 2), "example 0", "increasing offsets"});
  ASSERT_GT(examples0, 1);
  poke(shard(0), size_t(64 + tokens0 * 2 + 8), le(1, 8));  // example 0 is id 0 alone, example 1 starts at id 1
  std::vector<int32_t> ex(size_t(lines->length(1)));
  expect_one_line_error([&] { lines->read(1, ex.data()); },
                        {"shard-00000.bin", "byte 66", "token id 60000", "below the vocabulary size"});
}

// ---- training from a prepared corpus ----------------------------------------------------------

class PreparedTrainTest : public PreparedTest {
 protected:
  // In the scratch folder, so the commands name their files relative to it.
  test::CliResult run(const std::string& args) { return test::run_recur(args, dir_, "cd '" + dir_.string() + "' &&"); }
  std::vector<std::string> losses(const std::string& run_dir, const char* type = "train") {
    return test::metric_losses(run_dir, type);
  }
  // The same run on the text and on its prepared corpus (shards of 300 ids, so a run crosses
  // several); the second half of the prepared run is a resume in the middle of a shard.
  void expect_identical(const std::string& level, const std::string& mode) {
    write("train.txt", corpus_text(400, 5));
    write("valid.txt", corpus_text(40, 9));
    const std::string flags = " --level " + level + " --mode " + mode +
                              " --hidden 16 --layers 1 --batch 4 --seq-len 9 --threads 1 --log-every 1 "
                              "--valid-every 5 --seed 3";
    const auto p = run("prepare train.txt --out prep --shard-tokens 300 --quiet --level " + level + " --mode " + mode);
    ASSERT_EQ(p.rc, 0) << p.err;
    // Validation and test sets prepared with the training vocabulary, in shards of 50 ids.
    const auto v = run("prepare valid.txt --vocab prep --out vprep --shard-tokens 50 --quiet --level " + level +
                       " --mode " + mode);
    ASSERT_EQ(v.rc, 0) << v.err;
    ASSERT_EQ(run("train train.txt --out text --valid valid.txt --test valid.txt" + flags + " --steps 14").rc, 0);
    const auto half = run("train prep --out prepared --valid vprep --test vprep/" + flags + " --steps 7");
    ASSERT_EQ(half.rc, 0) << half.err;
    const auto rest = run("train prep --out prepared --resume --steps 14");
    ASSERT_EQ(rest.rc, 0) << rest.err;
    const auto want = losses(path("text"));
    ASSERT_EQ(want.size(), 14u);
    EXPECT_EQ(losses(path("prepared")), want);
    // Validation and test from the prepared sets; the stop at step 7 evaluated both once more.
    auto without_stop = [](std::vector<std::string> v) {
      std::erase_if(v, [](const std::string& e) { return e.starts_with("7:"); });
      return v;
    };
    const auto valid = losses(path("text"), "valid");
    ASSERT_EQ(valid.size(), 3u);  // steps 5, 10 and the end
    EXPECT_EQ(without_stop(losses(path("prepared"), "valid")), valid);
    ASSERT_EQ(losses(path("text"), "test").size(), 1u);
    EXPECT_EQ(without_stop(losses(path("prepared"), "test")), losses(path("text"), "test"));
    // Stream mode: the resumed half starts inside a shard (stream 0 at offset 7 * 9 of shard 0).
    const PreparedCorpus c(path("prep"));
    EXPECT_GT(c.manifest().shards.size(), 3u);
  }
};

TEST_F(PreparedTrainTest, StreamWordsLossesAreBitIdenticalAlsoResumedMidShard) { expect_identical("word", "stream"); }
TEST_F(PreparedTrainTest, StreamCharsLossesAreBitIdenticalAlsoResumedMidShard) { expect_identical("char", "stream"); }
TEST_F(PreparedTrainTest, LinesWordsLossesAreBitIdenticalAlsoResumedMidShard) { expect_identical("word", "lines"); }
TEST_F(PreparedTrainTest, LinesCharsLossesAreBitIdenticalAlsoResumedMidShard) { expect_identical("char", "lines"); }

TEST_F(PreparedTrainTest, FlagsThatContradictTheCorpusAreRefusedByName) {
  write("train.txt", corpus_text(100, 5));
  ASSERT_EQ(run("prepare train.txt --out prep --level word --quiet").rc, 0);
  for (const std::string flag : {"--level chars", "--mode lines", "--max-vocab 10", "--min-count 2"}) {
    const auto r = run("train prep --out run --steps 1 " + flag);
    EXPECT_EQ(r.rc, 1) << flag;
    EXPECT_NE(r.err.find(flag + " does not match the prepared corpus's"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("manifest.json"), std::string::npos) << r.err;
  }
  const auto vf = run("train prep --out run --steps 1 --valid-fraction 0.1");
  EXPECT_EQ(vf.rc, 1);
  EXPECT_NE(vf.err.find("--valid-fraction: a prepared corpus is not split"), std::string::npos) << vf.err;
  // Resuming against a corpus with another vocabulary.
  ASSERT_EQ(run("train prep --out run --steps 2 --hidden 8 --layers 1 --batch 2 --threads 1").rc, 0);
  write("other.txt", corpus_text(100, 99) + "new words\n");
  ASSERT_EQ(run("prepare other.txt --out other --level word --quiet").rc, 0);
  const auto r = run("train other --out run --resume --steps 4");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("other/vocab.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("resuming needs the corpus the run was trained on"), std::string::npos) << r.err;
}

TEST_F(PreparedTrainTest, EvalOnAPreparedCorpusReportsWhatTheTextGives) {
  write("train.txt", corpus_text(200, 5));
  write("valid.txt", corpus_text(30, 9));
  for (const std::string mode : {"stream", "lines"}) {
    SCOPED_TRACE(mode);
    const std::string lm = " --level word --mode " + mode;
    ASSERT_EQ(run("prepare train.txt --out prep-" + mode + " --quiet" + lm).rc, 0);
    ASSERT_EQ(run("prepare valid.txt --vocab prep-" + mode + "/vocab.json --out v-" + mode + " --shard-tokens 40 --quiet" +
                  lm).rc, 0);
    ASSERT_EQ(run("train prep-" + mode + " --out run-" + mode + " --steps 3 --hidden 8 --layers 1 --batch 3 --threads 1").rc,
              0);
    const auto text = run("eval run-" + mode + "/last.safetensors valid.txt --json");
    const auto prep = run("eval run-" + mode + "/last.safetensors v-" + mode + " --json");
    ASSERT_EQ(text.rc, 0) << text.err;
    ASSERT_EQ(prep.rc, 0) << prep.err;
    auto a = nlohmann::json::parse(text.out), b = nlohmann::json::parse(prep.out);
    EXPECT_EQ(b.at("file"), "v-" + mode);
    a.erase("file");
    b.erase("file");
    EXPECT_EQ(a, b);  // loss, counts and <unk> statistics, bit for bit
    EXPECT_GT(a.at("unk").get<int64_t>(), 0);  // the words only valid.txt has
  }
}

TEST_F(PreparedTrainTest, AValidationCorpusWithAnotherVocabularyIsRefusedBeforeTraining) {
  write("train.txt", corpus_text(100, 5));
  write("valid.txt", corpus_text(30, 9) + "unseen words\n");
  ASSERT_EQ(run("prepare train.txt --out prep --level word --quiet").rc, 0);
  ASSERT_EQ(run("prepare valid.txt --out own --level word --quiet").rc, 0);  // its own vocabulary
  const auto r = run("train prep --out run --valid own/ --steps 50 --hidden 8 --layers 1 --batch 2");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("recur: error: own/vocab.json: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("differ from the training vocabulary"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("//"), std::string::npos) << r.err;  // "own/" names the folder once
  EXPECT_FALSE(fs::exists(path("run/last.safetensors")));
  ASSERT_EQ(run("train prep --out run --steps 1 --hidden 8 --layers 1 --batch 2").rc, 0);
  const auto e = run("eval run/last.safetensors own");
  EXPECT_EQ(e.rc, 1);
  EXPECT_NE(e.err.find("differ from the model's vocabulary"), std::string::npos) << e.err;
  ASSERT_EQ(run("prepare valid.txt --vocab prep --out lines --level word --mode lines --quiet").rc, 0);
  const auto m = run("eval run/last.safetensors lines");
  EXPECT_EQ(m.rc, 1);
  EXPECT_NE(m.err.find("prepared as words/lines, but the model reads words/stream"), std::string::npos) << m.err;
  const auto lv = run("prepare valid.txt --vocab prep --out x --level char --quiet");
  EXPECT_EQ(lv.rc, 1);
  EXPECT_NE(lv.err.find("--vocab: a words vocabulary, but --level is chars"), std::string::npos) << lv.err;
  EXPECT_EQ(run("prepare valid.txt --vocab prep --max-vocab 5 --out x --level word --quiet").rc, 2);
}

TEST_F(PreparedTrainTest, APrepareIntoAFolderOfItsOwnInputDoesNotReadItself) {
  fs::create_directories(path("in"));
  write("in/a.txt", corpus_text(60, 5));
  ASSERT_EQ(run("prepare in --out in/corpus --level word --quiet").rc, 0);
  const std::string first = test::slurp(path("in/corpus/manifest.json"));
  ASSERT_EQ(run("prepare in --out in/corpus/ --level word --quiet").rc, 0);  // the shards now lie in "in"
  EXPECT_EQ(test::slurp(path("in/corpus/manifest.json")), first);
  EXPECT_EQ(PreparedCorpus(path("in/corpus")).manifest().inputs, std::vector<std::string>{"in/a.txt"});
}

TEST_F(PreparedTrainTest, PrepareReadsStandardInputAndRefusesBadFlagsAsUsage) {
  write("train.txt", corpus_text(50, 5));
  const auto r = run("prepare - --out fromstdin --level word --quiet < train.txt");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("prepared fromstdin"), std::string::npos) << r.out;
  const PreparedCorpus c(path("fromstdin"));
  EXPECT_EQ(c.manifest().inputs, std::vector<std::string>{"<stdin>"});
  EXPECT_EQ(all_ids(*c.tokens()), encode_stream(c.vocab(), corpus_text(50, 5).substr(3)));
  for (const auto& e : fs::directory_iterator(path("fromstdin")))  // the spooled copy is gone
    EXPECT_EQ(e.path().filename().string().find("spool"), std::string::npos) << e.path();
  EXPECT_EQ(run("prepare train.txt --out x --shard-tokens 0").rc, 2);
  EXPECT_EQ(run("prepare train.txt --out x --max-vocab 2").rc, 2);
  EXPECT_EQ(run("prepare train.txt --out x --level bytes").rc, 2);
  const auto bad = run("prepare missing.txt --out x");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("recur: error: missing.txt: no such file"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace recur
