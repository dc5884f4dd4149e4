// Prepared task corpora (prepared_task.h, docs/data.md): the writer (one streaming pass over the
// task file: read records, give every distinct string an id, write shards) and the reader (pread
// of one example at a time).
#include "recur/tasks/prepared_task.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "json_fields.h"
#include "shard_io.h"
#include "recur/core/file_io.h"
#include "recur/data/text_data.h"
#include "task_records.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

using detail::fnv1a;
using detail::get_le;
using detail::hex64;
using detail::put_le;
using detail::shard_name;
using detail::slurp;

constexpr const char* kManifestFormat = "recur.prepared-task";
constexpr const char* kTablesFormat = "recur.task-tables";
constexpr int64_t kRecordHead = 5;  // line (2 words), inputs T, outputs O, label

// The task tables' hash: FNV-1a from 1469598103934665603, the standard basis with its last
// digit lost when the format was written; kept, since the corpora already prepared carry it.
uint64_t tables_hash(std::string_view tables) { return fnv1a(tables, 1469598103934665603ULL); }
std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

uint32_t kind_code(TaskKind k) {
  switch (k) {
    case TaskKind::classify: return 0;
    case TaskKind::tag: return 1;
    case TaskKind::seq2seq: return 2;
    case TaskKind::generate: break;
  }
  throw Error("internal: no prepared code for task generate");
}

// A table being built: string -> id in order of first appearance, with counts.
class TableBuilder {
 public:
  uint32_t add(const std::string& s) {
    auto [it, fresh] = ids_.try_emplace(s, uint32_t(t.strings.size()));
    if (fresh) {
      if (t.strings.size() >= size_t(kNoLabel)) throw Error("prepare: more than 2^32 - 1 distinct strings in one table");
      t.strings.push_back(s);
      t.counts.push_back(0);
    }
    ++t.counts[it->second];
    return it->second;
  }
  TaskTable t;

 private:
  std::unordered_map<std::string, uint32_t> ids_;
};

nlohmann::ordered_json table_json(const TaskTable& t) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (size_t i = 0; i < t.strings.size(); ++i) a.push_back({t.strings[i], t.counts[i]});
  return a;
}

struct ShardHead {
  uint32_t kind = 0;
  uint64_t tables_hash = 0;
  uint32_t inputs = 0, outputs = 0, labels = 0, index = 0;
  uint64_t examples = 0, ids = 0;
};

std::string head_bytes(const ShardHead& h) {
  std::string b(kTaskShardMagic, 8);
  put_le(b, kPreparedTaskVersion, 4);
  put_le(b, h.kind, 4);
  put_le(b, h.tables_hash, 8);
  put_le(b, h.inputs, 4);
  put_le(b, h.outputs, 4);
  put_le(b, h.labels, 4);
  put_le(b, h.index, 4);
  put_le(b, h.examples, 8);
  put_le(b, h.ids, 8);
  put_le(b, 0, 8);
  return b;
}

// Header 64, ids x 4, offsets (M + 1) x 8, lengths M x 4; the counts are bounded first.
int64_t shard_bytes(uint64_t examples, uint64_t ids) {
  return kTaskShardHeaderBytes + int64_t(ids) * 4 + (int64_t(examples) + 1) * 8 + int64_t(examples) * 4;
}

// The shards, written as examples come: one shard's bytes in memory at a time. The header needs
// the tables' hash, known only at the end, so each shard goes to a temporary file with room for
// its header, which finish() writes in place before the file is fsynced and renamed.
class TaskShardWriter {
 public:
  TaskShardWriter(std::string dir, int64_t shard_ids) : dir_(std::move(dir)), shard_ids_(shard_ids) {
    // Reserved whole (pages are touched only as written), so the buffer never holds a shard twice
    // while it grows.
    bytes_.reserve(size_t(kTaskShardHeaderBytes + std::min<int64_t>(shard_ids, int64_t(1) << 26) * 4 + 64));
  }
  ~TaskShardWriter() {
    for (const std::string& t : temps_) ::unlink(t.c_str());  // a prepare that failed half-way
  }
  std::vector<PreparedTaskShardInfo> shards;
  int64_t ids = 0, examples = 0;

  void add(const std::vector<uint32_t>& record, uint32_t length) {
    for (uint32_t v : record) put_le(bytes_, v, 4);
    in_shard_ += int64_t(record.size());
    offsets_.push_back(uint64_t(in_shard_));
    lengths_.push_back(length);
    ids += int64_t(record.size());
    ++examples;
    if (in_shard_ >= shard_ids_) flush();
  }
  void finish(const ShardHead& proto) {
    if (in_shard_ > 0) flush();
    for (size_t i = 0; i < shards.size(); ++i) {
      ShardHead h = proto;
      h.index = uint32_t(i);
      h.examples = uint64_t(shards[i].examples);
      h.ids = uint64_t(shards[i].ids);
      const std::string head = head_bytes(h), path = join(dir_, shards[i].file);
      const int fd = ::open(temps_[i].c_str(), O_WRONLY | O_CLOEXEC);
      const bool ok = fd >= 0 && ::pwrite(fd, head.data(), head.size(), 0) == ssize_t(head.size());
      const int err = errno;
      if (fd >= 0 && ::close(fd) != 0 && ok) throw Error(path + ": cannot write a prepared task shard: " + std::strerror(errno));
      if (!ok) throw Error(path + ": cannot write a prepared task shard: " + std::strerror(err));
      commit_temporary(temps_[i], path, "a prepared task shard");
      temps_[i].clear();
    }
    temps_.clear();
  }

 private:
  void flush() {
    for (uint64_t off : offsets_) put_le(bytes_, off, 8);
    for (uint32_t len : lengths_) put_le(bytes_, len, 4);
    const std::string name = shard_name(int64_t(shards.size()));
    const std::string path = join(dir_, name);
    temps_.push_back(temporary_path(path));
    std::FILE* f = std::fopen(temps_.back().c_str(), "wb");
    bool ok = f && std::fwrite(bytes_.data(), 1, bytes_.size(), f) == bytes_.size() && std::fflush(f) == 0;
    const int err = errno;
    if (f && std::fclose(f) != 0) ok = false;
    if (!ok) throw Error(path + ": cannot write a prepared task shard: " + std::strerror(err ? err : errno));
    shards.push_back({name, int64_t(lengths_.size()), in_shard_});
    bytes_.assign(size_t(kTaskShardHeaderBytes), '\0');  // keeps the capacity
    offsets_.assign(1, 0);
    lengths_.clear();
    in_shard_ = 0;
  }

  std::string dir_;
  int64_t shard_ids_;
  std::string bytes_ = std::string(size_t(kTaskShardHeaderBytes), '\0');  // header room, then the ids
  std::vector<uint64_t> offsets_{0};
  std::vector<uint32_t> lengths_;
  int64_t in_shard_ = 0;
  std::vector<std::string> temps_;  // [shards] written, waiting for their headers
};

TagScheme stronger(TagScheme a, TagScheme b) {
  // detect_tag_scheme over many sentences is the strongest evidence of any one of them:
  // none (a tag that is no chunk tag) > bioes (E-/S-) > iob1 (a chunk opened by I-) > bio.
  auto rank = [](TagScheme s) { return s == TagScheme::none ? 3 : s == TagScheme::bioes ? 2 : s == TagScheme::iob1 ? 1 : 0; };
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace

TaskPrepareResult prepare_task_corpus(const TaskSpec& task, const std::string& input, const std::string& out_dir,
                                      const TaskPrepareOptions& opts) {
  if (task.features) throw Error("prepare --task: numeric feature files (--features) are read whole by recur train; not prepared");
  if (task.kind == TaskKind::generate) throw Error("prepare --task generate: not prepared; recur train reads its texts whole");
  if (opts.shard_ids < 1) throw Error("--shard-tokens: got " + std::to_string(opts.shard_ids) + ", expected at least 1");
  const std::string origin = input_name(input);
  int64_t total = -1;  // unknown for standard input and pipes
  if (input != "-") {
    std::error_code ec;
    const auto st = fs::status(input, ec);
    if (st.type() == fs::file_type::regular) total = int64_t(fs::file_size(input, ec));
    if (st.type() == fs::file_type::not_found) throw FormatError(input + ": no such file; expected a task file");
    if (st.type() != fs::file_type::regular && st.type() != fs::file_type::fifo)
      throw FormatError(input + ": not a regular file; expected a task file (CoNLL, TSV/CSV or pairs)");
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir, ec)) throw Error(out_dir + ": cannot create the corpus folder: " + ec.message());
  // An earlier corpus here stops being one before anything is replaced.
  fs::remove(join(out_dir, "manifest.json"), ec);

  TableBuilder inputs, outputs, labels;
  TaskShardWriter writer(out_dir, opts.shard_ids);
  TagScheme scheme = TagScheme::bio;
  std::vector<uint32_t> record;
  const auto add = [&](RawExample&& e) {
    record.assign(kRecordHead, 0);
    record[0] = uint32_t(uint64_t(e.line) & 0xFFFFFFFFu);
    record[1] = uint32_t(uint64_t(e.line) >> 32);
    record[2] = uint32_t(e.input.size());
    record[3] = uint32_t(e.output.size());
    record[4] = task.kind == TaskKind::classify ? labels.add(e.label) : kNoLabel;
    for (const auto& w : e.input) record.push_back(inputs.add(w));
    for (const auto& w : e.output) record.push_back(outputs.add(w));
    if (task.kind == TaskKind::tag) scheme = stronger(scheme, detect_tag_scheme({e.output}));
    writer.add(record, uint32_t(std::max(e.input.size(), e.output.size())));
  };

  TextBlockReader blocks(input, origin, opts.read_block);
  ConllOptions co = task.conll;
  co.require_tags = true;
  TableOptions to = task.table;
  to.require_labels = true;
  ConllStream conll(origin, co);
  TableStream table(origin, to);
  PairStream pairs(origin, true);
  std::vector<TaggedSentence> sentences;
  std::vector<LabelledText> rows;
  std::vector<TextPair> pair_list;
  TaskSpec plain = task;  // the file's own tags: nothing converted when preparing
  plain.file_scheme = plain.train_scheme = TagScheme::none;
  const auto drain = [&] {
    for (auto& s : sentences) add(raw_example_of(plain, std::move(s)));
    for (auto& r : rows) add(raw_example_of(plain, std::move(r), origin));
    for (auto& p : pair_list) add(raw_example_of(plain, std::move(p), origin));
    sentences.clear();
    rows.clear();
    pair_list.clear();
  };
  std::string_view chunk;
  while (blocks.next(chunk)) {
    switch (task.kind) {
      case TaskKind::tag: conll.feed(chunk, sentences); break;
      case TaskKind::classify: table.feed(chunk, rows); break;
      default: pairs.feed(chunk, pair_list); break;
    }
    drain();
    if (opts.progress) opts.progress({.pass = 1, .bytes_done = blocks.bytes_read(), .bytes_total = total});
  }
  switch (task.kind) {
    case TaskKind::tag: conll.finish(sentences); break;
    case TaskKind::classify: table.finish(rows); break;
    default: pairs.finish(); break;
  }
  drain();

  nlohmann::ordered_json tj = {{"format", kTablesFormat},
                               {"version", kPreparedTaskVersion},
                               {"inputs", table_json(inputs.t)},
                               {"outputs", table_json(outputs.t)},
                               {"labels", table_json(labels.t)}};
  const std::string tables = tj.dump();
  ShardHead proto{.kind = kind_code(task.kind), .tables_hash = tables_hash(tables), .inputs = uint32_t(inputs.t.strings.size()),
                  .outputs = uint32_t(outputs.t.strings.size()), .labels = uint32_t(labels.t.strings.size())};
  writer.finish(proto);
  write_file_atomic(join(out_dir, "tables.json"), tables + "\n", "the task tables");
  // Shards of an earlier, longer corpus in the same folder are no longer listed: removed.
  for (int64_t i = int64_t(writer.shards.size());; ++i) {
    if (!fs::remove(join(out_dir, shard_name(i)), ec)) break;
  }

  TaskPrepareResult r;
  r.source_bytes = blocks.bytes_read();
  r.examples = writer.examples;
  r.ids = writer.ids;
  r.shards = int64_t(writer.shards.size());
  r.inputs = int64_t(inputs.t.strings.size());
  r.outputs = int64_t(outputs.t.strings.size());
  r.labels = int64_t(labels.t.strings.size());
  r.tag_scheme = task.kind == TaskKind::tag ? scheme : TagScheme::none;
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (const auto& s : writer.shards) shards.push_back({{"file", s.file}, {"examples", s.examples}, {"ids", s.ids}});
  nlohmann::ordered_json m = {{"format", kManifestFormat},
                              {"version", kPreparedTaskVersion},
                              {"task", task_kind_name(task.kind)},
                              {"lowercase", task.lowercase},
                              {"token_column", task.conll.token_column},
                              {"tag_column", task.conll.tag_column},
                              {"text_column", task.table.text_column},
                              {"label_column", task.table.label_column},
                              {"header", task.table.header},
                              {"delimiter", std::string(task.table.delimiter ? 1 : 0, task.table.delimiter)},
                              {"tag_scheme", tag_scheme_name(r.tag_scheme)},
                              {"examples", r.examples},
                              {"ids", r.ids},
                              {"source_bytes", r.source_bytes},
                              {"inputs", r.inputs},
                              {"outputs", r.outputs},
                              {"labels", r.labels},
                              {"tables_hash", hex64(proto.tables_hash)},
                              {"input", input},
                              {"shards", shards}};
  write_file_atomic(join(out_dir, "manifest.json"), m.dump(1) + "\n", "the manifest");
  return r;
}

bool is_prepared_task_corpus(const std::string& path) {
  std::error_code ec;
  const std::string manifest = fs::is_directory(path, ec) ? join(path, "manifest.json") : path;
  if (fs::path(manifest).filename() != "manifest.json" || !fs::is_regular_file(manifest, ec)) return false;
  std::ifstream in(manifest, std::ios::binary);
  std::string head(512, '\0');
  in.read(head.data(), std::streamsize(head.size()));
  head.resize(size_t(in.gcount()));
  return head.find(std::string("\"") + kManifestFormat + "\"") != std::string::npos;
}

PreparedTaskManifest read_prepared_task_manifest(const std::string& path) {
  const std::string text = slurp(path, "the manifest");
  JsonFields f(std::string_view(text), path);
  PreparedTaskManifest m;
  if (f.string("format") != kManifestFormat) f.fail("format", std::string("\"") + kManifestFormat + "\"");
  if (f.integer("version") != kPreparedTaskVersion)
    f.fail("version", std::to_string(kPreparedTaskVersion) + " (prepare the corpus again with this recur)");
  const std::string kind = f.string("task");
  if (kind != "tag" && kind != "classify" && kind != "seq2seq") f.fail("task", "\"tag\", \"classify\" or \"seq2seq\"");
  m.task.kind = parse_task_kind(kind);
  m.task.lowercase = f.boolean("lowercase");
  m.task.conll.token_column = f.integer("token_column", 0, 1 << 20);
  m.task.conll.tag_column = f.integer("tag_column", -1, 1 << 20);
  m.task.table.text_column = f.integer("text_column", 0, 1 << 20);
  m.task.table.label_column = f.integer("label_column", -1, 1 << 20);
  m.task.table.header = int(f.integer("header", -1, 1));
  const std::string delim = f.string("delimiter");
  if (delim.size() > 1) f.fail("delimiter", "\"\" (by the file name) or one character");
  m.task.table.delimiter = delim.empty() ? char(0) : delim[0];
  const std::string scheme = f.string("tag_scheme");
  if (scheme != "none" && scheme != "iob1" && scheme != "bio" && scheme != "bioes")
    f.fail("tag_scheme", "\"none\", \"iob1\", \"bio\" or \"bioes\"");
  m.tag_scheme = parse_tag_scheme(scheme);
  m.examples = f.integer("examples", 1);
  m.ids = f.integer("ids", kRecordHead);
  m.source_bytes = f.integer("source_bytes", 1);
  m.inputs = f.integer("inputs", 0, int64_t(kNoLabel) - 1);
  m.outputs = f.integer("outputs", 0, int64_t(kNoLabel) - 1);
  m.labels = f.integer("labels", 0, int64_t(kNoLabel) - 1);
  const std::string hash = f.string("tables_hash");
  char* end = nullptr;
  m.tables_hash = std::strtoull(hash.c_str(), &end, 16);
  if (hash.size() != 16 || end != hash.c_str() + 16) f.fail("tables_hash", "16 hex digits");
  m.input = f.string("input");
  const auto& arr = f.raw("shards");
  if (!arr.is_array() || arr.empty()) f.fail("shards", "a non-empty array");
  int64_t examples = 0, ids = 0;
  for (size_t i = 0; i < arr.size(); ++i) {
    JsonFields s(arr[i], f.where() + ": \"shards\"[" + std::to_string(i) + "]");
    PreparedTaskShardInfo info;
    info.file = s.string("file");
    if (info.file != shard_name(int64_t(i))) s.fail("file", "\"" + shard_name(int64_t(i)) + "\"");
    info.ids = s.integer("ids", kRecordHead, kTaskShardMaxIds);
    info.examples = s.integer("examples", 1, info.ids / kRecordHead);
    s.finish();
    examples += info.examples;
    ids += info.ids;
    m.shards.push_back(info);
  }
  if (examples != m.examples) f.fail("examples", "the sum over the shards, " + std::to_string(examples));
  if (ids != m.ids) f.fail("ids", "the sum over the shards, " + std::to_string(ids));
  f.finish();
  return m;
}

struct PreparedTaskCorpus::Shard {
  std::string path;
  int fd = -1;
  int64_t examples = 0, ids = 0;
  int64_t offsets_at = 0;
};

namespace {

void pread_all(const PreparedTaskCorpus::Shard& s, void* out, int64_t bytes, int64_t at) {
  detail::pread_all(s.fd, s.path, out, bytes, at);
}

TaskTable read_table(JsonFields& f, const char* name, int64_t expect) {
  const auto& arr = f.raw(name);
  if (!arr.is_array()) f.fail(name, "an array of [string, count] pairs");
  if (int64_t(arr.size()) != expect)
    throw FormatError(f.where() + ": \"" + name + "\": " + std::to_string(arr.size()) + " entries; expected " +
                      std::to_string(expect) + " as the manifest says");
  TaskTable t;
  t.strings.reserve(arr.size());
  t.counts.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto& e = arr[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number_integer() || e[1].get<int64_t>() < 1)
      throw FormatError(f.where() + ": \"" + name + "\"[" + std::to_string(i) + "]: expected [string, count >= 1]");
    t.strings.push_back(e[0].get<std::string>());
    t.counts.push_back(e[1].get<int64_t>());
  }
  return t;
}

}  // namespace

PreparedTaskCorpus::PreparedTaskCorpus(const std::string& path) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  dir_ = is_dir ? path : fs::path(path).parent_path().string();
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (dir_.empty()) dir_ = ".";
  manifest_path_ = is_dir ? join(dir_, "manifest.json") : path;
  m_ = read_prepared_task_manifest(manifest_path_);
  const std::string tables_path = join(dir_, "tables.json");
  std::string tables = slurp(tables_path, "the task tables");
  if (!tables.empty() && tables.back() == '\n') tables.pop_back();
  if (tables_hash(tables) != m_.tables_hash)
    throw FormatError(tables_path + ": tables " + hex64(tables_hash(tables)) + " do not match " + manifest_path_ + "'s " +
                      hex64(m_.tables_hash) + "; expected the files of one recur prepare run");
  {
    JsonFields f(std::string_view(tables), tables_path);
    if (f.string("format") != kTablesFormat) f.fail("format", std::string("\"") + kTablesFormat + "\"");
    if (f.integer("version") != kPreparedTaskVersion) f.fail("version", std::to_string(kPreparedTaskVersion));
    inputs_ = read_table(f, "inputs", m_.inputs);
    outputs_ = read_table(f, "outputs", m_.outputs);
    labels_ = read_table(f, "labels", m_.labels);
    f.finish();
  }
  shards_ = std::shared_ptr<std::vector<Shard>>(new std::vector<Shard>, [](std::vector<Shard>* s) {
    for (auto& sh : *s)
      if (sh.fd >= 0) ::close(sh.fd);
    delete s;
  });
  // Nothing is reserved from the manifest's counts: they are bounded only by each shard's file
  // size, checked below, and the lengths grow as they are read from checked files.
  starts_.push_back(0);
  for (size_t i = 0; i < m_.shards.size(); ++i) {
    Shard sh;
    sh.path = join(dir_, m_.shards[i].file);
    sh.fd = ::open(sh.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (sh.fd < 0) throw FormatError(sh.path + ": cannot open a shard listed in " + manifest_path_ + ": " + std::strerror(errno));
    shards_->push_back(sh);
    Shard& s = shards_->back();
    struct stat st {};
    if (::fstat(s.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw FormatError(s.path + ": expected a regular file");
    unsigned char h[kTaskShardHeaderBytes] = {};
    if (st.st_size < kTaskShardHeaderBytes)
      throw FormatError(s.path + ": truncated at byte " + std::to_string(st.st_size) + "; expected a " +
                        std::to_string(kTaskShardHeaderBytes) + "-byte header");
    pread_all(s, h, kTaskShardHeaderBytes, 0);
    auto bad = [&](int at, const std::string& what, uint64_t got, const std::string& want) {
      return FormatError(s.path + ": byte " + std::to_string(at) + ": " + what + " " + std::to_string(got) + "; expected " +
                         want);
    };
    if (std::memcmp(h, kTaskShardMagic, 8) != 0)
      throw FormatError(s.path + ": byte 0: not a recur task shard; expected the magic RECURTSK");
    if (get_le(h + 8, 4) != kPreparedTaskVersion)
      throw bad(8, "version", get_le(h + 8, 4), std::to_string(kPreparedTaskVersion) + " (prepare the corpus again)");
    if (get_le(h + 12, 4) != kind_code(m_.task.kind))
      throw bad(12, "task code", get_le(h + 12, 4), std::to_string(kind_code(m_.task.kind)) + " (" +
                                                        task_kind_name(m_.task.kind) + ", as the manifest says)");
    if (get_le(h + 16, 8) != m_.tables_hash)
      throw FormatError(s.path + ": byte 16: tables " + hex64(get_le(h + 16, 8)) + "; expected " + hex64(m_.tables_hash) +
                        " as " + manifest_path_ + " says");
    if (get_le(h + 24, 4) != uint64_t(m_.inputs) || get_le(h + 28, 4) != uint64_t(m_.outputs) ||
        get_le(h + 32, 4) != uint64_t(m_.labels))
      throw FormatError(s.path + ": byte 24: table sizes " + std::to_string(get_le(h + 24, 4)) + "/" +
                        std::to_string(get_le(h + 28, 4)) + "/" + std::to_string(get_le(h + 32, 4)) + "; expected " +
                        std::to_string(m_.inputs) + "/" + std::to_string(m_.outputs) + "/" + std::to_string(m_.labels) +
                        " as the manifest says");
    if (get_le(h + 36, 4) != i) throw bad(36, "shard index", get_le(h + 36, 4), std::to_string(i));
    const uint64_t M = get_le(h + 40, 8), N = get_le(h + 48, 8);
    if (M != uint64_t(m_.shards[i].examples)) throw bad(40, "examples", M, std::to_string(m_.shards[i].examples) + " as the manifest says");
    if (N != uint64_t(m_.shards[i].ids)) throw bad(48, "ids", N, std::to_string(m_.shards[i].ids) + " as the manifest says");
    if (get_le(h + 56, 8) != 0) throw bad(56, "reserved", get_le(h + 56, 8), "0");
    // M and N are bounded by the manifest's checks (N <= 2^40, M <= N / 5): no product overflows.
    const int64_t want = shard_bytes(M, N);
    if (st.st_size != want)
      throw FormatError(s.path + ": " + (st.st_size < want ? "truncated at byte " : "longer than expected: ") +
                        std::to_string(st.st_size) + "; expected " + std::to_string(want) + " bytes (header 64 + " +
                        std::to_string(N) + " ids of 32 bits + " + std::to_string(M + 1) + " offsets of 64 bits + " +
                        std::to_string(M) + " lengths of 32 bits)");
    s.examples = int64_t(M);
    s.ids = int64_t(N);
    s.offsets_at = kTaskShardHeaderBytes + int64_t(N) * 4;
    // The lengths, read in pieces so that memory stays at 4 bytes per example.
    const int64_t lengths_at = s.offsets_at + (int64_t(M) + 1) * 8;
    std::vector<unsigned char> buf;
    for (int64_t done = 0; done < int64_t(M);) {
      const int64_t n = std::min<int64_t>(int64_t(M) - done, 1 << 20);
      buf.resize(size_t(n) * 4);
      pread_all(s, buf.data(), n * 4, lengths_at + done * 4);
      for (int64_t k = 0; k < n; ++k) lengths_.push_back(uint32_t(get_le(buf.data() + 4 * k, 4)));
      done += n;
    }
    unsigned char ends[8];
    pread_all(s, ends, 8, s.offsets_at);
    if (get_le(ends, 8) != 0) throw bad(int(s.offsets_at), "first offset", get_le(ends, 8), "0");
    pread_all(s, ends, 8, s.offsets_at + int64_t(M) * 8);
    if (get_le(ends, 8) != N)
      throw FormatError(s.path + ": byte " + std::to_string(s.offsets_at + int64_t(M) * 8) + ": last offset " +
                        std::to_string(get_le(ends, 8)) + "; expected the shard's " + std::to_string(N) + " ids");
    starts_.push_back(starts_.back() + int64_t(M));
  }
}

PreparedTaskCorpus::~PreparedTaskCorpus() = default;

RawExample PreparedTaskCorpus::read(int64_t i) const {
  if (i < 0 || i >= m_.examples)
    throw Error("internal: example " + std::to_string(i) + " of a corpus of " + std::to_string(m_.examples));
  const size_t k = size_t(std::upper_bound(starts_.begin(), starts_.end(), i) - starts_.begin() - 1);
  const Shard& s = (*shards_)[k];
  const int64_t local = i - starts_[k];
  unsigned char ob[16];
  const int64_t off_at = s.offsets_at + local * 8;
  pread_all(s, ob, 16, off_at);
  const uint64_t a = get_le(ob, 8), b = get_le(ob + 8, 8);
  if (b <= a || b > uint64_t(s.ids) || b - a < uint64_t(kRecordHead))
    throw FormatError(s.path + ": byte " + std::to_string(off_at) + ": example " + std::to_string(local) + " spans ids [" +
                      std::to_string(a) + ", " + std::to_string(b) + "); expected at least " +
                      std::to_string(kRecordHead) + " ids, increasing, within the shard's " + std::to_string(s.ids));
  const int64_t n = int64_t(b - a);
  std::vector<unsigned char> buf(size_t(n) * 4);
  const int64_t rec_at = kTaskShardHeaderBytes + int64_t(a) * 4;
  pread_all(s, buf.data(), n * 4, rec_at);
  auto id = [&](int64_t j) { return uint32_t(get_le(buf.data() + 4 * j, 4)); };
  const uint64_t T = id(2), O = id(3);
  auto fail = [&](int64_t j, const std::string& what) {
    return FormatError(s.path + ": byte " + std::to_string(rec_at + 4 * j) + ": example " + std::to_string(local) + ": " + what);
  };
  if (uint64_t(kRecordHead) + T + O != uint64_t(n))
    throw fail(2, std::to_string(T) + " inputs and " + std::to_string(O) + " outputs; expected " +
                      std::to_string(n - kRecordHead) + " in all (the record's size)");
  if (T == 0) throw fail(2, "no input words; expected at least one");
  if (std::max(T, O) != lengths_[size_t(i)])
    throw fail(2, "length " + std::to_string(std::max(T, O)) + "; the shard's length table says " +
                      std::to_string(lengths_[size_t(i)]));
  RawExample e;
  e.line = int64_t(uint64_t(id(0)) | (uint64_t(id(1)) << 32));
  const uint32_t label = id(4);
  if (m_.task.kind == TaskKind::classify) {
    if (label >= labels_.strings.size())
      throw fail(4, "label " + std::to_string(label) + "; expected below the " + std::to_string(labels_.strings.size()) + " labels");
    e.label = labels_.strings[label];
  } else if (label != kNoLabel) {
    throw fail(4, "label " + std::to_string(label) + "; expected none (" + std::to_string(kNoLabel) + ") for " +
                      task_kind_name(m_.task.kind));
  }
  if (m_.task.kind == TaskKind::tag && O != T) throw fail(3, std::to_string(O) + " tags for " + std::to_string(T) + " words; expected one per word");
  if (m_.task.kind == TaskKind::classify && O != 0) throw fail(3, std::to_string(O) + " outputs; expected none for classify");
  if (m_.task.kind == TaskKind::seq2seq && O == 0) throw fail(3, "no target words; expected at least one");
  e.input.reserve(size_t(T));
  for (uint64_t j = 0; j < T; ++j) {
    const uint32_t w = id(kRecordHead + int64_t(j));
    if (w >= inputs_.strings.size())
      throw fail(kRecordHead + int64_t(j), "word id " + std::to_string(w) + "; expected below the " +
                                               std::to_string(inputs_.strings.size()) + " input words");
    e.input.push_back(inputs_.strings[w]);
  }
  for (uint64_t j = 0; j < O; ++j) {
    const int64_t at = kRecordHead + int64_t(T + j);
    const uint32_t w = id(at);
    if (w >= outputs_.strings.size())
      throw fail(at, "output id " + std::to_string(w) + "; expected below the " + std::to_string(outputs_.strings.size()) +
                         " output tokens");
    e.output.push_back(outputs_.strings[w]);
  }
  return e;
}

}  // namespace recur
