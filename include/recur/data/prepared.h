// recur/data/prepared.h - a text corpus tokenised once ("recur prepare") and read back a window
// at a time by training, so a corpus larger than memory can be trained on and no run re-reads
// and re-tokenises the text. The format is documented in docs/data.md:
//
//   DIR/manifest.json       what the corpus is: level, mode, vocabulary hash, counts, shards
//   DIR/vocab.json          the vocabulary (Vocab::to_json)
//   DIR/shard-NNNNN.bin     a 64-byte little-endian header, the token ids (16 or 32 bits each)
//                           and, in lines mode, the example offsets (64 bits each)
//
// The ids are exactly those the text path makes (encode_stream / encode_lines on the whole text,
// with build_vocab's vocabulary), so training on a prepared corpus gives bit-identical batches.
// Every file is written atomically and the manifest last: a folder without a manifest is not a
// corpus, and a prepare that stops half-way leaves the previous manifest's corpus readable or
// refused with a named mismatch, never silently mixed.
//
// A prepared corpus is untrusted input: every header field, count and offset is checked, ids are
// checked against the vocabulary as they are read, and each error is one line naming the file
// and the byte offset.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "recur/data/text_data.h"
#include "recur/data/vocab.h"

namespace recur {

inline constexpr char kPreparedMagic[9] = "RECURTOK";  // the first 8 bytes of every shard
inline constexpr uint32_t kPreparedVersion = 1;
inline constexpr int64_t kShardHeaderBytes = 64;
inline constexpr int64_t kPreparedMaxTokens = int64_t(1) << 48;  // per shard; past it a count is damage

struct PrepareProgress {
  int pass = 1;               // 1: counting the vocabulary, 2: writing the shards
  int64_t bytes_done = 0;     // of this pass
  int64_t bytes_total = -1;   // -1 when unknown (standard input)
};

struct PrepareOptions {
  TokenLevel level = TokenLevel::chars;
  TextMode mode = TextMode::stream;
  VocabOptions vocab;                        // --max-vocab, --min-count, as `recur train` takes them
  int64_t shard_tokens = int64_t(1) << 26;   // ids per shard (lines: a shard ends after the example that reaches it)
  // Word counting holds at most this many distinct words in memory; past it the counts are
  // written to a sorted run file in the output folder and merged at the end, so the vocabulary
  // is exact (the same as Vocab::build on all counts) with memory bounded by about 100 bytes
  // per entry (more for words over 15 bytes). Characters need no bound (at most 1.1M code points).
  int64_t count_entries = int64_t(8) << 20;
  int64_t read_block = int64_t(4) << 20;     // bytes read at a time (a longer line is held whole)
  // A vocabulary to encode with instead of counting one (--vocab): validation and test text
  // prepared with the training corpus's vocabulary, so their ids mean the same tokens. Its level
  // must be `level`; vocab (max/min count) is then ignored. Null: count the inputs (pass 1).
  std::shared_ptr<const Vocab> fixed_vocab;
  std::function<void(const PrepareProgress&)> progress;  // called after each block
};

struct PrepareResult {
  int64_t source_bytes = 0;  // text bytes read (byte-order marks not counted), one pass
  int64_t tokens = 0;        // ids in all shards
  int64_t examples = 0;      // lines mode: examples; stream: 0
  int64_t shards = 0;
  int64_t vocab_size = 0;
  int token_bits = 16;
  int64_t spilled_runs = 0;  // word-count run files written (0: the counts fitted)
  OovStats oov;
};

// Reads `inputs` (files, folders - their regular files, recursively, in byte order of the path,
// leaving out anything inside out_dir, so a corpus prepared into a folder of its own input is
// not read back into itself -
// or "-" for standard input, which is spooled to a temporary file in out_dir for the second
// pass) and writes the prepared corpus into out_dir (created if missing). Each file is read as
// `recur train` reads one text: valid UTF-8, a leading byte-order mark dropped, not empty; words
// and lines end at the end of each file. Throws FormatError naming the file for bad input and
// Error for bad options or a failed write.
PrepareResult prepare_corpus(const std::vector<std::string>& inputs, const std::string& out_dir,
                             const PrepareOptions& opts);

// The vocabulary of `inputs` with bounded memory (prepare_corpus's first pass): equal to
// build_vocab on the concatenated text. Exposed so the bound can be tested.
Vocab count_vocabulary(const std::vector<std::string>& inputs, const PrepareOptions& opts, const std::string& spill_dir,
                       int64_t* spilled_runs = nullptr);

// The vocabulary of a prepared corpus given as its folder, its manifest.json or its vocab.json
// (recur prepare --vocab): checked against the manifest's hash where there is one.
Vocab read_prepared_vocab(const std::string& path);

// FNV-1a 64 of vocab.to_json(): the vocabulary hash in the manifest and every shard header.
uint64_t vocab_hash(const Vocab& vocab);
std::string vocab_hash_hex(const Vocab& vocab);  // as the manifest writes it: 16 hex digits

// True when `path` is a prepared corpus: a folder holding manifest.json, or that file itself.
bool is_prepared_corpus(const std::string& path);

// The manifest's description of one shard and of the whole corpus.
struct PreparedShardInfo {
  std::string file;  // name inside the folder
  int64_t tokens = 0;
  int64_t examples = 0;
};

struct PreparedManifest {
  TokenLevel level = TokenLevel::chars;
  TextMode mode = TextMode::stream;
  int token_bits = 16;
  int64_t vocab_size = 0;
  uint64_t vocab_hash = 0;
  VocabOptions vocab_options;
  int64_t tokens = 0, examples = 0, source_bytes = 0;
  // The encoding's <unk> counts (what `recur eval` reports for text); absent in corpora
  // prepared before they were recorded, which read as zeros.
  OovStats oov;
  std::vector<std::string> inputs;
  std::vector<PreparedShardInfo> shards;
};

// Throws FormatError "<path>: <field>: got ..., expected ..." for a damaged manifest.
PreparedManifest read_prepared_manifest(const std::string& path);

// A shard header as stored; parse_shard_header checks what one header alone can tell (magic,
// version, width, level, mode, reserved bytes) and that `file_bytes` is exactly the size the
// counts give, naming `origin` and the byte offset of the first bad field.
struct ShardHeader {
  uint32_t version = kPreparedVersion;
  uint32_t token_bits = 16;
  uint64_t vocab_hash = 0;
  uint32_t vocab_size = 0;
  uint32_t shard_index = 0;
  uint64_t tokens = 0;
  uint64_t examples = 0;
  TextMode mode = TextMode::stream;
  TokenLevel level = TokenLevel::chars;
};
std::string shard_header_bytes(const ShardHeader& h);
ShardHeader parse_shard_header(std::string_view bytes, int64_t file_bytes, const std::string& origin);

// An opened prepared corpus: the manifest, the vocabulary (its hash checked against the
// manifest) and every shard's header (checked against both and against the file size). Ids and
// offsets are read on demand with pread, a batch's window at a time; an id outside the
// vocabulary or an offset out of order is a FormatError naming the shard and byte offset.
class PreparedCorpus {
 public:
  // `path`: the folder or its manifest.json.
  explicit PreparedCorpus(const std::string& path);
  ~PreparedCorpus();
  PreparedCorpus(const PreparedCorpus&) = delete;
  PreparedCorpus& operator=(const PreparedCorpus&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& manifest_path() const { return manifest_path_; }
  const PreparedManifest& manifest() const { return m_; }
  const Vocab& vocab() const { return vocab_; }

  // The stream-mode ids (manifest mode stream) or the lines-mode examples (mode lines); each
  // throws Error naming the manifest when the corpus was prepared for the other mode.
  std::shared_ptr<const TokenSource> tokens() const;
  std::shared_ptr<const LineSource> lines() const;

  struct Shard;  // one open file (prepared.cpp)

 private:
  std::string dir_, manifest_path_;
  PreparedManifest m_;
  Vocab vocab_;
  std::shared_ptr<std::vector<Shard>> shards_;
};

}  // namespace recur
