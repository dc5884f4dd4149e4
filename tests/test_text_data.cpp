// Tests for utf8.h, vocab.h and text_data.h. Everything except the SharedData cases works on
// in-memory strings and temporary files, so the core suite needs no data set.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <unistd.h>

#include "recur/data/text_data.h"
#include "recur/data/utf8.h"
#include "recur/data/vocab.h"

namespace fs = std::filesystem;
using namespace recur;

namespace {

// Runs `fn`, expects an exception of type E whose message contains every one of `parts`.
template <typename E, typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one containing \"" << *parts.begin() << "\"";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing \"" << p << "\" in: " << msg;
  }
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("recur_text_data_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    const auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

std::vector<int32_t> ids_of(const Vocab& v, std::initializer_list<const char*> toks) {
  std::vector<int32_t> out;
  for (const char* t : toks) out.push_back(v.id(t));
  return out;
}

std::vector<int32_t> row(const Tensor<int32_t>& x, int64_t t) {
  const int64_t B = x.dim(1);
  return {x.data.begin() + t * B, x.data.begin() + (t + 1) * B};
}

}  // namespace

// ---- UTF-8 --------------------------------------------------------------------------------------

TEST(Utf8, DecodesAndEncodesBoundaries) {
  const std::u32string cps = {0x0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF};
  const std::string bytes = utf8_encode(cps);
  EXPECT_EQ(bytes.size(), 2u * 1 + 2 * 2 + 4 * 3 + 2 * 4);
  EXPECT_EQ(utf8_decode(bytes), cps);
  EXPECT_EQ(utf8_decode("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), (std::u32string{U'a', 0xE9, 0x20AC, 0x1F600}));
  EXPECT_EQ(utf8_length("h\xC3\xA9llo"), 5u);
  EXPECT_EQ(utf8_find_invalid("plain ascii"), std::string_view::npos);
}

TEST(Utf8, RejectsInvalidSequencesNamingTheByteOffset) {
  struct Case {
    std::string bytes;
    size_t offset;
    const char* why;
  };
  const std::vector<Case> cases = {
      {"ab\xC0\xAF", 2, "overlong"},               // '/' in two bytes
      {"abc\xE0\x80\xAF", 3, "overlong"},          // three-byte overlong
      {"\xF0\x82\x82\xAC", 0, "overlong"},         // four-byte overlong of U+20AC
      {"x\xED\xA0\x80", 1, "surrogate"},           // U+D800
      {"xy\xED\xBF\xBF", 2, "surrogate"},          // U+DFFF
      {"\xF4\x90\x80\x80", 0, "above U+10FFFF"},   // U+110000
      {"z\xF5\x80\x80\x80", 1, "above U+10FFFF"},  // lead byte beyond the range
      {"hello\xE2\x82", 5, "truncated"},           // input ends inside a sequence
      {"a\xE2\x82" "b", 1, "truncated"},           // ASCII where a continuation should be
      {"\x80", 0, "continuation"},
      {"ok \xFF", 3, "lead byte"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.why);
    EXPECT_EQ(utf8_find_invalid(c.bytes), c.offset);
    expect_error<FormatError>([&] { utf8_validate(c.bytes, "in.txt"); },
                              {"in.txt: invalid UTF-8 at byte " + std::to_string(c.offset) + " ", c.why});
    expect_error<FormatError>([&] { utf8_decode(c.bytes, "in.txt"); }, {"at byte " + std::to_string(c.offset) + " "});
  }
  expect_error<FormatError>([] { utf8_validate("ab\ncd\xFF", "f"); }, {"at byte 5 (line 2, column 3"});
}

TEST(Utf8, EncodeRejectsNonScalarValues) {
  expect_error<Error>([] { utf8_encode(char32_t(0xD800)); }, {"U+D800"});
  expect_error<Error>([] { utf8_encode(char32_t(0x110000)); }, {"U+110000"});
}

// ---- vocabulary ---------------------------------------------------------------------------------

TEST(Vocab, SpecialsHaveFixedIds) {
  Vocab v;
  EXPECT_EQ(v.size(), 2);
  EXPECT_EQ(v.id("<unk>"), Vocab::unk_id);
  EXPECT_EQ(v.id("<eos>"), Vocab::eos_id);
  EXPECT_EQ(v.token(0), "<unk>");
  EXPECT_EQ(v.token(1), "<eos>");
  EXPECT_EQ(v.id("anything"), Vocab::unk_id);
  expect_error<Error>([&] { v.token(2); }, {"id 2 out of range"});
  expect_error<Error>([&] { v.token(-1); }, {"id -1 out of range"});
}

TEST(Vocab, BuildsByFrequencyWithByteOrderTies) {
  TokenCounter c(TokenLevel::words);
  c.add_text("b a c a b a d\ne");
  const Vocab v = Vocab::build(c);
  EXPECT_EQ(v.tokens(), (std::vector<std::string>{"<unk>", "<eos>", "a", "b", "c", "d", "e"}));
  // Ties do not depend on where a token first occurs.
  TokenCounter c2(TokenLevel::words);
  c2.add_text("e d\nc a b a b a");
  EXPECT_EQ(Vocab::build(c2), v);

  const Vocab capped = Vocab::build(c, {.max_vocab = 4});
  EXPECT_EQ(capped.tokens(), (std::vector<std::string>{"<unk>", "<eos>", "a", "b"}));
  EXPECT_EQ(capped.id("c"), Vocab::unk_id);
  const Vocab frequent = Vocab::build(c, {.min_count = 2});
  EXPECT_EQ(frequent.size(), 4);
  EXPECT_EQ(Vocab::build(c, {.max_vocab = 2}).size(), 2);

  expect_error<Error>([&] { Vocab::build(c, {.max_vocab = 1}); }, {"max_vocab = 1", ">= 2"});
  expect_error<Error>([&] { Vocab::build(c, {.min_count = 0}); }, {"min_count = 0"});
}

TEST(Vocab, PtbStyleLineMapsLiteralUnk) {
  const std::string line = " the <unk> cat N \n";
  const Vocab v = build_vocab(line, TokenLevel::words, TextMode::stream);
  EXPECT_EQ(v.size(), 5);  // <unk> <eos> N cat the: the literal <unk> is not a second entry
  EXPECT_EQ(v.tokens(), (std::vector<std::string>{"<unk>", "<eos>", "N", "cat", "the"}));
  OovStats st;
  const auto ids = encode_stream(v, line, &st);
  EXPECT_EQ(ids, (std::vector<int32_t>{4, Vocab::unk_id, 3, 2, Vocab::eos_id}));
  EXPECT_EQ(st.tokens, 4);
  EXPECT_EQ(st.unk, 1);
  EXPECT_EQ(st.oov, 0);

  OovStats st2;
  std::vector<int32_t> out;
  v.tokenize("the dog <unk>", out, &st2);
  EXPECT_EQ(out, (std::vector<int32_t>{4, 0, 0}));
  EXPECT_EQ(st2.unk, 2);
  EXPECT_EQ(st2.oov, 1);
  EXPECT_NE(st2.summary().find("3 tokens, 2 <unk>"), std::string::npos) << st2.summary();
}

TEST(Vocab, DetokenizeWordsAndChars) {
  const Vocab w = Vocab::from_tokens(TokenLevel::words, {"the", "cat", "N"});
  std::vector<int32_t> ids = ids_of(w, {"the", "cat", "<eos>", "N", "dog", "<eos>"});
  EXPECT_EQ(w.detokenize(ids), "the cat\nN <unk>\n");
  EXPECT_EQ(encode_stream(w, "the cat\nN dog\n"), ids);

  const std::string text = "h\xC3\xA9!\n\xF0\x9F\x98\x80";
  const Vocab c = build_vocab(text, TokenLevel::chars, TextMode::stream);
  EXPECT_EQ(c.size(), 2 + 5);
  EXPECT_TRUE(c.contains("\n"));  // stream mode: newline is an ordinary char
  const auto cids = c.tokenize(text);
  EXPECT_EQ(cids.size(), 5u);
  EXPECT_EQ(c.detokenize(cids), text);
  EXPECT_EQ(c.detokenize(std::vector<int32_t>{c.id("h"), Vocab::eos_id}), "h\n");

  const Vocab cl = build_vocab("ab\r\nb\n", TokenLevel::chars, TextMode::lines);
  EXPECT_EQ(cl.tokens(), (std::vector<std::string>{"<unk>", "<eos>", "b", "a"}));  // no '\n', no '\r'

  expect_error<FormatError>([&] { c.tokenize(std::string("ok\xC0\x80")); }, {"at byte 2"});
  expect_error<Error>([&] { w.detokenize(std::vector<int32_t>{99}); }, {"id 99 out of range"});
}

TEST(Vocab, FromTokensValidates) {
  expect_error<Error>([] { Vocab::from_tokens(TokenLevel::words, {"a", "b", "a"}); }, {"tokens[2]", "duplicate"});
  expect_error<Error>([] { Vocab::from_tokens(TokenLevel::words, {"a b"}); }, {"whitespace"});
  expect_error<Error>([] { Vocab::from_tokens(TokenLevel::words, {"<unk>"}); }, {"special"});
  expect_error<Error>([] { Vocab::from_tokens(TokenLevel::chars, {"ab"}); }, {"more than one code point"});
  TokenCounter words(TokenLevel::words), chars(TokenLevel::chars);
  words.add_token("a b");
  chars.add_token("\xFF");
  expect_error<Error>([&] { Vocab::build(words); }, {"vocab build", "whitespace"});
  expect_error<Error>([&] { Vocab::build(chars); }, {"vocab build", "invalid UTF-8"});
}

TEST(VocabJson, RoundTrips) {
  for (TokenLevel level : {TokenLevel::words, TokenLevel::chars}) {
    const Vocab v = build_vocab("caf\xC3\xA9 \"quoted\" back\\slash caf\xC3\xA9\n\t x", level, TextMode::stream);
    const std::string j = v.to_json();
    const Vocab back = Vocab::from_json(j);
    EXPECT_EQ(back, v);
    EXPECT_EQ(back.level(), level);
    EXPECT_EQ(back.to_json(), j);
  }
}

TEST(VocabJson, CorruptInputGivesClearErrors) {
  const std::string ok = R"({"format":"recur.vocab","version":1,"level":"words","tokens":["<unk>","<eos>","a","b"]})";
  EXPECT_EQ(Vocab::from_json(ok).size(), 4);
  auto bad = [](const std::string& json, std::initializer_list<std::string> parts) {
    SCOPED_TRACE(json);
    expect_error<FormatError>([&] { Vocab::from_json(json, "ckpt.safetensors:vocab"); }, parts);
  };
  bad(R"({"format":"recur.vocab",)", {"ckpt.safetensors:vocab: JSON syntax error at byte"});
  bad(R"([1,2])", {"top level", "expected an object"});
  bad(R"({"format":"other","version":1,"level":"words","tokens":[]})", {"\"format\"", "recur.vocab"});
  bad(R"({"format":"recur.vocab","version":2,"level":"words","tokens":[]})", {"\"version\"", "got 2"});
  bad(R"({"format":"recur.vocab","version":1,"level":"bytes","tokens":[]})", {"\"level\"", "\"bytes\""});
  bad(R"({"format":"recur.vocab","version":1,"level":"words"})", {"\"tokens\"", "missing"});
  bad(R"({"format":"recur.vocab","version":1,"level":"words","tokens":"a b"})", {"\"tokens\"", "array"});
  bad(R"({"format":"recur.vocab","version":1,"level":"words","tokens":["<unk>"]})", {"at least"});
  bad(R"({"format":"recur.vocab","version":1,"level":"words","tokens":["the","<eos>","<unk>"]})",
      {"tokens[0]", "got \"the\", expected \"<unk>\""});
  bad(R"({"format":"recur.vocab","version":1,"level":"words","tokens":["<unk>","<eos>","a",3]})",
      {"tokens[3]", "expected a string"});
  bad(R"({"format":"recur.vocab","version":1,"level":"words","tokens":["<unk>","<eos>","a","b","a"]})",
      {"tokens[4]", "duplicates tokens[2]"});
  bad(R"({"format":"recur.vocab","version":1,"level":"words","tokens":["<unk>","<eos>","a","<eos>"]})",
      {"tokens[3]", "special"});
  bad(R"({"format":"recur.vocab","version":1,"level":"chars","tokens":["<unk>","<eos>","ab"]})",
      {"tokens[2]", "one code point"});
  bad(R"({"format":"recur.vocab","version":1,"level":"words","unk_id":5,"tokens":["<unk>","<eos>"]})",
      {"\"unk_id\"", "expected 0"});
}

// ---- files --------------------------------------------------------------------------------------

TEST(TextFile, ReadErrorsNameTheFile) {
  TempDir dir;
  EXPECT_EQ(read_text_file(dir.write("ok.txt", "\xEF\xBB\xBFhi\n")), "hi\n");  // BOM dropped
  const std::string missing = dir.path() + "/missing.txt";
  expect_error<FormatError>([&] { read_text_file(missing); }, {missing, "no such file"});
  expect_error<FormatError>([&] { read_text_file(dir.path()); }, {dir.path(), "is a directory"});
  const std::string empty = dir.write("empty.txt", "");
  expect_error<FormatError>([&] { read_text_file(empty); }, {empty, "empty"});
  const std::string bad = dir.write("bad.txt", "line one\nline \xED\xA0\x80 two\n");
  expect_error<FormatError>([&] { read_text_file(bad); }, {bad + ": invalid UTF-8 at byte 14 (line 2, column 6", "surrogate"});
}

TEST(TextFile, SplitLines) {
  EXPECT_EQ(split_lines("a\r\nb\n\nc"), (std::vector<std::string_view>{"a", "b", "", "c"}));
  EXPECT_EQ(split_lines("a\n"), (std::vector<std::string_view>{"a"}));
  EXPECT_TRUE(split_lines("").empty());
}

// ---- stream mode --------------------------------------------------------------------------------

TEST(StreamBatcher, ShapesAndShiftedTargetsAcrossChunks) {
  std::vector<int32_t> ids(103);
  std::iota(ids.begin(), ids.end(), 0);
  StreamBatcher sb(ids, {.batch_size = 4, .seq_len = 5});
  EXPECT_EQ(sb.stream_len(), 25);          // 103 / 4; 3 tail tokens dropped
  EXPECT_EQ(sb.batches_per_epoch(), 5);    // 24 input steps: 5+5+5+5+4
  TextBatch batch;
  std::vector<std::vector<int32_t>> inputs(4), targets(4);
  std::vector<int32_t> prev_last_target;
  int64_t n = 0;
  while (sb.next(batch)) {
    const int64_t T = batch.steps();
    EXPECT_EQ(batch.batch(), 4);
    EXPECT_EQ(T, n < 4 ? 5 : 4);
    EXPECT_EQ(batch.target.shape, (Shape{T, 4}));
    EXPECT_EQ(batch.mask.shape, (Shape{T, 4}));
    EXPECT_EQ(batch.lengths, std::vector<int64_t>(4, T));
    EXPECT_EQ(batch.tokens(), 4 * T);
    if (!prev_last_target.empty()) {
      EXPECT_EQ(row(batch.input, 0), prev_last_target);  // a hidden state carries over
    }
    prev_last_target = row(batch.target, T - 1);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < 4; ++b) {
        inputs[size_t(b)].push_back(batch.input.data[size_t(t * 4 + b)]);
        targets[size_t(b)].push_back(batch.target.data[size_t(t * 4 + b)]);
        EXPECT_EQ(batch.mask.data[size_t(t * 4 + b)], 1.0f);
      }
    ++n;
  }
  EXPECT_EQ(n, 5);
  for (int32_t b = 0; b < 4; ++b) {
    ASSERT_EQ(inputs[size_t(b)].size(), 24u);
    for (int32_t k = 0; k < 24; ++k) {
      EXPECT_EQ(inputs[size_t(b)][size_t(k)], 25 * b + k);      // stream b is ids[25b, 25b + 25)
      EXPECT_EQ(targets[size_t(b)][size_t(k)], 25 * b + k + 1);  // shifted by one
    }
  }
  EXPECT_EQ(sb.epoch(), 1);
  ASSERT_TRUE(sb.next(batch));  // the next epoch starts over
  EXPECT_EQ(row(batch.input, 0), (std::vector<int32_t>{0, 25, 50, 75}));
}

TEST(StreamBatcher, DropLastAndTooLittleData) {
  std::vector<int32_t> ids(103);
  std::iota(ids.begin(), ids.end(), 0);
  StreamBatcher sb(ids, {.batch_size = 4, .seq_len = 5, .drop_last = true});
  EXPECT_EQ(sb.batches_per_epoch(), 4);
  TextBatch batch;
  int n = 0;
  while (sb.next(batch)) {
    EXPECT_EQ(batch.steps(), 5);
    ++n;
  }
  EXPECT_EQ(n, 4);
  expect_error<Error>([] { StreamBatcher(std::vector<int32_t>(7), {.batch_size = 4, .seq_len = 5}); },
                      {"7 tokens for batch_size 4", "at least 2 tokens per stream"});
}

TEST(StreamBatcher, StateRestoreGivesIdenticalBatches) {
  std::vector<int32_t> ids(500);
  std::iota(ids.begin(), ids.end(), 0);
  const StreamOptions opts{.batch_size = 3, .seq_len = 7};
  StreamBatcher a(ids, opts);
  TextBatch batch;
  for (int i = 0; i < 30; ++i) a.next(batch);  // crosses an epoch boundary (24 batches + false)
  const auto saved = a.state();
  const std::string saved_json = a.state_json();
  EXPECT_EQ(saved.epoch, 1);
  std::vector<Tensor<int32_t>> expect;
  for (int i = 0; i < 30; ++i)
    if (a.next(batch)) expect.push_back(batch.input);

  for (int how = 0; how < 2; ++how) {
    StreamBatcher b(ids, opts);
    if (how == 0)
      b.set_state(saved);
    else
      b.set_state_json(saved_json);
    EXPECT_EQ(b.state(), saved);
    std::vector<Tensor<int32_t>> got;
    for (int i = 0; i < 30; ++i)
      if (b.next(batch)) got.push_back(batch.input);
    ASSERT_EQ(got.size(), expect.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].data, expect[i].data) << i;
  }

  StreamBatcher other(ids, {.batch_size = 4, .seq_len = 7});
  expect_error<FormatError>([&] { other.set_state_json(saved_json, "ckpt"); }, {"ckpt: \"batch_size\": saved 3"});
  StreamBatcher c(ids, opts);
  expect_error<Error>([&] { c.set_state({0, 1000}); }, {"offset 1000"});
  expect_error<FormatError>([&] { c.set_state_json("{\"mode\":\"lines\"}", "ckpt"); }, {"\"mode\"", "\"stream\""});
}

// ---- lines mode ---------------------------------------------------------------------------------

TEST(LinesBatcher, PaddingMaskAndLengths) {
  const std::string text = "ab\nc\n\nabcd\n";
  const Vocab v = build_vocab(text, TokenLevel::chars, TextMode::lines);
  const LineExamples ex = encode_lines(v, text);
  ASSERT_EQ(ex.size(), 3);  // the empty line is no example
  LinesBatcher lb(ex, {.batch_size = 2, .shuffle = false});
  EXPECT_EQ(lb.batches_per_epoch(), 2);
  const int32_t a = v.id("a"), b = v.id("b"), c = v.id("c"), d = v.id("d"), E = Vocab::eos_id, P = Vocab::eos_id;
  TextBatch batch;
  ASSERT_TRUE(lb.next(batch));
  EXPECT_EQ(batch.input.shape, (Shape{3, 2}));
  EXPECT_EQ(batch.input.data, (std::vector<int32_t>{E, E, a, c, b, P}));   // time-major, "ab" | "c"
  EXPECT_EQ(batch.target.data, (std::vector<int32_t>{a, c, b, E, E, P}));
  EXPECT_EQ(batch.lengths, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(batch.mask.data, (std::vector<float>{1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(batch.tokens(), 5);
  ASSERT_TRUE(lb.next(batch));  // the short last batch
  EXPECT_EQ(batch.input.shape, (Shape{5, 1}));
  EXPECT_EQ(batch.input.data, (std::vector<int32_t>{E, a, b, c, d}));
  EXPECT_EQ(batch.target.data, (std::vector<int32_t>{a, b, c, d, E}));
  EXPECT_FALSE(lb.next(batch));

  LinesBatcher padded(ex, {.batch_size = 3, .shuffle = false, .pad_id = -1});
  ASSERT_TRUE(padded.next(batch));
  EXPECT_EQ(batch.input.data[size_t(4 * 3 + 1)], -1);
  EXPECT_EQ(batch.mask.data[size_t(4 * 3 + 1)], 0.0f);

  LinesBatcher dropped(ex, {.batch_size = 2, .shuffle = false, .drop_last = true});
  EXPECT_EQ(dropped.batches_per_epoch(), 1);
  expect_error<Error>([] { LinesBatcher(LineExamples{}, {}); }, {"no examples"});
}

namespace {
LineExamples numbered_examples(int n) {
  // Example i is i % 13 + 1 tokens long, all equal to i, so a batch shows which lines it holds.
  LineExamples ex;
  for (int i = 0; i < n; ++i) ex.add(std::vector<int32_t>(size_t(i % 13 + 1), i));
  return ex;
}

// The example ids of each batch of one epoch.
std::vector<std::vector<int32_t>> epoch_of(LinesBatcher& lb) {
  std::vector<std::vector<int32_t>> out;
  TextBatch batch;
  while (lb.next(batch)) out.push_back(row(batch.target, 0));
  return out;
}
}  // namespace

TEST(LinesBatcher, ShuffleIsSeededAndCoversEveryExample) {
  const LineExamples ex = numbered_examples(50);
  LinesBatcher a(ex, {.batch_size = 8, .seed = 7}), b(ex, {.batch_size = 8, .seed = 7}), c(ex, {.batch_size = 8, .seed = 8});
  std::vector<std::vector<std::vector<int32_t>>> epochs;
  for (int e = 0; e < 3; ++e) {
    const auto ea = epoch_of(a);
    EXPECT_EQ(ea, epoch_of(b));
    EXPECT_NE(ea, epoch_of(c));
    ASSERT_EQ(ea.size(), 7u);
    std::multiset<int32_t> seen;
    for (const auto& batch : ea) seen.insert(batch.begin(), batch.end());
    EXPECT_EQ(seen.size(), 50u);
    EXPECT_EQ(std::set<int32_t>(seen.begin(), seen.end()).size(), 50u);
    epochs.push_back(ea);
  }
  EXPECT_NE(epochs[0], epochs[1]);  // reshuffled every epoch
}

TEST(LinesBatcher, AShuffleWindowCoversEveryExampleWindowByWindowAndResumes) {
  const LineExamples ex = numbered_examples(103);  // windows of 10: ten full ones and one of 3
  const LinesOptions opts{.batch_size = 4, .seed = 5, .shuffle_window = 10};
  LinesBatcher a(ex, opts), b(ex, opts), whole(ex, {.batch_size = 4, .seed = 5, .shuffle_window = 0});
  EXPECT_EQ(a.shuffle_window(), 10);
  EXPECT_EQ(whole.shuffle_window(), 0);
  EXPECT_EQ(a.batches_per_epoch(), 26);
  std::vector<std::vector<int32_t>> flat_epochs;
  for (int e = 0; e < 4; ++e) {
    const auto batches = epoch_of(a);
    EXPECT_EQ(batches, epoch_of(b));
    ASSERT_EQ(batches.size(), 26u);
    std::vector<int32_t> flat;
    for (const auto& batch : batches) flat.insert(flat.end(), batch.begin(), batch.end());
    ASSERT_EQ(flat.size(), 103u);
    EXPECT_EQ(std::set<int32_t>(flat.begin(), flat.end()).size(), 103u);  // every example once
    // The order visits one window at a time: the window index changes 10 times in an epoch.
    int changes = 0;
    for (size_t i = 1; i < flat.size(); ++i) changes += flat[i] / 10 != flat[i - 1] / 10;
    EXPECT_EQ(changes, 10) << e;
    EXPECT_FALSE(std::is_sorted(flat.begin(), flat.end()));  // and shuffles inside them
    flat_epochs.push_back(flat);
  }
  EXPECT_NE(flat_epochs[0], flat_epochs[1]);
  // The short window is not always last: over a few epochs it is visited elsewhere too.
  bool short_not_last = false;
  for (const auto& f : flat_epochs) short_not_last |= f.back() / 10 != 10;
  EXPECT_TRUE(short_not_last);
  // A resume in the middle of an epoch, across a window boundary, needs only the state.
  TextBatch batch;
  LinesBatcher c(ex, opts);
  for (int i = 0; i < 40; ++i) c.next(batch);  // epoch 1, batch 13
  const std::string saved = c.state_json();
  std::vector<std::vector<int32_t>> expect, got;
  for (int i = 0; i < 30; ++i)
    if (c.next(batch)) expect.push_back(batch.input.data);
  LinesBatcher d(ex, opts);
  d.set_state_json(saved);
  for (int i = 0; i < 30; ++i)
    if (d.next(batch)) got.push_back(batch.input.data);
  EXPECT_EQ(got, expect);
  // The default keeps the whole-epoch permutation below the threshold.
  EXPECT_EQ(LinesBatcher(ex, {.batch_size = 4}).shuffle_window(), 0);
  expect_error<Error>([&] { LinesBatcher(ex, {.batch_size = 4, .bucket_batches = 2, .shuffle_window = 10}); },
                      {"bucket_batches with a shuffle window"});
  expect_error<Error>([&] { LinesBatcher(ex, {.batch_size = 4, .shuffle_window = -2}); }, {"shuffle_window = -2"});
}

TEST(LinesBatcher, BucketingCutsPadding) {
  const LineExamples ex = numbered_examples(200);
  auto padding = [&](int64_t buckets) {
    LinesBatcher lb(ex, {.batch_size = 10, .seed = 3, .bucket_batches = buckets});
    TextBatch batch;
    int64_t pad = 0, seen = 0;
    while (lb.next(batch)) pad += batch.input.numel() - batch.tokens(), seen += batch.batch();
    EXPECT_EQ(seen, 200);
    return pad;
  };
  const int64_t plain = padding(0), bucketed = padding(5);
  EXPECT_LT(bucketed * 3, plain) << "plain " << plain << ", bucketed " << bucketed;
}

TEST(LinesBatcher, StateRestoreGivesIdenticalBatches) {
  const LineExamples ex = numbered_examples(37);
  const LinesOptions opts{.batch_size = 5, .seed = 11, .bucket_batches = 2};
  LinesBatcher a(ex, opts);
  TextBatch batch;
  for (int i = 0; i < 11; ++i) a.next(batch);  // epoch 1, batch 3 (8 batches + false per epoch)
  const auto saved = a.state();
  const std::string saved_json = a.state_json();
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.batch, 2);
  std::vector<std::vector<int32_t>> expect;
  for (int i = 0; i < 25; ++i)
    if (a.next(batch)) expect.push_back(batch.input.data);

  for (int how = 0; how < 2; ++how) {
    LinesBatcher b(ex, opts);
    if (how == 0)
      b.set_state(saved);
    else
      b.set_state_json(saved_json);
    EXPECT_EQ(b.state(), saved);
    std::vector<std::vector<int32_t>> got;
    for (int i = 0; i < 25; ++i)
      if (b.next(batch)) got.push_back(batch.input.data);
    EXPECT_EQ(got, expect);
  }

  LinesBatcher other(numbered_examples(36), opts);
  expect_error<FormatError>([&] { other.set_state_json(saved_json, "ckpt"); }, {"\"num_examples\": saved 37"});
  LinesBatcher b(ex, opts);
  std::string broken = saved_json;
  broken[broken.find("\"epoch_rng\":[\"") + 14] = 'z';
  expect_error<FormatError>([&] { b.set_state_json(broken, "ckpt"); }, {"ckpt: \"epoch_rng\"[0]", "hex"});
  expect_error<Error>([&] { b.set_state({0, 99, saved.epoch_rng}); }, {"batch 99"});
}

// ---- held-out split -----------------------------------------------------------------------------

TEST(Holdout, DeterministicAndComplete) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + "\n";
  const TextSplit s = holdout_split(text, {.fraction = 0.1, .seed = 5});
  EXPECT_EQ(s.valid_lines, 10);
  EXPECT_EQ(s.train_lines, 90);
  EXPECT_EQ(split_lines(s.valid).size(), 10u);
  const TextSplit again = holdout_split(text, {.fraction = 0.1, .seed = 5});
  EXPECT_EQ(again.valid, s.valid);
  EXPECT_NE(holdout_split(text, {.fraction = 0.1, .seed = 6}).valid, s.valid);
  std::multiset<std::string_view> all;
  for (auto l : split_lines(s.train)) all.insert(l);
  for (auto l : split_lines(s.valid)) all.insert(l);
  const auto orig = split_lines(text);
  EXPECT_EQ(all, std::multiset<std::string_view>(orig.begin(), orig.end()));

  const TextSplit tail = holdout_split(text, {.fraction = 0.05, .contiguous = true});
  EXPECT_EQ(tail.valid, "line 95\nline 96\nline 97\nline 98\nline 99\n");
  EXPECT_EQ(holdout_split("a\nb\n", {.fraction = 0.01}).valid_lines, 1);
  expect_error<Error>([] { holdout_split("one line\n"); }, {"at least 2"});
  expect_error<Error>([] { holdout_split("a\nb\n", {.fraction = 1.0}); }, {"fraction"});
}

// ---- shared data sets (skipped when shared/data is absent) -----------------------------------------

namespace {
std::string shared_file(const char* rel) {
  const fs::path p = fs::path(RECUR_SHARED_DATA_DIR) / rel;
  return fs::exists(p) ? p.string() : std::string();
}
}  // namespace

TEST(SharedData, PtbWordVocabIs10000) {
  const std::string train = shared_file("ptb/ptb.train.txt"), valid = shared_file("ptb/ptb.valid.txt");
  if (train.empty() || valid.empty()) GTEST_SKIP() << "Penn Treebank (ptb/ptb.train.txt) not under " << RECUR_SHARED_DATA_DIR;
  const std::string text = read_text_file(train);
  const Vocab v = build_vocab(text, TokenLevel::words, TextMode::stream, {}, train);
  EXPECT_EQ(v.size(), 10000);
  OovStats st, vst;
  const auto ids = encode_stream(v, text, &st, train);
  encode_stream(v, read_text_file(valid), &vst, valid);
  EXPECT_EQ(st.oov, 0);
  EXPECT_EQ(vst.oov, 0);  // Mikolov's preprocessing already mapped rare words to <unk>
  std::printf("PTB train: vocab %lld, %lld ids with <eos>; %s\nPTB valid: %s\n", (long long)v.size(),
              (long long)ids.size(), st.summary().c_str(), vst.summary().c_str());
}

TEST(SharedData, TinyShakespeareHas65Chars) {
  const std::string path = shared_file("tinyshakespeare/input.txt");
  if (path.empty()) GTEST_SKIP() << "tinyshakespeare/input.txt not under " << RECUR_SHARED_DATA_DIR;
  const std::string text = read_text_file(path);
  const Vocab v = build_vocab(text, TokenLevel::chars, TextMode::stream, {}, path);
  EXPECT_EQ(v.size() - Vocab::num_special, 65);
  const auto ids = encode_stream(v, text);
  StreamBatcher sb(ids, {.batch_size = 64, .seq_len = 100});
  std::printf("tinyshakespeare: %lld chars + 2 specials, %zu ids, %lld batches/epoch at B=64 T=100\n",
              (long long)(v.size() - 2), ids.size(), (long long)sb.batches_per_epoch());
}

TEST(SharedData, DinosLines) {
  const std::string path = shared_file("dinos/dinos.txt");
  if (path.empty()) GTEST_SKIP() << "dinos/dinos.txt not under " << RECUR_SHARED_DATA_DIR;
  const std::string text = read_text_file(path);
  const Vocab v = build_vocab(text, TokenLevel::chars, TextMode::lines, {}, path);
  const LineExamples ex = encode_lines(v, text, nullptr, path);
  EXPECT_EQ(ex.size(), 1536);  // no final newline: the last name still counts
  LinesBatcher lb(ex, {.batch_size = 32, .seed = 1, .bucket_batches = 4});
  std::printf("dinos: %lld names, %lld chars + 2 specials, %lld batches/epoch at B=32\n", (long long)ex.size(),
              (long long)(v.size() - 2), (long long)lb.batches_per_epoch());
}
