#include "recur/data/text_data.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "json_parse.h"
#include "recur/core/file_io.h"
#include "recur/data/utf8.h"

namespace recur {

const char* text_mode_name(TextMode mode) { return mode == TextMode::stream ? "stream" : "lines"; }

TextMode parse_text_mode(std::string_view name) {
  if (name == "stream") return TextMode::stream;
  if (name == "lines") return TextMode::lines;
  throw Error("text mode: got \"" + std::string(name) + "\", expected \"stream\" or \"lines\"");
}

std::string read_text_file(const std::string& path) {
  // The bytes through the one input reader (core/file_io.h): "-" is standard input, and the same
  // limits hold for a file, a pipe and stdin.
  std::string text = read_input(path, {.file_max_bytes = kTextFileMaxBytes, .stream_max_bytes = kTextStreamMaxBytes,
                                       .expected = "a UTF-8 text file"});
  const std::string name = input_name(path);
  if (text.empty()) throw FormatError(name + ": file is empty; expected UTF-8 text");
  // Offsets in the error must be file offsets, so validate before dropping the mark.
  utf8_validate(text, name);
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  return text;
}

TextBlockReader::TextBlockReader(const std::string& path, std::string origin, int64_t block)
    : origin_(std::move(origin)), block_(size_t(std::max<int64_t>(block, 1))) {
  if (path == "-") {
    f_ = stdin;
    owned_ = false;
    return;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw FormatError(origin_ + ": is a folder; expected a UTF-8 text file");
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) throw FormatError(origin_ + ": cannot open: " + std::strerror(errno));
}

TextBlockReader::~TextBlockReader() {
  if (f_ && owned_) std::fclose(f_);
}

bool TextBlockReader::next(std::string_view& chunk) {
  buf_.erase(0, used_);
  file_pos_ += int64_t(used_);
  used_ = 0;
  lines_before_ = lines_;
  size_t scanned = 0;  // the bytes before it hold no '\n' (the rest of a line)
  while (true) {
    const size_t nl = std::string_view(buf_).substr(scanned).rfind('\n');
    if (nl != std::string_view::npos) {
      used_ = scanned + nl + 1;
      break;
    }
    if (eof_) {
      if (buf_.empty()) {
        if (read_ == 0) throw FormatError(origin_ + ": file is empty; expected UTF-8 text");
        return false;
      }
      used_ = buf_.size();
      break;
    }
    scanned = buf_.size();
    fill();
  }
  chunk = std::string_view(buf_).substr(0, used_);
  validate(chunk);
  lines_ += std::count(chunk.begin(), chunk.end(), '\n');
  if (file_pos_ == 0 && chunk.substr(0, 3) == "\xEF\xBB\xBF") chunk.remove_prefix(3);
  return true;
}

void TextBlockReader::fill() {
  const size_t old = buf_.size();
  buf_.resize(old + block_);
  const size_t n = std::fread(buf_.data() + old, 1, block_, f_);
  buf_.resize(old + n);
  read_ += int64_t(n);
  if (n < block_) {
    if (std::ferror(f_)) throw FormatError(origin_ + ": read error: " + std::strerror(errno));
    eof_ = true;
  }
}

// utf8_error_message's wording, with offsets in the whole file rather than the block.
void TextBlockReader::validate(std::string_view chunk) const {
  const char* reason = nullptr;
  const size_t bad = utf8_find_invalid(chunk, &reason);
  if (bad == std::string_view::npos) return;
  // A chunk starts at a line start, so the column is exact too.
  const size_t line_start = bad == 0 ? std::string_view::npos : chunk.rfind('\n', bad - 1);
  const int64_t line = lines_ + 1 + std::count(chunk.begin(), chunk.begin() + std::ptrdiff_t(bad), '\n');
  const int64_t column = line_start == std::string_view::npos ? int64_t(bad) + 1 : int64_t(bad - line_start);
  char byte_hex[8];
  std::snprintf(byte_hex, sizeof byte_hex, "0x%02X", unsigned(static_cast<unsigned char>(chunk[bad])));
  throw FormatError(origin_ + ": invalid UTF-8 at byte " + std::to_string(file_pos_ + int64_t(bad)) + " (line " +
                    std::to_string(line) + ", column " + std::to_string(column) + ", byte " + byte_hex + "): " +
                    (reason ? reason : "invalid sequence"));
}

namespace {
// Lines split on '\n'; a final '\n' ends the last line rather than opening an empty one.
template <typename Fn>
void for_each_raw_line(std::string_view text, Fn&& fn) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    fn(text.substr(start, end - start), start);
    start = end + 1;
  }
}

std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Char tokenizing of a line reports offsets within the line; validating first makes the error
// name the byte offset in the whole file instead.
void validate_line(std::string_view text, std::string_view line, size_t line_start, std::string_view origin) {
  const char* reason = nullptr;
  const size_t bad = utf8_find_invalid(line, &reason);
  if (bad != std::string_view::npos) throw FormatError(utf8_error_message(origin, text, line_start + bad, reason));
}
}  // namespace

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for_each_raw_line(text, [&](std::string_view line, size_t) { lines.push_back(strip_cr(line)); });
  return lines;
}

void count_tokens(TokenCounter& counter, std::string_view text, TextMode mode, std::string_view origin) {
  if (mode == TextMode::stream || counter.level() == TokenLevel::words) {
    counter.add_text(text, origin);
    return;
  }
  for_each_raw_line(text, [&](std::string_view line, size_t start) {
    validate_line(text, line, start, origin);
    counter.add_text(strip_cr(line), origin);
  });
}

Vocab build_vocab(std::string_view text, TokenLevel level, TextMode mode, const VocabOptions& opts,
                  std::string_view origin) {
  TokenCounter counter(level);
  count_tokens(counter, text, mode, origin);
  return Vocab::build(counter, opts);
}

std::vector<int32_t> encode_stream(const Vocab& vocab, std::string_view text, OovStats* stats, std::string_view origin) {
  std::vector<int32_t> ids;
  // One token per ~5 bytes for English words, one per byte for chars: reserve the upper bound
  // for chars only, where it is exact for ASCII.
  ids.reserve(vocab.level() == TokenLevel::chars ? text.size() : text.size() / 4);
  if (vocab.level() == TokenLevel::chars) {
    vocab.tokenize(text, ids, stats, origin);
    return ids;
  }
  for_each_raw_line(text, [&](std::string_view line, size_t) {
    vocab.tokenize(line, ids, stats, origin);
    ids.push_back(Vocab::eos_id);
  });
  return ids;
}

void LineExamples::add(std::span<const int32_t> example) {
  ids.insert(ids.end(), example.begin(), example.end());
  offsets.push_back(int64_t(ids.size()));
}

LineExamples encode_lines(const Vocab& vocab, std::string_view text, OovStats* stats, std::string_view origin) {
  LineExamples ex;
  ex.ids.reserve(vocab.level() == TokenLevel::chars ? text.size() : text.size() / 4);
  for_each_raw_line(text, [&](std::string_view raw, size_t start) {
    const std::string_view line = strip_cr(raw);
    const size_t before = ex.ids.size();
    if (vocab.level() == TokenLevel::chars) validate_line(text, line, start, origin);
    vocab.tokenize(line, ex.ids, stats, origin);
    if (ex.ids.size() > before) ex.offsets.push_back(int64_t(ex.ids.size()));
  });
  return ex;
}

int64_t TextBatch::tokens() const {
  int64_t n = 0;
  for (int64_t l : lengths) n += l;
  return n;
}

TextBatch batch_columns(const TextBatch& b, int64_t begin, int64_t end) {
  const int64_t T = b.steps(), B = b.batch(), n = end - begin;
  if (begin < 0 || end > B || n < 0)
    throw ShapeError("batch_columns: columns [" + std::to_string(begin) + ", " + std::to_string(end) + ") of a batch of " +
                     std::to_string(B));
  TextBatch out;
  out.input = Tensor<int32_t>({T, n});
  out.target = Tensor<int32_t>({T, n});
  out.mask = Tensor<float>({T, n});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < n; ++j) {
      out.input.data[size_t(t * n + j)] = b.input.data[size_t(t * B + begin + j)];
      out.target.data[size_t(t * n + j)] = b.target.data[size_t(t * B + begin + j)];
      out.mask.data[size_t(t * n + j)] = b.mask.data.empty() ? 1.0f : b.mask.data[size_t(t * B + begin + j)];
    }
  out.lengths.assign(b.lengths.begin() + begin, b.lengths.begin() + end);
  return out;
}

// ---- stream ---------------------------------------------------------------------------------

namespace {
class MemoryTokens final : public TokenSource {
 public:
  explicit MemoryTokens(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  int64_t size() const override { return int64_t(ids_.size()); }
  void read(int64_t pos, int64_t n, int32_t* out) const override { std::copy_n(ids_.data() + pos, n, out); }

 private:
  std::vector<int32_t> ids_;
};

class MemoryLines final : public LineSource {
 public:
  explicit MemoryLines(LineExamples ex) : ex_(std::move(ex)) {}
  int64_t size() const override { return ex_.size(); }
  int64_t length(int64_t i) const override { return ex_.length(i); }
  void read(int64_t i, int32_t* out) const override {
    const auto e = ex_.example(i);
    std::copy(e.begin(), e.end(), out);
  }

 private:
  LineExamples ex_;
};
}  // namespace

std::shared_ptr<const TokenSource> memory_tokens(std::vector<int32_t> ids) {
  return std::make_shared<MemoryTokens>(std::move(ids));
}
std::shared_ptr<const LineSource> memory_lines(LineExamples examples) {
  return std::make_shared<MemoryLines>(std::move(examples));
}

StreamBatcher::StreamBatcher(std::vector<int32_t> ids, const StreamOptions& opts)
    : StreamBatcher(memory_tokens(std::move(ids)), opts) {}

StreamBatcher::StreamBatcher(std::shared_ptr<const TokenSource> ids, const StreamOptions& opts)
    : opts_(opts), ids_(std::move(ids)) {
  if (opts_.batch_size < 1) throw Error("stream batcher: batch_size = " + std::to_string(opts_.batch_size) + ", expected >= 1");
  if (opts_.seq_len < 1) throw Error("stream batcher: seq_len = " + std::to_string(opts_.seq_len) + ", expected >= 1");
  stream_len_ = ids_->size() / opts_.batch_size;
  if (stream_len_ < 2)
    throw Error("stream batcher: " + std::to_string(ids_->size()) + " tokens for batch_size " +
                std::to_string(opts_.batch_size) + "; expected at least 2 tokens per stream (" +
                std::to_string(2 * opts_.batch_size) + ")");
}

int64_t StreamBatcher::batches_per_epoch() const {
  const int64_t steps = stream_len_ - 1;  // the last token of a stream is only a target
  return opts_.drop_last ? steps / opts_.seq_len : (steps + opts_.seq_len - 1) / opts_.seq_len;
}

bool StreamBatcher::next(TextBatch& out) {
  const int64_t p = state_.offset;
  const int64_t T = std::min(opts_.seq_len, stream_len_ - 1 - p);
  if (T <= 0 || (opts_.drop_last && T < opts_.seq_len)) {
    state_ = {state_.epoch + 1, 0};
    return false;
  }
  const int64_t B = opts_.batch_size, N = stream_len_;
  out.input.resize({T, B});
  out.target.resize({T, B});
  out.mask.resize({T, B});
  std::fill(out.mask.data.begin(), out.mask.data.end(), 1.0f);
  out.lengths.assign(size_t(B), T);
  int32_t* in = out.input.ptr();
  int32_t* tg = out.target.ptr();
  window_.resize(size_t(T + 1));
  for (int64_t b = 0; b < B; ++b) {
    ids_->read(b * N + p, T + 1, window_.data());
    const int32_t* s = window_.data();
    for (int64_t t = 0; t < T; ++t) {
      in[t * B + b] = s[t];
      tg[t * B + b] = s[t + 1];
    }
  }
  state_.offset = p + T;
  return true;
}

void StreamBatcher::set_state(const State& s) {
  if (s.epoch < 0 || s.offset < 0 || s.offset > stream_len_ - 1)
    throw Error("stream batcher state: epoch " + std::to_string(s.epoch) + ", offset " + std::to_string(s.offset) +
                "; expected epoch >= 0 and offset in [0, " + std::to_string(stream_len_ - 1) + "]");
  state_ = s;
}

std::string StreamBatcher::state_json() const {
  nlohmann::json j = {{"mode", "stream"},
                      {"epoch", state_.epoch},
                      {"offset", state_.offset},
                      {"batch_size", opts_.batch_size},
                      {"stream_len", stream_len_}};
  return j.dump();
}

namespace {
nlohmann::json parse_state(std::string_view json, const std::string& o, const char* mode) {
  const nlohmann::json j = parse_json(json, o, "a batcher state object");
  if (!j.is_object()) throw FormatError(o + ": top level: got " + j.type_name() + ", expected an object");
  auto it = j.find("mode");
  if (it == j.end() || !it->is_string() || it->get<std::string>() != mode)
    throw FormatError(o + ": \"mode\": got " + (it == j.end() ? std::string("nothing") : it->dump()) +
                      ", expected \"" + mode + "\"");
  return j;
}

int64_t get_int(const nlohmann::json& j, const std::string& o, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) throw FormatError(o + ": \"" + name + "\": missing field");
  if (!it->is_number_integer()) throw FormatError(o + ": \"" + name + "\": got " + it->dump() + ", expected an integer");
  return it->get<int64_t>();
}

void expect_same(const nlohmann::json& j, const std::string& o, const char* name, int64_t have) {
  const int64_t got = get_int(j, o, name);
  if (got != have)
    throw FormatError(o + ": \"" + name + "\": saved " + std::to_string(got) + ", but this batcher has " +
                      std::to_string(have) + "; expected the same data and options as the saved run");
}
}  // namespace

void StreamBatcher::set_state_json(std::string_view json, std::string_view origin) {
  const std::string o(origin);
  const auto j = parse_state(json, o, "stream");
  expect_same(j, o, "batch_size", opts_.batch_size);
  expect_same(j, o, "stream_len", stream_len_);
  try {
    set_state({get_int(j, o, "epoch"), get_int(j, o, "offset")});
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    throw FormatError(o + ": " + e.what());
  }
}

// ---- lines ----------------------------------------------------------------------------------

LinesBatcher::LinesBatcher(LineExamples examples, const LinesOptions& opts)
    : LinesBatcher(memory_lines(std::move(examples)), opts) {}

LinesBatcher::LinesBatcher(std::shared_ptr<const LineSource> examples, const LinesOptions& opts)
    : examples_(std::move(examples)), opts_(opts), rng_(opts.seed) {
  if (examples_->size() < 1) throw Error("lines batcher: no examples; expected at least one line with a token");
  if (opts_.batch_size < 1) throw Error("lines batcher: batch_size = " + std::to_string(opts_.batch_size) + ", expected >= 1");
  if (opts_.bucket_batches < 0)
    throw Error("lines batcher: bucket_batches = " + std::to_string(opts_.bucket_batches) + ", expected >= 0");
  if (opts_.drop_last && examples_->size() < opts_.batch_size)
    throw Error("lines batcher: " + std::to_string(examples_->size()) + " examples with drop_last and batch_size " +
                std::to_string(opts_.batch_size) + "; expected at least one full batch");
  if (opts_.shuffle_window < -1)
    throw Error("lines batcher: shuffle_window = " + std::to_string(opts_.shuffle_window) + ", expected -1, 0 or > 0");
  const int64_t n = examples_->size();
  const int64_t w = opts_.shuffle_window == -1 ? (n > kWholeShuffleMaxExamples ? kShuffleWindowExamples : 0)
                                               : opts_.shuffle_window;
  window_ = opts_.shuffle && w > 0 && w < n ? w : 0;
  if (windowed() && opts_.bucket_batches > 0)
    throw Error("lines batcher: bucket_batches with a shuffle window of " + std::to_string(window_) + " of " +
                std::to_string(n) + " examples; expected one or the other");
  window_batches_ = opts_.drop_last ? n / opts_.batch_size : (n + opts_.batch_size - 1) / opts_.batch_size;
  epoch_rng_ = rng_.state();
  plan_epoch();
}

void LinesBatcher::plan_epoch() {
  const int64_t n = examples_->size(), B = opts_.batch_size;
  if (windowed()) {
    const int64_t windows = (n + window_ - 1) / window_;
    window_order_.resize(size_t(windows));
    for (int64_t i = 0; i < windows; ++i) window_order_[size_t(i)] = i;
    for (int64_t i = windows - 1; i > 0; --i) std::swap(window_order_[size_t(i)], window_order_[rng_.below(uint64_t(i + 1))]);
    window_key_ = rng_.next_u64();
    cached_window_ = -1;
    partial_slot_ = -1;  // where the short last window (N % W examples) is visited, if there is one
    if (n % window_ != 0)
      partial_slot_ = std::find(window_order_.begin(), window_order_.end(), windows - 1) - window_order_.begin();
    return;
  }
  order_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) order_[size_t(i)] = i;
  if (opts_.shuffle)
    for (int64_t i = n - 1; i > 0; --i) std::swap(order_[size_t(i)], order_[rng_.below(uint64_t(i + 1))]);
  if (opts_.bucket_batches > 0) {
    const int64_t window = opts_.bucket_batches * B;
    for (int64_t w = 0; w < n; w += window) {
      // Stable, so equal lengths keep the shuffled order and the result stays seed-determined.
      std::stable_sort(order_.begin() + w, order_.begin() + std::min(n, w + window),
                       [&](int64_t a, int64_t b) { return examples_->length(a) > examples_->length(b); });
    }
  }
  batches_.clear();
  for (int64_t s = 0; s < n; s += B) {
    const int64_t count = std::min(B, n - s);
    if (count < B && opts_.drop_last) break;
    batches_.emplace_back(s, count);
  }
  // Sorted windows would otherwise yield long batches first in every window; shuffling whole
  // batches keeps the grouping and randomises which lengths the optimiser sees when.
  if (opts_.shuffle && opts_.bucket_batches > 0)
    for (int64_t i = int64_t(batches_.size()) - 1; i > 0; --i)
      std::swap(batches_[size_t(i)], batches_[rng_.below(uint64_t(i + 1))]);
}

// Windowed order: position p of the epoch lies in the (p / W)-th window visited; inside it the
// order is a permutation drawn from a generator seeded by the epoch's key and the window's index
// alone, so any position can be found again after a resume.
int64_t LinesBatcher::example_at(int64_t position) {
  const int64_t n = examples_->size(), W = window_, r = n % W;
  // The visited windows hold W positions each, except the short one at partial_slot_.
  int64_t slot = position / W, offset = position % W;
  if (partial_slot_ >= 0 && position >= partial_slot_ * W) {
    if (position < partial_slot_ * W + r) {
      slot = partial_slot_, offset = position - partial_slot_ * W;
    } else {
      const int64_t q = position - r;
      slot = q / W + 1, offset = q % W;
    }
  }
  const int64_t w = window_order_[size_t(slot)];
  if (w != cached_window_) {
    const int64_t begin = w * window_, size = std::min(window_, n - begin);
    window_perm_.resize(size_t(size));
    for (int64_t i = 0; i < size; ++i) window_perm_[size_t(i)] = begin + i;
    Rng r(window_key_ ^ (0x9e3779b97f4a7c15ULL * uint64_t(w + 1)));
    for (int64_t i = size - 1; i > 0; --i) std::swap(window_perm_[size_t(i)], window_perm_[r.below(uint64_t(i + 1))]);
    cached_window_ = w;
  }
  return window_perm_[size_t(offset)];
}

bool LinesBatcher::next(TextBatch& out) {
  if (batch_ >= batches_per_epoch()) {
    ++epoch_;
    batch_ = 0;
    epoch_rng_ = rng_.state();
    plan_epoch();
    return false;
  }
  const int64_t* idx = nullptr;
  int64_t B = 0;
  if (windowed()) {
    const int64_t start = batch_++ * opts_.batch_size;
    B = std::min(opts_.batch_size, examples_->size() - start);
    batch_idx_.resize(size_t(B));
    for (int64_t b = 0; b < B; ++b) batch_idx_[size_t(b)] = example_at(start + b);
    idx = batch_idx_.data();
  } else {
    const auto [start, count] = batches_[size_t(batch_++)];
    idx = order_.data() + start;
    B = count;
  }
  int64_t T = 0;
  out.lengths.resize(size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    out.lengths[size_t(b)] = examples_->length(idx[b]) + 1;  // + the <eos> start/end symbol
    T = std::max(T, out.lengths[size_t(b)]);
  }
  out.input.resize({T, B});
  out.target.resize({T, B});
  out.mask.resize({T, B});
  std::fill(out.input.data.begin(), out.input.data.end(), opts_.pad_id);
  std::fill(out.target.data.begin(), out.target.data.end(), opts_.pad_id);
  out.mask.zero();
  int32_t* in = out.input.ptr();
  int32_t* tg = out.target.ptr();
  float* m = out.mask.ptr();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = out.lengths[size_t(b)] - 1;
    example_.resize(size_t(n));
    examples_->read(idx[b], example_.data());
    const std::span<const int32_t> ex(example_);
    in[b] = Vocab::eos_id;
    for (int64_t t = 0; t < n; ++t) {
      in[(t + 1) * B + b] = ex[size_t(t)];
      tg[t * B + b] = ex[size_t(t)];
    }
    tg[n * B + b] = Vocab::eos_id;
    for (int64_t t = 0; t <= n; ++t) m[t * B + b] = 1.0f;
  }
  return true;
}

void LinesBatcher::set_state(const State& s) {
  if (s.epoch < 0 || s.batch < 0) throw Error("lines batcher state: negative epoch or batch; expected >= 0");
  rng_.set_state(s.epoch_rng);
  plan_epoch();
  if (s.batch > batches_per_epoch()) {
    const int64_t nb = batches_per_epoch();
    rng_.set_state(epoch_rng_);  // leave the batcher as it was
    plan_epoch();
    throw Error("lines batcher state: batch " + std::to_string(s.batch) + "; expected at most " + std::to_string(nb));
  }
  epoch_rng_ = s.epoch_rng;
  epoch_ = s.epoch;
  batch_ = s.batch;
}

std::string LinesBatcher::state_json() const {
  nlohmann::json rng = nlohmann::json::array();
  for (uint64_t w : epoch_rng_) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)w);
    rng.push_back(buf);
  }
  nlohmann::json j = {{"mode", "lines"},          {"epoch", epoch_},
                      {"batch", batch_},          {"epoch_rng", rng},
                      {"batch_size", opts_.batch_size}, {"num_examples", examples_->size()}};
  return j.dump();
}

void LinesBatcher::set_state_json(std::string_view json, std::string_view origin) {
  const std::string o(origin);
  const auto j = parse_state(json, o, "lines");
  expect_same(j, o, "batch_size", opts_.batch_size);
  expect_same(j, o, "num_examples", examples_->size());
  State s{get_int(j, o, "epoch"), get_int(j, o, "batch"), {}};
  auto it = j.find("epoch_rng");
  if (it == j.end() || !it->is_array() || it->size() != s.epoch_rng.size())
    throw FormatError(o + ": \"epoch_rng\": expected an array of 4 hex strings");
  for (size_t i = 0; i < s.epoch_rng.size(); ++i) {
    const auto& w = (*it)[i];
    const std::string str = w.is_string() ? w.get<std::string>() : std::string();
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = str.size() == 16 ? std::strtoull(str.c_str(), &end, 16) : 0;
    if (str.size() != 16 || errno != 0 || end != str.c_str() + 16)
      throw FormatError(o + ": \"epoch_rng\"[" + std::to_string(i) + "]: got " + w.dump() +
                        ", expected a 16-digit hex string");
    s.epoch_rng[i] = uint64_t(v);
  }
  try {
    set_state(s);
  } catch (const Error& e) {
    throw FormatError(o + ": " + e.what());
  }
}

// ---- held-out split -------------------------------------------------------------------------

TextSplit holdout_split(std::string_view text, const HoldoutOptions& opts) {
  if (!(opts.fraction > 0.0 && opts.fraction < 1.0))
    throw Error("holdout split: fraction = " + std::to_string(opts.fraction) + ", expected a value in (0, 1)");
  std::vector<std::string_view> lines;
  for_each_raw_line(text, [&](std::string_view line, size_t) { lines.push_back(line); });
  const int64_t n = int64_t(lines.size());
  if (n < 2) throw Error("holdout split: " + std::to_string(n) + " line(s); expected at least 2 to split");
  const int64_t k = std::clamp<int64_t>(std::llround(opts.fraction * double(n)), 1, n - 1);
  std::vector<char> is_valid(static_cast<size_t>(n), 0);
  if (opts.contiguous) {
    for (int64_t i = n - k; i < n; ++i) is_valid[size_t(i)] = 1;
  } else {
    // Partial Fisher-Yates: the first k slots of a seeded permutation are the held-out lines.
    std::vector<int64_t> perm(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = i;
    Rng rng(opts.seed);
    for (int64_t i = 0; i < k; ++i) {
      std::swap(perm[size_t(i)], perm[size_t(i) + rng.below(uint64_t(n - i))]);
      is_valid[size_t(perm[size_t(i)])] = 1;
    }
  }
  TextSplit out;
  out.valid_lines = k;
  out.train_lines = n - k;
  for (int64_t i = 0; i < n; ++i) {
    std::string& dst = is_valid[size_t(i)] ? out.valid : out.train;
    dst.append(lines[size_t(i)]);
    dst.push_back('\n');
  }
  return out;
}

}  // namespace recur
