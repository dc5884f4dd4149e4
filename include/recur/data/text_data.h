// recur/data/text_data.h - text file -> token ids -> training batches for language models.
//
// Two ways to turn a corpus into examples (TextMode):
//
//  stream  The whole file is one token sequence, as in char-rnn and PyTorch's
//          word_language_model: words: every line's tokens followed by <eos> (an empty line
//          gives a lone <eos>, like `line.split() + ['<eos>']`); chars: every code point, '\n'
//          included as an ordinary character. The sequence is cut into B parallel streams of
//          N = len / B tokens (the len % B tail tokens are dropped, as `batchify` does); batch k
//          covers stream offsets [kT, kT + T) and its target is the input shifted one step, so
//          the last target of batch k is the first input of batch k + 1 and a hidden state can
//          be carried across batches (truncated BPTT). The last chunk of an epoch is shorter
//          (T' = N - 1 - kT < T) like PyTorch's get_batch, unless StreamOptions::drop_last.
//
//  lines   Each line with at least one token is one example (names, sentences). With <eos>
//          doubling as the start symbol (the dinosaur-names exercise does this with "\n"):
//            input  = <eos> x1 .. xn        target = x1 .. xn <eos>       length = n + 1
//          B examples are padded to the longest, so T = max length in the batch.
//
// Line splitting is on '\n' only (U+0085 and U+2028 are text, see shared/data/README.md); one
// trailing '\r' per line is dropped in lines mode and in word tokens (it is whitespace), but in
// char stream mode '\r' stays a character because that mode keeps the bytes as they are.
//
// Batches are time-major int32 ids [T, B] like every sequence tensor in the project; `lengths`
// is a std::vector<int64_t> because that is what the RNN forward takes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recur/core/random.h"
#include "recur/core/tensor.h"
#include "recur/data/vocab.h"

namespace recur {

enum class TextMode { stream, lines };

const char* text_mode_name(TextMode mode);     // "stream" / "lines"
TextMode parse_text_mode(std::string_view name);  // throws Error on anything else

// Whole file as validated UTF-8; path "-" is standard input, named "<stdin>" in messages (read
// through read_input, recur/core/file_io.h, with the limits below). A leading byte-order mark is dropped (it is an encoding marker,
// not text, and would otherwise become a vocabulary entry). Throws FormatError naming the path:
// missing or unreadable file, a directory, an empty file, invalid UTF-8 (byte offset, line and
// column of the first bad sequence).
// Size limits: a regular file up to kTextFileMaxBytes (a training corpus may legitimately be
// several GB; past this it is certainly a mistake, and it is refused before a byte is read); a
// pipe or socket (process substitution, /dev/stdin) is read up to kTextStreamMaxBytes and refused
// past it, and so is standard input unless it is a regular file. Character and block devices
// (/dev/zero would be read forever) are refused, on stdin too unless it is a terminal. Running
// out of memory while reading is a FormatError naming the file and its size.
inline constexpr int64_t kTextFileMaxBytes = int64_t(64) << 30;
inline constexpr int64_t kTextStreamMaxBytes = int64_t(4) << 30;
std::string read_text_file(const std::string& path);

// A text file read a run of whole lines at a time (the last line of the file may lack its
// '\n'), so a file of any size is read in bounded memory: one block plus the longest line.
// Each run is checked as read_text_file checks the whole (valid UTF-8, the error naming the byte
// offset in the file, the line and column; a leading byte-order mark dropped; an empty file
// refused). `path` "-" reads standard input once; `origin` is the name messages use.
class TextBlockReader {
 public:
  TextBlockReader(const std::string& path, std::string origin, int64_t block = int64_t(4) << 20);
  ~TextBlockReader();
  TextBlockReader(const TextBlockReader&) = delete;
  TextBlockReader& operator=(const TextBlockReader&) = delete;
  // The next run of whole lines in `chunk` (valid until the next call); false at the end.
  bool next(std::string_view& chunk);
  int64_t bytes_read() const { return read_; }
  int64_t lines_before() const { return lines_before_; }  // lines before the current chunk

 private:
  void fill();
  void validate(std::string_view chunk) const;
  std::string origin_;
  size_t block_;
  std::FILE* f_ = nullptr;
  bool owned_ = true;
  std::string buf_;
  size_t used_ = 0;
  int64_t file_pos_ = 0, read_ = 0, lines_ = 0, lines_before_ = 0;
  bool eof_ = false;
};

// Views into `text`, split on '\n'; a final '\n' does not open an extra empty line, and one
// trailing '\r' per line is dropped.
std::vector<std::string_view> split_lines(std::string_view text);

// Adds `text`'s tokens as `mode` frames them (stream chars: '\n' counts as a character; lines
// chars: it does not; words: the same in both modes, <eos> is not counted).
void count_tokens(TokenCounter& counter, std::string_view text, TextMode mode, std::string_view origin = "<text>");
Vocab build_vocab(std::string_view text, TokenLevel level, TextMode mode, const VocabOptions& opts = {},
                  std::string_view origin = "<text>");

// The stream-mode id sequence (see the top of this file).
std::vector<int32_t> encode_stream(const Vocab& vocab, std::string_view text, OovStats* stats = nullptr,
                                   std::string_view origin = "<text>");

// Lines-mode examples, stored back to back so a corpus is two allocations, not one per line.
struct LineExamples {
  std::vector<int32_t> ids;         // every example's tokens, no <eos>
  std::vector<int64_t> offsets{0};  // example i is ids[offsets[i], offsets[i + 1])

  int64_t size() const { return int64_t(offsets.size()) - 1; }
  int64_t length(int64_t i) const { return offsets[size_t(i) + 1] - offsets[size_t(i)]; }
  std::span<const int32_t> example(int64_t i) const {
    return {ids.data() + offsets[size_t(i)], size_t(length(i))};
  }
  void add(std::span<const int32_t> example);
};

// One example per line that has at least one token (words: non-blank; chars: non-empty).
LineExamples encode_lines(const Vocab& vocab, std::string_view text, OovStats* stats = nullptr,
                          std::string_view origin = "<text>");

// Where the batchers read ids from: memory (the vectors above) or a prepared corpus on disk
// (prepared.h), which is read a window at a time so training never holds the whole corpus.
// Both give the same ids in the same order, so a batcher's batches do not depend on which.
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual int64_t size() const = 0;  // tokens
  // Copies ids [pos, pos + n) to `out`; a source on disk throws FormatError for damaged data.
  virtual void read(int64_t pos, int64_t n, int32_t* out) const = 0;
};

class LineSource {
 public:
  virtual ~LineSource() = default;
  virtual int64_t size() const = 0;               // examples
  virtual int64_t length(int64_t i) const = 0;    // tokens of example i, >= 1
  virtual void read(int64_t i, int32_t* out) const = 0;  // its length(i) ids
};

std::shared_ptr<const TokenSource> memory_tokens(std::vector<int32_t> ids);
std::shared_ptr<const LineSource> memory_lines(LineExamples examples);

struct TextBatch {
  Tensor<int32_t> input;         // [T, B]
  Tensor<int32_t> target;        // [T, B]
  std::vector<int64_t> lengths;  // [B]; stream mode: all T
  Tensor<float> mask;            // [T, B]; 1 where t < lengths[b], else 0 (stream: all 1)
  int64_t steps() const { return input.rank() == 2 ? input.dim(0) : 0; }    // T
  int64_t batch() const { return input.rank() == 2 ? input.dim(1) : 0; }    // B
  int64_t tokens() const;  // valid targets, sum of lengths
};

// Columns [begin, end) of a batch (a data-parallel rank's streams or lines): [T, end - begin].
TextBatch batch_columns(const TextBatch& b, int64_t begin, int64_t end);

// ---- stream mode --------------------------------------------------------------------------------

struct StreamOptions {
  int64_t batch_size = 20;  // B, parallel streams
  int64_t seq_len = 35;     // T, BPTT length
  bool drop_last = false;   // skip the shorter last chunk instead of returning it
};

class StreamBatcher {
 public:
  // Position in the data: `offset` is the stream offset the next batch starts at; everything
  // else (the streams themselves) is a pure function of the ids and options, so this is all a
  // checkpoint needs for an exact resume.
  struct State {
    int64_t epoch = 0;
    int64_t offset = 0;
    bool operator==(const State&) const = default;
  };

  // Throws Error when the ids give fewer than 2 tokens per stream.
  StreamBatcher(std::vector<int32_t> ids, const StreamOptions& opts);
  // The same over any source: stream b is ids [b*N, (b+1)*N) of it, read T + 1 at a time.
  StreamBatcher(std::shared_ptr<const TokenSource> ids, const StreamOptions& opts);

  int64_t batch_size() const { return opts_.batch_size; }
  int64_t seq_len() const { return opts_.seq_len; }
  int64_t stream_len() const { return stream_len_; }  // N tokens per stream
  int64_t batches_per_epoch() const;
  int64_t epoch() const { return state_.epoch; }

  // Fills `out` with the next batch and returns true; at the end of an epoch returns false
  // without touching `out` and moves to the start of the next epoch. `out`'s buffers are
  // reused, so a loop that keeps one TextBatch allocates only on its first batch.
  bool next(TextBatch& out);

  State state() const { return state_; }
  void set_state(const State& s);  // throws Error for an offset outside [0, N - 1]
  void reset() { state_ = {}; }
  // {"mode":"stream","epoch":..,"offset":..,"batch_size":..,"stream_len":..}; the sizes are
  // checked on load so a state cannot be resumed against other data or options.
  std::string state_json() const;
  void set_state_json(std::string_view json, std::string_view origin = "stream batcher state");

 private:
  StreamOptions opts_;
  std::shared_ptr<const TokenSource> ids_;  // B streams of N back to back: stream b is [b*N, (b+1)*N)
  int64_t stream_len_ = 0;
  State state_;
  std::vector<int32_t> window_;  // one stream's T + 1 ids of the batch being made
};

// ---- lines mode ---------------------------------------------------------------------------------

struct LinesOptions {
  int64_t batch_size = 32;       // B (the last batch of an epoch may be smaller, see drop_last)
  bool shuffle = true;           // new example order every epoch, drawn from Rng(seed)
  uint64_t seed = 0;
  // 0: no grouping. k > 0: after shuffling, examples are sorted by length inside windows of
  // k * B examples and cut into batches, then the batch order is shuffled - similar lengths
  // share a batch (less padding) while the epoch stays random.
  int64_t bucket_batches = 0;
  bool drop_last = false;        // skip an epoch's one batch with fewer than B examples
  int32_t pad_id = Vocab::eos_id;  // a valid id, so padding never indexes outside an embedding
  // How much of the order is held (shuffle only). 0: the whole epoch is one permutation of all
  // N examples (8 bytes each). W > 0 with W < N: bounded memory for corpora of any size - the
  // examples are cut into windows of W consecutive ones (a prepared corpus's shard order), the
  // windows are visited in a random order and each window in a random order of its own, drawn
  // from the epoch's generator and the window's index, so a resume needs no stored order and
  // memory is 8 * W bytes. -1 (the default): 0 up to kWholeShuffleMaxExamples examples, past it
  // windows of kShuffleWindowExamples. Windows and bucket_batches do not combine (Error).
  int64_t shuffle_window = -1;
};
inline constexpr int64_t kWholeShuffleMaxExamples = int64_t(1) << 24;  // 128 MiB of order
inline constexpr int64_t kShuffleWindowExamples = int64_t(1) << 20;    // 8 MiB of order

class LinesBatcher {
 public:
  // `epoch_rng` is the generator state the current epoch's order was drawn from; redrawing from
  // it reproduces the order, so no permutation needs to be stored.
  struct State {
    int64_t epoch = 0;
    int64_t batch = 0;  // index of the next batch within the epoch
    Rng::State epoch_rng{};
    bool operator==(const State&) const = default;
  };

  // Throws Error when there are no examples or an option is out of range.
  LinesBatcher(LineExamples examples, const LinesOptions& opts);
  // The same over any source (a prepared corpus reads each example from disk when batched).
  LinesBatcher(std::shared_ptr<const LineSource> examples, const LinesOptions& opts);

  int64_t num_examples() const { return examples_->size(); }
  int64_t batches_per_epoch() const { return windowed() ? window_batches_ : int64_t(batches_.size()); }
  int64_t shuffle_window() const { return window_; }  // 0: the whole epoch is one permutation
  int64_t epoch() const { return epoch_; }

  bool next(TextBatch& out);  // as StreamBatcher::next

  State state() const { return {epoch_, batch_, epoch_rng_}; }
  void set_state(const State& s);  // throws Error when s.batch > batches_per_epoch()
  // Generator words are written as 16-digit hex strings: JSON readers other than nlohmann
  // often hold numbers as doubles and would round them.
  std::string state_json() const;
  void set_state_json(std::string_view json, std::string_view origin = "lines batcher state");

 private:
  void plan_epoch();  // draws order_ and batches_ (windowed: window_order_, window_key_) from rng_
  bool windowed() const { return window_ > 0; }
  int64_t example_at(int64_t position);  // windowed: the example at a position of the epoch's order

  std::shared_ptr<const LineSource> examples_;
  LinesOptions opts_;
  Rng rng_;
  Rng::State epoch_rng_{};
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
  std::vector<int64_t> order_;                         // example indices of this epoch
  std::vector<std::pair<int64_t, int64_t>> batches_;   // (start in order_, count)
  std::vector<int32_t> example_;                       // the example being copied into a batch
  // Windowed order (shuffle_window): the windows' visiting order, the epoch's key of the orders
  // inside them, and the order inside the window last used.
  int64_t window_ = 0, window_batches_ = 0;
  std::vector<int64_t> window_order_;  // [N / W rounded up]
  uint64_t window_key_ = 0;
  int64_t partial_slot_ = -1;
  int64_t cached_window_ = -1;
  std::vector<int64_t> window_perm_;   // [W] example indices of window cached_window_
  std::vector<int64_t> batch_idx_;     // [B] the batch being built
};

// ---- held-out split -----------------------------------------------------------------------------

struct HoldoutOptions {
  double fraction = 0.1;   // share of lines that go to validation, in (0, 1)
  uint64_t seed = 0;
  // true: the last lines (char-rnn's split; keeps running text intact for stream mode);
  // false: lines drawn at random with Rng(seed).
  bool contiguous = false;
};

struct TextSplit {
  std::string train;  // selected lines in their original order, each ending in '\n'
  std::string valid;
  int64_t train_lines = 0;
  int64_t valid_lines = 0;
};

// Deterministic for a given text and options. round(fraction * lines) lines, at least 1 and at
// most lines - 1, go to `valid`. Lines are kept byte for byte ('\r' included). Throws Error for
// fewer than 2 lines or a fraction outside (0, 1).
TextSplit holdout_split(std::string_view text, const HoldoutOptions& opts = {});

}  // namespace recur
