// fuzz/targets.cpp - the entry functions of fuzz/targets.h. Each keeps its call into recur in
// one small function, so a renamed reader is a one-line change here.
#include "targets.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/error.h"
#include "recur/core/file_io.h"
#include "recur/core/safetensors.h"
#include "recur/data/prepared.h"
#include "recur/tasks/prepared_task.h"
#include "recur/data/task_data.h"
#include "recur/data/text_data.h"
#include "recur/data/utf8.h"
#include "recur/data/vocab.h"
#include "recur/model/model.h"
#include "recur/music/jsb_chorales.h"
#include "recur/music/midi.h"
#include "recur/music/music_corpus.h"
#include "recur/tasks/tasks.h"
#include "recur/tasks/trainer.h"
#include "recur/train/checkpoint.h"
#include "recur/train/model_file.h"

namespace recur::fuzz {

namespace {

// Every reader is linear in its input; inputs above this are skipped so a replayed regression
// file or a long libFuzzer run cannot turn a slow-but-correct read into a timeout.
constexpr size_t kMaxInput = size_t(1) << 20;

// A finding that is not a crash: a reader broke one of its own promises (a round trip).
[[noreturn]] void broken(const std::string& what) { throw std::logic_error("fuzz invariant: " + what); }

// The scratch file for readers that take a path. /dev/shm (tmpfs) when it exists, so the
// atomic writer's fsync costs nothing per input; the pid keeps parallel jobs apart.
class ScratchFile {
 public:
  ScratchFile(std::string_view bytes, std::string_view extension) {
    const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::getenv("TMPDIR");
    path_ = std::string(base ? base : "/tmp") + "/recur-fuzz-" + std::to_string(::getpid()) + std::string(extension);
    write_file_atomic(path_, bytes);
  }
  ~ScratchFile() { std::remove(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `fn` and swallows recur::Error, the documented answer to bad input; everything else
// propagates (libFuzzer then reports an uncaught exception, the replay test a failure).
template <typename Fn>
int expect_error_or_success(const uint8_t* data, size_t size, Fn&& fn) {
  if (size > kMaxInput) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // RECUR_FUZZ_VERBOSE=1 prints each refusal: how to check that a seed reaches deep code.
  static const bool verbose = std::getenv("RECUR_FUZZ_VERBOSE") != nullptr;
  try {
    fn(bytes);
    if (verbose) std::fprintf(stderr, "fuzz: accepted\n");
  } catch (const Error& e) {
    if (verbose) std::fprintf(stderr, "fuzz: refused: %s\n", e.what());
  }
  return 0;
}

// A scratch folder (for readers of several files), next to where ScratchFile puts its file.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::getenv("TMPDIR");
    path_ = std::string(base ? base : "/tmp") + "/recur-fuzz-dir-" + std::to_string(::getpid());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- the readers, one call each ----

void read_safetensors(std::string_view bytes) {
  const SafetensorsReader r = SafetensorsReader::from_bytes(std::string(bytes), "fuzz.safetensors");
  for (const std::string& name : r.names()) {
    // Each tensor in every type: a dtype mismatch is an Error, a bad offset must be one too.
    try { (void)r.get<float>(name); } catch (const Error&) {}
    try { (void)r.get<double>(name); } catch (const Error&) {}
    try { (void)r.get_int(name); } catch (const Error&) {}
  }
}

void read_lm_checkpoint(const std::string& path) { (void)load_checkpoint(path); }
void read_task_checkpoint(const std::string& path) { (void)load_task_checkpoint(path); }
void read_model_file(const std::string& path) { (void)load_model_file(path); }

void read_vocab(std::string_view bytes) {
  const Vocab v = Vocab::from_json(bytes, "fuzz vocab");
  if (!(Vocab::from_json(v.to_json(), "fuzz vocab (written back)") == v)) broken("vocabulary JSON round trip differs");
  const std::vector<int32_t> ids = v.tokenize("the cat sat\non the mat");
  (void)v.detokenize(ids);
}

void read_text(const std::string& path) {
  const std::string text = read_text_file(path);
  if (utf8_encode(utf8_decode(text, "fuzz text")) != text) broken("UTF-8 decode/encode round trip differs");
  for (TokenLevel level : {TokenLevel::chars, TokenLevel::words}) {
    const Vocab stream_vocab = build_vocab(text, level, TextMode::stream, {}, path);
    (void)encode_stream(stream_vocab, text, nullptr, path);
    const Vocab lines_vocab = build_vocab(text, level, TextMode::lines, {}, path);
    (void)encode_lines(lines_vocab, text, nullptr, path);
  }
  (void)holdout_split(text, {});
}

TaskSpec task_spec(TaskKind kind, bool features) {
  TaskSpec spec;
  spec.kind = kind;
  spec.features = features;
  return spec;
}

void read_task(const TaskSpec& spec, const std::string& path, bool with_targets) {
  (void)read_task_file(spec, path, with_targets);
}

void read_word_vectors(const std::string& path) {
  const Vocab vocab = Vocab::from_tokens(TokenLevel::words, {"the", "cat", "sat", "on", "mat", "a", "dog"});
  const int64_t D = word_vectors_dim(path);
  Tensor<float> weight(Shape{vocab.size(), D});  // [V, D]
  (void)load_word_vectors(path, vocab, weight);
}

void read_midi(std::string_view bytes) {
  const Performance p = parse_midi(std::string(bytes), "fuzz.mid");
  (void)seconds_to_beats(p, p.end_time);
}

void read_jsb(const std::string& path) {
  (void)read_jsb_chorales(path);
  JsbOptions sixteenth;
  sixteenth.steps_per_quarter = 4;
  sixteenth.merge_repeats = false;
  (void)read_jsb_chorales(path, sixteenth);
}

// A batcher over fixed small data, so a state is checked against known sizes; an accepted
// state must then give a batch.
void read_stream_state(std::string_view json) {
  std::vector<int32_t> ids(97);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(2 + i % 5);
  StreamBatcher b(std::move(ids), StreamOptions{.batch_size = 3, .seq_len = 5, .drop_last = false});
  b.set_state_json(json, "fuzz stream state");
  TextBatch batch;
  (void)b.next(batch);
}

void read_lines_state(std::string_view json) {
  LineExamples ex;
  for (int32_t n = 1; n <= 9; ++n) {
    const std::vector<int32_t> line(size_t(n), 2 + n % 3);
    ex.add(line);
  }
  LinesBatcher b(std::move(ex), LinesOptions{.batch_size = 2, .shuffle = true, .seed = 7});
  b.set_state_json(json, "fuzz lines state");
  TextBatch batch;
  (void)b.next(batch);
}

// A prepared-corpus shard (data/prepared.h). The bytes are the shard; the vocabulary hash,
// size and shard index in its header are set to those of a fixed vocabulary of the header's level first (a
// fuzzer cannot guess a 64-bit hash), and the manifest is written from the header, so the
// checks past them - counts, truncation, ids, offsets - are reached. Every id and example of an
// accepted shard is then read.
void read_prepared_shard(std::string_view in) {
  std::string bytes(in);
  const bool words = bytes.size() >= 56 && bytes[52] == 1;
  const Vocab vocab = words ? Vocab::from_tokens(TokenLevel::words, {"the", "cat", "sat"})
                            : Vocab::from_tokens(TokenLevel::chars, {"a", "b", "\n"});
  const uint64_t hash = vocab_hash(vocab);
  for (int i = 0; i < 8 && 16 + i < int(bytes.size()); ++i) bytes[size_t(16 + i)] = char(hash >> (8 * i));
  for (int i = 0; i < 4 && 24 + i < int(bytes.size()); ++i) bytes[size_t(24 + i)] = char(uint64_t(vocab.size()) >> (8 * i));
  for (int i = 0; i < 4 && 28 + i < int(bytes.size()); ++i) bytes[size_t(28 + i)] = 0;  // the only shard: index 0
  const ShardHeader h = parse_shard_header(bytes, int64_t(bytes.size()), "fuzz shard");
  const ScratchDir dir;
  write_file_atomic(dir.file("vocab.json"), vocab.to_json());
  write_file_atomic(dir.file("shard-00000.bin"), bytes);
  char manifest[1024];
  std::snprintf(manifest, sizeof manifest,
                "{\"format\":\"recur.prepared\",\"version\":1,\"level\":\"%s\",\"mode\":\"%s\",\"token_bits\":%u,"
                "\"vocab_size\":%lld,\"vocab_hash\":\"%016llx\",\"max_vocab\":0,\"min_count\":1,\"tokens\":%llu,"
                "\"examples\":%llu,\"source_bytes\":0,\"inputs\":[],\"shards\":[{\"file\":\"shard-00000.bin\","
                "\"tokens\":%llu,\"examples\":%llu}]}",
                token_level_name(h.level), text_mode_name(h.mode), unsigned(h.token_bits), (long long)vocab.size(),
                (unsigned long long)hash, (unsigned long long)h.tokens, (unsigned long long)h.examples,
                (unsigned long long)h.tokens, (unsigned long long)h.examples);
  write_file_atomic(dir.file("manifest.json"), manifest);
  const PreparedCorpus c(dir.path());
  std::vector<int32_t> ids;
  if (h.mode == TextMode::stream) {
    const auto src = c.tokens();
    ids.resize(size_t(src->size()));
    src->read(0, src->size(), ids.data());
  } else {
    const auto src = c.lines();
    for (int64_t i = 0; i < src->size(); ++i) {
      ids.resize(size_t(src->length(i)));
      src->read(i, ids.data());
    }
  }
  for (int32_t id : ids)
    if (id < 0 || id >= vocab.size()) broken("a prepared shard gave an id outside its vocabulary");
}

// A prepared task-corpus shard (tasks/prepared_task.h). The bytes are the shard; its task code
// is taken modulo 3 and its tables hash and sizes are set to those of fixed tables (a fuzzer
// cannot guess a 64-bit hash), and the manifest is written from the header, so the checks past
// them - counts, file size, offsets, records, ids, labels - are reached. Every example of an
// accepted shard is then read.
void read_prepared_task_shard(std::string_view in) {
  std::string bytes(in);
  const char* kinds[] = {"classify", "tag", "seq2seq"};
  const int kind = bytes.size() > 12 ? uint8_t(bytes[12]) % 3 : 0;
  if (bytes.size() > 15) bytes[12] = char(kind), bytes[13] = bytes[14] = bytes[15] = 0;
  const std::string tables =
      "{\"format\":\"recur.task-tables\",\"version\":1,\"inputs\":[[\"the\",2],[\"cat\",2],[\"sat\",1]],"
      "\"outputs\":[[\"O\",2],[\"B-X\",1],[\"I-X\",1]],\"labels\":[[\"pos\",1],[\"neg\",1]]}";
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a 64 of tables.json without its newline, from the task
                                           // format's basis (prepared_task.cpp tables_hash)
  for (unsigned char c : tables) hash = (hash ^ c) * 1099511628211ULL;
  auto put = [&](size_t at, uint64_t v, int n) {
    for (int i = 0; i < n && at + size_t(i) < bytes.size(); ++i) bytes[at + size_t(i)] = char(v >> (8 * i));
  };
  put(16, hash, 8);
  put(24, 3, 4);
  put(28, 3, 4);
  put(32, 2, 4);
  put(36, 0, 4);  // the only shard
  auto get = [&](size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | (at + size_t(i) < bytes.size() ? uint8_t(bytes[at + size_t(i)]) : 0);
    return v;
  };
  const ScratchDir dir;
  write_file_atomic(dir.file("tables.json"), tables + "\n");
  write_file_atomic(dir.file("shard-00000.bin"), bytes);
  char manifest[1024];
  std::snprintf(manifest, sizeof manifest,
                "{\"format\":\"recur.prepared-task\",\"version\":1,\"task\":\"%s\",\"lowercase\":true,"
                "\"token_column\":0,\"tag_column\":-1,\"text_column\":0,\"label_column\":-1,\"header\":-1,"
                "\"delimiter\":\"\",\"tag_scheme\":\"none\",\"examples\":%llu,\"ids\":%llu,\"source_bytes\":1,"
                "\"inputs\":3,\"outputs\":3,\"labels\":2,\"tables_hash\":\"%016llx\",\"input\":\"fuzz\","
                "\"shards\":[{\"file\":\"shard-00000.bin\",\"examples\":%llu,\"ids\":%llu}]}",
                kinds[kind], (unsigned long long)get(40), (unsigned long long)get(48), (unsigned long long)hash,
                (unsigned long long)get(40), (unsigned long long)get(48));
  write_file_atomic(dir.file("manifest.json"), manifest);
  const PreparedTaskCorpus c(dir.path());
  for (int64_t i = 0; i < c.size(); ++i) {
    const RawExample e = c.read(i);
    if (e.input.empty() || int64_t(std::max(e.input.size(), e.output.size())) != c.length(i))
      broken("a prepared task shard gave an example that does not match its length");
  }
}

// The JSON configuration readers; the first byte picks one, the rest is the JSON text.
void read_json_config(std::string_view bytes) {
  if (bytes.empty()) return;
  const std::string_view json = bytes.substr(1);
  switch (uint8_t(bytes[0]) % 7) {
    case 0: (void)model_spec_from_json(json, "fuzz model"); break;
    case 1: (void)lm_spec_from_json(json, "fuzz lm spec"); break;
    case 2: (void)train_options_from_json(json, "fuzz train options"); break;
    case 3: (void)train_progress_from_json(json, "fuzz train state"); break;
    case 4: read_stream_state(json); break;
    case 5: read_lines_state(json); break;
    case 6: (void)music_task_from_json(json, "fuzz music task"); break;
  }
}

}  // namespace

int fuzz_safetensors(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, read_safetensors);
}

int fuzz_checkpoint(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) { read_lm_checkpoint(ScratchFile(b, ".safetensors").path()); });
}

int fuzz_task_checkpoint(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) { read_task_checkpoint(ScratchFile(b, ".safetensors").path()); });
}

int fuzz_model_file(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) { read_model_file(ScratchFile(b, ".safetensors").path()); });
}

int fuzz_vocab(const uint8_t* data, size_t size) { return expect_error_or_success(data, size, read_vocab); }

int fuzz_text(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) { read_text(ScratchFile(b, ".txt").path()); });
}

// Tagging files with and without the tag column (training and tagging new text).
int fuzz_conll(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) {
    const ScratchFile f(b, ".conll");
    try { read_task(task_spec(TaskKind::tag, false), f.path(), true); } catch (const Error&) {}
    read_task(task_spec(TaskKind::tag, false), f.path(), false);
  });
}

// Classification tables: the same bytes as TSV and as CSV (quoted fields), with and without labels.
int fuzz_table(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) {
    for (const char* ext : {".tsv", ".csv"}) {
      const ScratchFile f(b, ext);
      try { read_task(task_spec(TaskKind::classify, false), f.path(), true); } catch (const Error&) {}
      try { read_task(task_spec(TaskKind::classify, false), f.path(), false); } catch (const Error&) {}
    }
  });
}

int fuzz_pairs(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) {
    const ScratchFile f(b, ".tsv");
    try { read_task(task_spec(TaskKind::seq2seq, false), f.path(), true); } catch (const Error&) {}
    read_task(task_spec(TaskKind::seq2seq, false), f.path(), false);
  });
}

int fuzz_generate(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) {
    read_task(task_spec(TaskKind::generate, false), ScratchFile(b, ".tsv").path(), true);
  });
}

// Feature CSVs as each task kind reads them: per-row labels (classify, tag) and target text (seq2seq).
int fuzz_features(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) {
    const ScratchFile f(b, ".csv");
    for (TaskKind kind : {TaskKind::classify, TaskKind::tag, TaskKind::seq2seq})
      for (bool with_targets : {true, false}) try {
          read_task(task_spec(kind, true), f.path(), with_targets);
        } catch (const Error&) {
        }
  });
}

int fuzz_word_vectors(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) { read_word_vectors(ScratchFile(b, ".txt").path()); });
}

int fuzz_midi(const uint8_t* data, size_t size) { return expect_error_or_success(data, size, read_midi); }

int fuzz_jsb(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) { read_jsb(ScratchFile(b, ".json").path()); });
}

int fuzz_json_config(const uint8_t* data, size_t size) { return expect_error_or_success(data, size, read_json_config); }

int fuzz_prepared(const uint8_t* data, size_t size) { return expect_error_or_success(data, size, read_prepared_shard); }

int fuzz_prepared_task(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, read_prepared_task_shard);
}

int fuzz_prepared_manifest(const uint8_t* data, size_t size) {
  return expect_error_or_success(data, size, [](std::string_view b) {
    (void)read_prepared_manifest(ScratchFile(b, "-manifest.json").path());
  });
}

std::span<const FuzzTarget> fuzz_targets() {
  static constexpr FuzzTarget kTargets[] = {
      {"safetensors", fuzz_safetensors}, {"checkpoint", fuzz_checkpoint},
      {"task_checkpoint", fuzz_task_checkpoint}, {"model_file", fuzz_model_file},
      {"vocab", fuzz_vocab}, {"text", fuzz_text},
      {"conll", fuzz_conll}, {"table", fuzz_table},
      {"pairs", fuzz_pairs}, {"generate", fuzz_generate},
      {"features", fuzz_features}, {"word_vectors", fuzz_word_vectors},
      {"midi", fuzz_midi}, {"jsb", fuzz_jsb},
      {"json_config", fuzz_json_config}, {"prepared", fuzz_prepared},
      {"prepared_manifest", fuzz_prepared_manifest}, {"prepared_task", fuzz_prepared_task},
  };
  return kTargets;
}

}  // namespace recur::fuzz
