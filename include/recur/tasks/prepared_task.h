// recur/tasks/prepared_task.h - a task file (CoNLL tags, a TSV/CSV table of labelled texts, or
// source<TAB>target pairs) read and split into words once ("recur prepare --task"), and read back
// an example at a time by training, so a task corpus larger than memory can be trained on and no
// run, resume or rank re-reads and re-splits the text. The format is in docs/data.md:
//
//   DIR/manifest.json     what the corpus is: the task and the columns it was read with, the tag
//                         scheme detected, counts, the tables' hash, the shards
//   DIR/tables.json       the distinct input words, output tokens (tags or target words) and
//                         class labels, each with its count, in order of first appearance
//   DIR/shard-NNNNN.bin   a 64-byte little-endian header, the examples' 32-bit ids, their
//                         offsets (64 bits each) and lengths (32 bits each)
//
// An example is stored as table ids of the strings read_task_file gives, so the vocabularies a
// fresh model builds from the tables' counts, and every batch, are the ones the text path gives:
// training on a prepared task corpus logs bit-identical losses (tests/test_prepared_task.cpp).
//
// A prepared task corpus is untrusted input: the manifest's every field, each shard's header
// against the manifest and the file size, and each example's offsets, ids and lengths as it is
// read are checked; each error is one line naming the file and the byte offset.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "recur/data/prepared.h"
#include "recur/tasks/tasks.h"

namespace recur {

inline constexpr char kTaskShardMagic[9] = "RECURTSK";  // the first 8 bytes of every task shard
inline constexpr uint32_t kPreparedTaskVersion = 1;
inline constexpr int64_t kTaskShardHeaderBytes = 64;
inline constexpr int64_t kTaskShardMaxIds = int64_t(1) << 40;  // per shard; past it a count is damage
inline constexpr uint32_t kNoLabel = 0xFFFFFFFFu;              // an example without a class label

struct TaskPrepareOptions {
  int64_t shard_ids = int64_t(1) << 26;    // ids per shard (a shard ends after the example that reaches it)
  int64_t read_block = int64_t(4) << 20;   // bytes of whole lines read at a time
  std::function<void(const PrepareProgress&)> progress;  // pass 1 only (one pass), after each block
};

struct TaskPrepareResult {
  int64_t source_bytes = 0;  // bytes read (a byte-order mark included)
  int64_t examples = 0, ids = 0, shards = 0;
  int64_t inputs = 0, outputs = 0, labels = 0;  // distinct strings in each table
  TagScheme tag_scheme = TagScheme::none;       // tag: the scheme detected over every sentence
};

// Reads the task file `input` (a regular file, or "-" for standard input, read once) a block of
// whole lines at a time, as read_task_file(task, input, true) reads it - the same examples,
// line numbers and messages - and writes the corpus into out_dir (created; an earlier corpus
// there is replaced). task.kind is tag, classify or seq2seq on token input; numeric features and
// generate are refused with an Error naming why. Memory: one block, one shard being written
// and the tables (the distinct strings of the file, as a vocabulary holds them).
TaskPrepareResult prepare_task_corpus(const TaskSpec& task, const std::string& input, const std::string& out_dir,
                                      const TaskPrepareOptions& opts = {});

// True when `path` is a folder holding a manifest.json of format "recur.prepared-task", or that
// file itself.
bool is_prepared_task_corpus(const std::string& path);

struct PreparedTaskShardInfo {
  std::string file;
  int64_t examples = 0, ids = 0;
};

struct PreparedTaskManifest {
  TaskSpec task;  // kind, lowercase, the CoNLL / table columns and header it was read with
  TagScheme tag_scheme = TagScheme::none;  // tag: detected over every sentence (informative)
  int64_t examples = 0, ids = 0, source_bytes = 0;
  int64_t inputs = 0, outputs = 0, labels = 0;  // table sizes
  uint64_t tables_hash = 0;  // FNV-1a 64 of tables.json's bytes
  std::string input;         // the file it was prepared from, as given
  std::vector<PreparedTaskShardInfo> shards;
};
// Throws FormatError "<path>: \"<field>\": got ..., expected ..." for a damaged manifest.
PreparedTaskManifest read_prepared_task_manifest(const std::string& path);

// One table: the distinct strings in order of first appearance and how often each occurred.
struct TaskTable {
  std::vector<std::string> strings;
  std::vector<int64_t> counts;
};

// An opened prepared task corpus. Holds the tables and 4 bytes per example (its length, for
// batching by length); an example is read with two preads when asked for.
class PreparedTaskCorpus {
 public:
  explicit PreparedTaskCorpus(const std::string& path);  // the folder or its manifest.json
  ~PreparedTaskCorpus();
  PreparedTaskCorpus(const PreparedTaskCorpus&) = delete;
  PreparedTaskCorpus& operator=(const PreparedTaskCorpus&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& manifest_path() const { return manifest_path_; }
  const PreparedTaskManifest& manifest() const { return m_; }
  const TaskTable& inputs() const { return inputs_; }    // words
  const TaskTable& outputs() const { return outputs_; }  // tags (tag) or target words (seq2seq)
  const TaskTable& labels() const { return labels_; }    // classes (classify)

  int64_t size() const { return m_.examples; }
  // max(input words, output tokens) of example i: what training sorts batches by.
  int64_t length(int64_t i) const { return int64_t(lengths_[size_t(i)]); }

  // Example i as read_task_file gives it for training: input words, output tokens, label and
  // line (no line texts, no source/target texts: those are for prediction and scoring).
  RawExample read(int64_t i) const;

  struct Shard;  // one open file (prepared_task.cpp)

 private:
  std::string dir_, manifest_path_;
  PreparedTaskManifest m_;
  TaskTable inputs_, outputs_, labels_;
  std::vector<uint32_t> lengths_;  // [examples]
  std::vector<int64_t> starts_;    // [shards + 1] first example of each shard
  std::shared_ptr<std::vector<Shard>> shards_;
};

}  // namespace recur
