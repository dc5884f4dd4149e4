// Prepared corpora (prepared.h, docs/data.md): the writer (two streaming passes over the text:
// count, then encode into shards) and the reader (pread of a window at a time).
#include "recur/data/prepared.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>

#include "json_fields.h"
#include "shard_io.h"
#include "recur/core/file_io.h"
#include "recur/data/utf8.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

using detail::fnv1a;
using detail::get_le;
using detail::hex64;
using detail::put_le;
using detail::shard_name;
using detail::slurp;

// ---- little-endian fields ---------------------------------------------------------------------




std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

// ---- reading the text a block of whole lines at a time ---------------------------------------

// One input after expansion: a regular file (standard input and pipes are spooled first).
struct Input {
  std::string path;    // what is read
  std::string origin;  // what messages name
};

// Standard input or a pipe cannot be read twice: copied to a temporary file in `dir` first.
class Spool {
 public:
  Spool(const std::string& source, const std::string& dir) : path_(temporary_path(join(dir, "input.spool"))) {
    std::FILE* in = source == "-" ? stdin : std::fopen(source.c_str(), "rb");
    if (!in) throw FormatError(source + ": cannot open: " + std::strerror(errno));
    std::FILE* out = std::fopen(path_.c_str(), "wb");
    if (!out) throw Error(path_ + ": cannot write the spooled input: " + std::strerror(errno));
    std::vector<char> buf(size_t(1) << 20);
    bool ok = true;
    while (size_t n = std::fread(buf.data(), 1, buf.size(), in)) ok = ok && std::fwrite(buf.data(), 1, n, out) == n;
    const bool read_failed = std::ferror(in) != 0;
    if (in != stdin) std::fclose(in);
    ok = std::fclose(out) == 0 && ok;
    if (!ok || read_failed) {
      std::remove(path_.c_str());
      throw Error(read_failed ? source + ": read error" : path_ + ": cannot write the spooled input (disk full?)");
    }
  }
  ~Spool() { std::remove(path_.c_str()); }
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Files, folders (recursively, in path order) and "-"; pipes and stdin are spooled into `dir`.
std::vector<Input> expand_inputs(const std::vector<std::string>& inputs, const std::string& dir,
                                 std::vector<std::unique_ptr<Spool>>& spools) {
  std::vector<Input> out;
  for (const std::string& p : inputs) {
    if (p == "-") {
      spools.push_back(std::make_unique<Spool>("-", dir));
      out.push_back({spools.back()->path(), "<stdin>"});
      continue;
    }
    std::error_code ec;
    const auto st = fs::status(p, ec);
    if (st.type() == fs::file_type::not_found) throw FormatError(p + ": no such file; expected a UTF-8 text file or a folder");
    if (st.type() == fs::file_type::character || st.type() == fs::file_type::block)
      throw FormatError(p + ": is a device; expected a UTF-8 text file, a folder or -");
    if (st.type() == fs::file_type::fifo) {
      spools.push_back(std::make_unique<Spool>(p, dir));
      out.push_back({spools.back()->path(), p});
    } else if (st.type() == fs::file_type::directory) {
      // The output folder (its shards, spools, count runs) is never input, also when it lies
      // inside an input folder: otherwise a second prepare would read the first one's shards.
      const fs::path skip = fs::weakly_canonical(dir, ec);
      std::vector<std::string> files;
      for (auto it = fs::recursive_directory_iterator(p); it != fs::recursive_directory_iterator(); ++it) {
        if (it->is_directory() && !skip.empty() && fs::equivalent(it->path(), skip, ec)) {
          it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) files.push_back(it->path().string());
      }
      if (files.empty()) throw FormatError(p + ": folder holds no files; expected UTF-8 text files");
      std::sort(files.begin(), files.end());
      for (auto& f : files) out.push_back({f, f});
    } else {
      out.push_back({p, p});
    }
  }
  if (out.empty()) throw Error("prepare: no inputs; expected files, folders or -");
  return out;
}

int64_t total_bytes(const std::vector<Input>& inputs) {
  int64_t n = 0;
  for (const Input& in : inputs) {
    std::error_code ec;
    const auto s = fs::file_size(in.path, ec);
    if (!ec) n += int64_t(s);
  }
  return n;
}

// ---- word counts over a corpus larger than memory ---------------------------------------------

// A sorted run of (token, count) records: u32 length, bytes, i64 count.
class RunReader {
 public:
  explicit RunReader(const std::string& path) : f_(std::fopen(path.c_str(), "rb")) {
    if (!f_) throw Error(path + ": cannot read a word-count run: " + std::strerror(errno));
    advance();
  }
  ~RunReader() { std::fclose(f_); }
  RunReader(const RunReader&) = delete;
  RunReader& operator=(const RunReader&) = delete;
  bool done() const { return done_; }
  const std::string& token() const { return token_; }
  int64_t count() const { return count_; }
  void advance() {
    unsigned char len[4], cnt[8];
    if (std::fread(len, 1, 4, f_) != 4) {
      done_ = true;
      return;
    }
    token_.resize(size_t(get_le(len, 4)));
    if (std::fread(token_.data(), 1, token_.size(), f_) != token_.size() || std::fread(cnt, 1, 8, f_) != 8)
      throw Error("a word-count run file ended early (was it removed while prepare ran?)");
    count_ = int64_t(get_le(cnt, 8));
  }

 private:
  std::FILE* f_;
  std::string token_;
  int64_t count_ = 0;
  bool done_ = false;
};

class SpillingCounter {
 public:
  SpillingCounter(TokenLevel level, int64_t max_entries, std::string dir)
      : level_(level), max_entries_(max_entries), dir_(std::move(dir)), counter_(level) {}
  ~SpillingCounter() {
    for (const std::string& r : runs_) std::remove(r.c_str());
  }
  SpillingCounter(const SpillingCounter&) = delete;
  SpillingCounter& operator=(const SpillingCounter&) = delete;

  TokenCounter& counter() { return counter_; }
  int64_t runs() const { return int64_t(runs_.size()); }
  void maybe_spill() {
    if (int64_t(counter_.counts().size()) > max_entries_) spill();
  }

  Vocab vocab(const VocabOptions& opts) {
    if (runs_.empty()) return Vocab::build(counter_, opts);
    spill();
    return Vocab::build(merged(opts), opts);
  }

 private:
  void spill() {
    std::vector<std::pair<std::string_view, int64_t>> items(counter_.counts().begin(), counter_.counts().end());
    std::sort(items.begin(), items.end());
    runs_.push_back(temporary_path(join(dir_, "vocab-counts.run")));
    std::FILE* f = std::fopen(runs_.back().c_str(), "wb");
    if (!f) throw Error(runs_.back() + ": cannot write a word-count run: " + std::strerror(errno));
    std::string rec;
    bool ok = true;
    for (const auto& [tok, n] : items) {
      rec.clear();
      put_le(rec, tok.size(), 4);
      rec.append(tok);
      put_le(rec, uint64_t(n), 8);
      ok = ok && std::fwrite(rec.data(), 1, rec.size(), f) == rec.size();
    }
    ok = std::fclose(f) == 0 && ok;
    if (!ok) throw Error(runs_.back() + ": cannot write a word-count run (disk full?)");
    counter_ = TokenCounter(level_);
  }

  // The runs merged in token order; only what Vocab::build can keep is held: every token with
  // count >= min_count, or with --max-vocab only the best max_vocab - 2 of them (a heap whose
  // top is the worst by build's own order, count then bytes), so build on the result is exact.
  TokenCounter merged(const VocabOptions& opts) {
    std::vector<std::unique_ptr<RunReader>> readers;
    for (const std::string& r : runs_) readers.push_back(std::make_unique<RunReader>(r));
    auto later = [&](size_t a, size_t b) { return readers[a]->token() > readers[b]->token(); };
    std::priority_queue<size_t, std::vector<size_t>, decltype(later)> next(later);
    for (size_t i = 0; i < readers.size(); ++i)
      if (!readers[i]->done()) next.push(i);
    using Kept = std::pair<int64_t, std::string>;
    auto better = [](const Kept& a, const Kept& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
    std::priority_queue<Kept, std::vector<Kept>, decltype(better)> best(better);
    const int64_t cap = opts.max_vocab > 0 ? opts.max_vocab - Vocab::num_special : -1;
    TokenCounter out(level_);
    while (!next.empty()) {
      std::string tok = readers[next.top()]->token();
      int64_t n = 0;
      while (!next.empty() && readers[next.top()]->token() == tok) {
        const size_t i = next.top();
        next.pop();
        n += readers[i]->count();
        readers[i]->advance();
        if (!readers[i]->done()) next.push(i);
      }
      if (n < opts.min_count || tok == Vocab::unk_token || tok == Vocab::eos_token) continue;
      if (cap < 0) {
        out.add_token(tok, n);
        continue;
      }
      best.emplace(n, std::move(tok));
      if (int64_t(best.size()) > cap) best.pop();
    }
    for (; !best.empty(); best.pop()) out.add_token(best.top().second, best.top().first);
    return out;
  }

  TokenLevel level_;
  int64_t max_entries_;
  std::string dir_;
  TokenCounter counter_;
  std::vector<std::string> runs_;
};

void check_options(const PrepareOptions& o) {
  if (o.vocab.max_vocab != 0 && o.vocab.max_vocab < 3)
    throw Error("--max-vocab: got " + std::to_string(o.vocab.max_vocab) + ", expected 0 (unlimited) or >= 3");
  if (o.vocab.min_count < 1) throw Error("--min-count: got " + std::to_string(o.vocab.min_count) + ", expected >= 1");
  if (o.shard_tokens < 1 || o.shard_tokens > kPreparedMaxTokens)
    throw Error("--shard-tokens: got " + std::to_string(o.shard_tokens) + ", expected 1 .. 2^48");
  if (o.count_entries < 1) throw Error("--count-entries: got " + std::to_string(o.count_entries) + ", expected >= 1");
}

Vocab count_pass(const std::vector<Input>& inputs, const PrepareOptions& o, const std::string& spill_dir,
                 int64_t total, int64_t* runs) {
  SpillingCounter sc(o.level, o.level == TokenLevel::words ? o.count_entries : INT64_MAX, spill_dir);
  int64_t done = 0;
  for (const Input& in : inputs) {
    TextBlockReader blocks(in.path, in.origin, o.read_block);
    std::string_view chunk;
    while (blocks.next(chunk)) {
      count_tokens(sc.counter(), chunk, o.mode, in.origin);
      sc.maybe_spill();
      if (o.progress) o.progress({1, done + blocks.bytes_read(), total});
    }
    done += blocks.bytes_read();
  }
  Vocab v = sc.vocab(o.vocab);
  if (runs) *runs = sc.runs();
  return v;
}

// ---- shards ---------------------------------------------------------------------------------

class ShardWriter {
 public:
  ShardWriter(std::string dir, ShardHeader proto, int64_t shard_tokens)
      : dir_(std::move(dir)), proto_(proto), shard_tokens_(shard_tokens), width_(int(proto.token_bits / 8)) {
    // Reserved whole, so a shard does not take twice its size while the buffer grows.
    payload_.reserve(size_t(kShardHeaderBytes + std::min<int64_t>(shard_tokens, int64_t(1) << 26) * width_));
  }

  std::vector<PreparedShardInfo> shards;
  int64_t tokens = 0, examples = 0;

  void add_stream(const std::vector<int32_t>& ids) {
    size_t i = 0;
    while (i < ids.size()) {
      const size_t room = size_t(shard_tokens_ - in_shard_);
      const size_t n = std::min(room, ids.size() - i);
      append(ids.data() + i, n);
      i += n;
      if (in_shard_ == shard_tokens_) flush();
    }
  }
  void add_example(std::span<const int32_t> ids) {
    append(ids.data(), ids.size());
    offsets_.push_back(uint64_t(in_shard_));
    ++examples;
    if (in_shard_ >= shard_tokens_) flush();
  }
  void finish() {
    if (in_shard_ > 0) flush();
  }

 private:
  void append(const int32_t* ids, size_t n) {
    const size_t at = payload_.size();
    payload_.resize(at + n * size_t(width_));
    unsigned char* p = reinterpret_cast<unsigned char*>(payload_.data() + at);
    for (size_t k = 0; k < n; ++k)
      for (int b = 0; b < width_; ++b) *p++ = static_cast<unsigned char>(uint32_t(ids[k]) >> (8 * b));
    in_shard_ += int64_t(n);
    tokens += int64_t(n);
  }
  // The shard is built in one buffer that starts with room for the header (no second copy).
  void flush() {
    ShardHeader h = proto_;
    h.shard_index = uint32_t(shards.size());
    h.tokens = uint64_t(in_shard_);
    h.examples = proto_.mode == TextMode::lines ? uint64_t(offsets_.size() - 1) : 0;
    payload_.replace(0, size_t(kShardHeaderBytes), shard_header_bytes(h));
    if (proto_.mode == TextMode::lines)
      for (uint64_t off : offsets_) put_le(payload_, off, 8);
    const std::string name = shard_name(int64_t(shards.size()));
    write_file_atomic(join(dir_, name), payload_, "a prepared shard");
    shards.push_back({name, in_shard_, int64_t(h.examples)});
    payload_.assign(size_t(kShardHeaderBytes), '\0');
    offsets_.assign(1, 0);
    in_shard_ = 0;
  }

  std::string dir_;
  ShardHeader proto_;
  int64_t shard_tokens_;
  int width_;
  std::string payload_ = std::string(size_t(kShardHeaderBytes), '\0');
  std::vector<uint64_t> offsets_{0};
  int64_t in_shard_ = 0;
};

void encode_pass(const std::vector<Input>& inputs, const Vocab& vocab, const PrepareOptions& o, int64_t total,
                 ShardWriter& w, PrepareResult& r) {
  int64_t done = 0;
  for (const Input& in : inputs) {
    TextBlockReader blocks(in.path, in.origin, o.read_block);
    std::string_view chunk;
    while (blocks.next(chunk)) {
      r.source_bytes += int64_t(chunk.size());
      if (o.mode == TextMode::stream) {
        w.add_stream(encode_stream(vocab, chunk, &r.oov, in.origin));
      } else {
        const LineExamples ex = encode_lines(vocab, chunk, &r.oov, in.origin);
        for (int64_t i = 0; i < ex.size(); ++i) w.add_example(ex.example(i));
      }
      if (o.progress) o.progress({2, done + blocks.bytes_read(), total});
    }
    done += blocks.bytes_read();
  }
  w.finish();
}

std::string manifest_json(const PreparedManifest& m) {
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (const auto& s : m.shards) shards.push_back({{"file", s.file}, {"tokens", s.tokens}, {"examples", s.examples}});
  nlohmann::ordered_json j = {{"format", "recur.prepared"},
                              {"version", kPreparedVersion},
                              {"level", token_level_name(m.level)},
                              {"mode", text_mode_name(m.mode)},
                              {"token_bits", m.token_bits},
                              {"vocab_size", m.vocab_size},
                              {"vocab_hash", hex64(m.vocab_hash)},
                              {"max_vocab", m.vocab_options.max_vocab},
                              {"min_count", m.vocab_options.min_count},
                              {"tokens", m.tokens},
                              {"examples", m.examples},
                              {"source_bytes", m.source_bytes},
                              {"encoded_tokens", m.oov.tokens},
                              {"unk", m.oov.unk},
                              {"oov", m.oov.oov},
                              {"inputs", m.inputs},
                              {"shards", shards}};
  return j.dump(1) + "\n";
}

// Shards of an earlier prepare into the same folder that the new manifest does not list.
void remove_unlisted_shards(const std::string& dir, int64_t listed) {
  std::error_code ec;
  for (int64_t i = listed;; ++i)
    if (!fs::remove(join(dir, shard_name(i)), ec)) break;
}

}  // namespace

uint64_t vocab_hash(const Vocab& vocab) { return fnv1a(vocab.to_json()); }

std::string vocab_hash_hex(const Vocab& vocab) { return hex64(vocab_hash(vocab)); }

Vocab count_vocabulary(const std::vector<std::string>& inputs, const PrepareOptions& opts, const std::string& spill_dir,
                       int64_t* spilled_runs) {
  check_options(opts);
  std::vector<std::unique_ptr<Spool>> spools;
  const std::vector<Input> in = expand_inputs(inputs, spill_dir, spools);
  return count_pass(in, opts, spill_dir, total_bytes(in), spilled_runs);
}

PrepareResult prepare_corpus(const std::vector<std::string>& inputs, const std::string& out_dir,
                             const PrepareOptions& opts) {
  check_options(opts);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir)) throw Error(out_dir + ": cannot create the output folder: " + ec.message());
  std::vector<std::unique_ptr<Spool>> spools;
  const std::vector<Input> in = expand_inputs(inputs, out_dir, spools);
  const int64_t total = total_bytes(in);
  PrepareResult r;
  if (opts.fixed_vocab && opts.fixed_vocab->level() != opts.level)
    throw Error(std::string("--vocab: a ") + token_level_name(opts.fixed_vocab->level()) + " vocabulary, but --level is " +
                token_level_name(opts.level) + "; expected a vocabulary of the same level");
  const Vocab vocab = opts.fixed_vocab ? *opts.fixed_vocab : count_pass(in, opts, out_dir, total, &r.spilled_runs);
  if (vocab.size() <= Vocab::num_special)
    throw Error(in.front().origin + (in.size() > 1 ? " ..." : "") + ": no tokens; expected text with at least one " +
                (opts.level == TokenLevel::words ? "word" : "character"));
  PreparedManifest m;
  m.level = opts.level;
  m.mode = opts.mode;
  m.token_bits = vocab.size() <= 65536 ? 16 : 32;
  m.vocab_size = vocab.size();
  m.vocab_hash = vocab_hash(vocab);
  m.vocab_options = opts.vocab;
  ShardHeader proto{.token_bits = uint32_t(m.token_bits), .vocab_hash = m.vocab_hash,
                    .vocab_size = uint32_t(vocab.size()), .mode = opts.mode, .level = opts.level};
  ShardWriter w(out_dir, proto, opts.shard_tokens);
  encode_pass(in, vocab, opts, total, w, r);
  m.tokens = w.tokens;
  m.examples = w.examples;
  m.source_bytes = r.source_bytes;
  m.oov = r.oov;
  for (const Input& i : in) m.inputs.push_back(i.origin);
  m.shards = w.shards;
  write_file_atomic(join(out_dir, "vocab.json"), vocab.to_json() + "\n", "the vocabulary");
  write_file_atomic(join(out_dir, "manifest.json"), manifest_json(m), "the manifest");
  remove_unlisted_shards(out_dir, int64_t(m.shards.size()));
  r.tokens = m.tokens;
  r.examples = m.examples;
  r.shards = int64_t(m.shards.size());
  r.vocab_size = vocab.size();
  r.token_bits = m.token_bits;
  return r;
}

// ---- the format -----------------------------------------------------------------------------

std::string shard_header_bytes(const ShardHeader& h) {
  std::string out(kPreparedMagic, 8);
  put_le(out, h.version, 4);
  put_le(out, h.token_bits, 4);
  put_le(out, h.vocab_hash, 8);
  put_le(out, h.vocab_size, 4);
  put_le(out, h.shard_index, 4);
  put_le(out, h.tokens, 8);
  put_le(out, h.examples, 8);
  put_le(out, h.mode == TextMode::lines ? 1 : 0, 4);
  put_le(out, h.level == TokenLevel::words ? 1 : 0, 4);
  put_le(out, 0, 8);  // reserved
  return out;
}

ShardHeader parse_shard_header(std::string_view bytes, int64_t file_bytes, const std::string& o) {
  if (int64_t(bytes.size()) < kShardHeaderBytes || file_bytes < kShardHeaderBytes)
    throw FormatError(o + ": truncated at byte " + std::to_string(std::min<int64_t>(int64_t(bytes.size()), file_bytes)) +
                      "; expected a " + std::to_string(kShardHeaderBytes) + "-byte shard header");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  auto bad = [&](int at, const std::string& what) {
    return FormatError(o + ": byte " + std::to_string(at) + ": " + what);
  };
  if (bytes.substr(0, 8) != std::string_view(kPreparedMagic, 8))
    throw bad(0, "not a prepared shard (magic); expected the bytes \"RECURTOK\" (recur prepare writes them)");
  ShardHeader h;
  h.version = uint32_t(get_le(p + 8, 4));
  if (h.version != kPreparedVersion)
    throw bad(8, "version " + std::to_string(h.version) + "; expected " + std::to_string(kPreparedVersion) +
                     " (prepare the corpus again with this recur)");
  h.token_bits = uint32_t(get_le(p + 12, 4));
  if (h.token_bits != 16 && h.token_bits != 32)
    throw bad(12, "token width " + std::to_string(h.token_bits) + " bits; expected 16 or 32");
  h.vocab_hash = get_le(p + 16, 8);
  h.vocab_size = uint32_t(get_le(p + 24, 4));
  if (h.vocab_size < uint32_t(Vocab::num_special) || (h.token_bits == 16 && h.vocab_size > 65536))
    throw bad(24, "vocabulary size " + std::to_string(h.vocab_size) + "; expected 2 .. " +
                      (h.token_bits == 16 ? "65536 for 16-bit ids" : "2^32 - 1"));
  h.shard_index = uint32_t(get_le(p + 28, 4));
  h.tokens = get_le(p + 32, 8);
  if (h.tokens > uint64_t(kPreparedMaxTokens))
    throw bad(32, "token count " + std::to_string(h.tokens) + "; expected at most 2^48 per shard");
  h.examples = get_le(p + 40, 8);
  const uint32_t mode = uint32_t(get_le(p + 48, 4)), level = uint32_t(get_le(p + 52, 4));
  if (mode > 1) throw bad(48, "mode " + std::to_string(mode) + "; expected 0 (stream) or 1 (lines)");
  if (level > 1) throw bad(52, "level " + std::to_string(level) + "; expected 0 (chars) or 1 (words)");
  h.mode = mode ? TextMode::lines : TextMode::stream;
  h.level = level ? TokenLevel::words : TokenLevel::chars;
  if (get_le(p + 56, 8) != 0) throw bad(56, "reserved bytes are not zero; expected zeros");
  if (h.mode == TextMode::stream ? h.examples != 0 : h.examples > h.tokens)
    throw bad(40, "example count " + std::to_string(h.examples) + "; expected " +
                      (h.mode == TextMode::stream ? std::string("0 in stream mode")
                                                  : "at most the " + std::to_string(h.tokens) + " tokens"));
  // tokens <= 2^48 and examples <= tokens: no product below can overflow.
  const int64_t ids_bytes = int64_t(h.tokens) * int64_t(h.token_bits / 8);
  const int64_t offs_bytes = h.mode == TextMode::lines ? (int64_t(h.examples) + 1) * 8 : 0;
  const int64_t want = kShardHeaderBytes + ids_bytes + offs_bytes;
  const std::string layout = " (header " + std::to_string(kShardHeaderBytes) + " + " + std::to_string(h.tokens) + " ids of " +
                             std::to_string(h.token_bits) + " bits" +
                             (offs_bytes ? " + " + std::to_string(h.examples + 1) + " offsets of 64 bits)" : ")");
  if (file_bytes < want)
    throw FormatError(o + ": truncated at byte " + std::to_string(file_bytes) + "; expected " + std::to_string(want) +
                      " bytes" + layout);
  if (file_bytes > want)
    throw FormatError(o + ": " + std::to_string(file_bytes) + " bytes; expected " + std::to_string(want) + layout +
                      ", not trailing data");
  return h;
}

// ---- the manifest -----------------------------------------------------------------------------

bool is_prepared_corpus(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return fs::is_regular_file(fs::path(path) / "manifest.json", ec);
  return fs::path(path).filename() == "manifest.json" && fs::is_regular_file(path, ec);
}

namespace {

void read_shard_list(JsonFields& f, PreparedManifest& m) {
  const auto& arr = f.raw("shards");
  if (!arr.is_array()) f.fail("shards", "an array of shard objects");
  int64_t sum_tokens = 0, sum_examples = 0;
  for (size_t i = 0; i < arr.size(); ++i) {
    JsonFields s(arr[i], f.where() + ": \"shards\"[" + std::to_string(i) + "]");
    PreparedShardInfo info;
    info.file = s.string("file");
    if (info.file != shard_name(int64_t(i))) s.fail("file", "\"" + shard_name(int64_t(i)) + "\"");
    info.tokens = s.integer("tokens", 1, kPreparedMaxTokens);
    info.examples = s.integer("examples", 0, info.tokens);
    s.finish();
    sum_tokens += info.tokens;  // at most 2^48 each: checked against the total before it can overflow
    sum_examples += info.examples;
    if (sum_tokens > m.tokens) f.fail("tokens", "the sum of the shards' tokens (over " + std::to_string(sum_tokens) + ")");
    m.shards.push_back(info);
  }
  if (sum_tokens != m.tokens) f.fail("tokens", std::to_string(sum_tokens) + ", the sum of the shards' tokens");
  if (sum_examples != m.examples) f.fail("examples", std::to_string(sum_examples) + ", the sum of the shards' examples");
}
}  // namespace

PreparedManifest read_prepared_manifest(const std::string& path) {
  const std::string text = slurp(path, "the manifest");
  JsonFields f(std::string_view(text), path);
  PreparedManifest m;
  if (f.string("format") != "recur.prepared") f.fail("format", "\"recur.prepared\"");
  if (f.integer("version") != kPreparedVersion)
    f.fail("version", std::to_string(kPreparedVersion) + " (prepare the corpus again with this recur)");
  const std::string level = f.string("level"), mode = f.string("mode");
  if (level != "chars" && level != "words") f.fail("level", "\"chars\" or \"words\"");
  if (mode != "stream" && mode != "lines") f.fail("mode", "\"stream\" or \"lines\"");
  m.level = parse_token_level(level);
  m.mode = parse_text_mode(mode);
  m.token_bits = int(f.integer("token_bits", 16, 32));
  if (m.token_bits != 16 && m.token_bits != 32) f.fail("token_bits", "16 or 32");
  m.vocab_size = f.integer("vocab_size", Vocab::num_special + 1, m.token_bits == 16 ? 65536 : int64_t(UINT32_MAX));
  const std::string hash = f.string("vocab_hash");
  char* end = nullptr;
  m.vocab_hash = std::strtoull(hash.c_str(), &end, 16);
  if (hash.size() != 16 || end != hash.c_str() + 16) f.fail("vocab_hash", "16 hex digits");
  m.vocab_options.max_vocab = f.integer("max_vocab", 0);
  if (m.vocab_options.max_vocab == 1 || m.vocab_options.max_vocab == 2) f.fail("max_vocab", "0 or >= 3");
  m.vocab_options.min_count = f.integer("min_count", 1);
  m.tokens = f.integer("tokens", 1);
  m.examples = f.integer("examples", 0, m.tokens);
  if (m.mode == TextMode::stream && m.examples != 0) f.fail("examples", "0 in stream mode");
  m.source_bytes = f.integer("source_bytes", 0);
  if (f.has("encoded_tokens")) {
    m.oov.tokens = f.integer("encoded_tokens", 0);
    m.oov.unk = f.integer("unk", 0, m.oov.tokens);
    m.oov.oov = f.integer("oov", 0, m.oov.unk);
  }
  const auto& inputs = f.raw("inputs");
  if (!inputs.is_array()) f.fail("inputs", "an array of strings");
  for (const auto& s : inputs) {
    if (!s.is_string()) f.fail("inputs", "an array of strings");
    m.inputs.push_back(s.get<std::string>());
  }
  read_shard_list(f, m);
  f.finish();
  return m;
}

// ---- the reader -----------------------------------------------------------------------------

struct PreparedCorpus::Shard {
  std::string path;
  int fd = -1;
  ShardHeader h;
  int64_t ids_at = kShardHeaderBytes, offsets_at = 0;
};

namespace {

using Shards = std::vector<PreparedCorpus::Shard>;

void pread_all(const PreparedCorpus::Shard& s, void* out, int64_t bytes, int64_t at) {
  detail::pread_all(s.fd, s.path, out, bytes, at);
}

// Shard k holds global items [starts[k], starts[k + 1]).
size_t shard_of_item(const std::vector<int64_t>& starts, int64_t i) {
  return size_t(std::upper_bound(starts.begin(), starts.end(), i) - starts.begin()) - 1;
}

class PreparedTokens final : public TokenSource {
 public:
  PreparedTokens(std::shared_ptr<Shards> shards, int64_t vocab_size) : shards_(std::move(shards)), vocab_(vocab_size) {
    starts_.push_back(0);
    for (const auto& s : *shards_) starts_.push_back(starts_.back() + int64_t(s.h.tokens));
  }
  int64_t size() const override { return starts_.back(); }
  void read(int64_t pos, int64_t n, int32_t* out) const override {
    while (n > 0) {
      const size_t k = shard_of_item(starts_, pos);
      const auto& s = (*shards_)[k];
      const int64_t local = pos - starts_[k], take = std::min(n, starts_[k + 1] - pos);
      read_ids(s, local, take, out, vocab_);
      pos += take, n -= take, out += take;
    }
  }

  static void read_ids(const PreparedCorpus::Shard& s, int64_t local, int64_t n, int32_t* out, int64_t vocab) {
    const int w = int(s.h.token_bits / 8);
    thread_local std::vector<unsigned char> buf;
    buf.resize(size_t(n * w));
    pread_all(s, buf.data(), n * w, s.ids_at + local * w);
    for (int64_t k = 0; k < n; ++k) {
      const uint32_t id = uint32_t(get_le(buf.data() + k * w, w));
      if (id >= uint64_t(vocab))
        throw FormatError(s.path + ": byte " + std::to_string(s.ids_at + (local + k) * w) + ": token id " +
                          std::to_string(id) + "; expected an id below the vocabulary size " + std::to_string(vocab));
      out[k] = int32_t(id);
    }
  }

 private:
  std::shared_ptr<Shards> shards_;
  int64_t vocab_;
  std::vector<int64_t> starts_;
};

class PreparedLines final : public LineSource {
 public:
  PreparedLines(std::shared_ptr<Shards> shards, int64_t vocab_size) : shards_(std::move(shards)), vocab_(vocab_size) {
    starts_.push_back(0);
    for (const auto& s : *shards_) starts_.push_back(starts_.back() + int64_t(s.h.examples));
  }
  int64_t size() const override { return starts_.back(); }
  int64_t length(int64_t i) const override {
    const auto [k, begin, end] = locate(i);
    return end - begin;
  }
  void read(int64_t i, int32_t* out) const override {
    const auto [k, begin, end] = locate(i);
    PreparedTokens::read_ids((*shards_)[k], begin, end - begin, out, vocab_);
  }

 private:
  struct Where {
    size_t shard;
    int64_t begin, end;
  };
  // The example's id range in its shard, from the offsets table, checked: offsets increase
  // strictly (every example has a token) and stay within the shard's ids.
  Where locate(int64_t i) const {
    const size_t k = shard_of_item(starts_, i);
    const auto& s = (*shards_)[k];
    const int64_t j = i - starts_[k];
    unsigned char b[16];
    pread_all(s, b, 16, s.offsets_at + j * 8);
    const uint64_t begin = get_le(b, 8), end = get_le(b + 8, 8);
    if (begin >= end || end > s.h.tokens)
      throw FormatError(s.path + ": byte " + std::to_string(s.offsets_at + j * 8) + ": example " + std::to_string(j) +
                        " spans ids " + std::to_string(begin) + ".." + std::to_string(end) +
                        "; expected increasing offsets within the shard's " + std::to_string(s.h.tokens) + " ids");
    return {k, int64_t(begin), int64_t(end)};
  }

  std::shared_ptr<Shards> shards_;
  int64_t vocab_;
  std::vector<int64_t> starts_;
};

}  // namespace

Vocab read_prepared_vocab(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec) || p.filename() == "manifest.json") return PreparedCorpus(path).vocab();
  if (p.filename() != "vocab.json")
    throw Error(path + ": expected a prepared corpus (its folder, manifest.json or vocab.json)");
  const fs::path manifest = p.parent_path().empty() ? fs::path("manifest.json") : p.parent_path() / "manifest.json";
  if (fs::exists(manifest, ec)) return PreparedCorpus(manifest.string()).vocab();
  return Vocab::from_json(slurp(path, "the vocabulary"), path);
}

PreparedCorpus::PreparedCorpus(const std::string& path) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  dir_ = is_dir ? path : fs::path(path).parent_path().string();
  // "corpus/" and "corpus" name the same folder; messages say "corpus/vocab.json" for both.
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (dir_.empty()) dir_ = ".";
  manifest_path_ = is_dir ? join(dir_, "manifest.json") : path;
  m_ = read_prepared_manifest(manifest_path_);
  const std::string vocab_path = join(dir_, "vocab.json");
  vocab_ = Vocab::from_json(slurp(vocab_path, "the vocabulary"), vocab_path);
  if (vocab_hash(vocab_) != m_.vocab_hash || vocab_.size() != m_.vocab_size || vocab_.level() != m_.level)
    throw FormatError(vocab_path + ": vocabulary " + hex64(vocab_hash(vocab_)) + " (" + std::to_string(vocab_.size()) +
                      " " + token_level_name(vocab_.level()) + ") does not match " + manifest_path_ + "'s " +
                      hex64(m_.vocab_hash) + " (" + std::to_string(m_.vocab_size) + " " + token_level_name(m_.level) +
                      "); expected the files of one recur prepare run");
  shards_ = std::shared_ptr<Shards>(new Shards, [](Shards* s) {
    for (auto& sh : *s)
      if (sh.fd >= 0) ::close(sh.fd);
    delete s;
  });
  for (size_t i = 0; i < m_.shards.size(); ++i) {
    Shard sh;
    sh.path = join(dir_, m_.shards[i].file);
    sh.fd = ::open(sh.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (sh.fd < 0) throw FormatError(sh.path + ": cannot open a shard listed in " + manifest_path_ + ": " + std::strerror(errno));
    shards_->push_back(sh);
    Shard& s = shards_->back();
    struct stat st {};
    if (::fstat(s.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw FormatError(s.path + ": expected a regular file");
    std::string head(size_t(std::min<int64_t>(kShardHeaderBytes, st.st_size)), '\0');
    pread_all(s, head.data(), int64_t(head.size()), 0);
    s.h = parse_shard_header(head, st.st_size, s.path);
    auto mismatch = [&](const std::string& what, const std::string& got, const std::string& want) {
      return FormatError(s.path + ": " + what + " " + got + "; expected " + want + " as " + manifest_path_ + " says");
    };
    if (s.h.vocab_hash != m_.vocab_hash)
      throw mismatch("vocabulary", hex64(s.h.vocab_hash), hex64(m_.vocab_hash) + " (" + vocab_path + ")");
    if (s.h.vocab_size != uint64_t(m_.vocab_size))
      throw mismatch("vocabulary size", std::to_string(s.h.vocab_size), std::to_string(m_.vocab_size));
    if (s.h.shard_index != i) throw mismatch("shard index", std::to_string(s.h.shard_index), std::to_string(i));
    if (int(s.h.token_bits) != m_.token_bits)
      throw mismatch("token width", std::to_string(s.h.token_bits), std::to_string(m_.token_bits));
    if (s.h.level != m_.level || s.h.mode != m_.mode)
      throw mismatch("level/mode", std::string(token_level_name(s.h.level)) + "/" + text_mode_name(s.h.mode),
                     std::string(token_level_name(m_.level)) + "/" + text_mode_name(m_.mode));
    if (s.h.tokens != uint64_t(m_.shards[i].tokens) || s.h.examples != uint64_t(m_.shards[i].examples))
      throw mismatch("counts", std::to_string(s.h.tokens) + " ids, " + std::to_string(s.h.examples) + " examples",
                     std::to_string(m_.shards[i].tokens) + " ids, " + std::to_string(m_.shards[i].examples) + " examples");
    s.offsets_at = kShardHeaderBytes + int64_t(s.h.tokens) * (s.h.token_bits / 8);
  }
}

PreparedCorpus::~PreparedCorpus() = default;

std::shared_ptr<const TokenSource> PreparedCorpus::tokens() const {
  if (m_.mode != TextMode::stream)
    throw Error(manifest_path_ + ": prepared for lines mode; expected a corpus prepared with --mode stream");
  return std::make_shared<PreparedTokens>(shards_, m_.vocab_size);
}

std::shared_ptr<const LineSource> PreparedCorpus::lines() const {
  if (m_.mode != TextMode::lines)
    throw Error(manifest_path_ + ": prepared for stream mode; expected a corpus prepared with --mode lines");
  return std::make_shared<PreparedLines>(shards_, m_.vocab_size);
}

}  // namespace recur
