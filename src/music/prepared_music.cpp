// Prepared music corpora (prepared_music.h, docs/data.md): the pieces encoded a line at a time
// into temporary token files, each split prepared with the encoding's fixed vocabulary
// (data/prepared.h), music.json written last.
#include "recur/music/prepared_music.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "recur/core/file_io.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "recur.prepared-music";
const char* kSplitNames[] = {"train", "valid", "test"};

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

// One split's token lines on their way to `recur prepare`: a temporary file, every write checked.
class TokenFile {
 public:
  explicit TokenFile(std::string path) : path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "wb");
    if (!f_) throw Error(path_ + ": cannot write the token lines: " + std::strerror(errno));
  }
  ~TokenFile() {
    if (f_) std::fclose(f_);
    std::error_code ec;
    fs::remove(path_, ec);
  }
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  void write(std::string_view line) {
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size())
      throw Error(path_ + ": cannot write the token lines: " + std::strerror(errno));
    bytes_ += int64_t(line.size());
  }
  void close() {
    const bool ok = std::fflush(f_) == 0;
    const int err = errno;
    const bool closed = std::fclose(f_) == 0;
    f_ = nullptr;
    if (!ok || !closed) throw Error(path_ + ": cannot write the token lines: " + std::strerror(ok ? errno : err));
  }
  const std::string& path() const { return path_; }
  int64_t bytes() const { return bytes_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace

PreparedMusicInfo prepare_music_corpus(const std::vector<std::string>& inputs, const std::string& out_dir,
                                       const MusicPrepareOptions& o) {
  o.data.validate();
  if (o.seq_len < 1) throw Error("--seq-len: got " + std::to_string(o.seq_len) + ", expected at least 1");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir, ec)) throw Error(out_dir + ": cannot create the corpus folder: " + ec.message());
  fs::remove(join(out_dir, "music.json"), ec);  // no longer a corpus until it is one again

  const MusicSet set = load_music(inputs, o.data);
  PreparedMusicInfo info;
  info.notes = set.notes;
  info.task = music_task_of(set, o.data).to_json();
  info.mode = o.mode;
  info.seq_len = o.mode == TextMode::lines ? o.seq_len : 0;
  info.valid_fraction = o.data.valid_fraction;
  info.seed = o.data.seed;
  info.inputs = inputs;
  std::unique_ptr<TokenFile> files[3];
  for (int s = 0; s < 3; ++s) files[s] = std::make_unique<TokenFile>(temporary_path(join(out_dir, std::string(kSplitNames[s]) + ".tokens")));
  info.stats = for_each_music_line(set, o.data, o.mode, o.seq_len,
                                   [&](MusicSplit split, std::string_view line) { files[int(split)]->write(line); });
  PrepareOptions po;
  po.level = TokenLevel::words;
  po.mode = o.mode;
  po.shard_tokens = o.shard_tokens;
  po.fixed_vocab = std::make_shared<const Vocab>(Vocab::from_tokens(TokenLevel::words, music_vocab_tokens(o.data.encoding)));
  po.progress = o.progress;
  for (int s = 0; s < 3; ++s) {
    files[s]->close();
    const std::string dir = join(out_dir, kSplitNames[s]);
    fs::remove_all(dir, ec);
    if (files[s]->bytes() == 0) continue;
    prepare_corpus({files[s]->path()}, dir, po);
    if (s == 1) info.has_valid = true;
    if (s == 2) info.has_test = true;
  }
  nlohmann::ordered_json j = {{"format", kFormat},
                              {"version", kPreparedMusicVersion},
                              {"task", info.task},
                              {"mode", text_mode_name(info.mode)},
                              {"seq_len", info.seq_len},
                              {"valid_fraction", info.valid_fraction},
                              {"seed", info.seed},
                              {"train_pieces", info.stats.train_pieces},
                              {"valid_pieces", info.stats.valid_pieces},
                              {"test_pieces", info.stats.test_pieces},
                              {"train_tokens", info.stats.train_tokens},
                              {"valid_tokens", info.stats.valid_tokens},
                              {"test_tokens", info.stats.test_tokens},
                              {"transposed_out_of_range", int64_t(info.stats.transposed_out_of_range)},
                              {"valid", info.has_valid},
                              {"test", info.has_test},
                              {"inputs", info.inputs},
                              {"notes", info.notes}};
  write_file_atomic(join(out_dir, "music.json"), j.dump(1) + "\n", "the music corpus description");
  return info;
}

bool is_prepared_music_corpus(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return fs::is_regular_file(join(path, "music.json"), ec);
  return fs::path(path).filename() == "music.json" && fs::is_regular_file(path, ec);
}

PreparedMusicInfo read_prepared_music(const std::string& path) {
  std::error_code ec;
  const std::string dir = fs::is_directory(path, ec) ? path : fs::path(path).parent_path().string();
  const std::string file = join(dir, "music.json");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw FormatError(file + ": cannot open: " + std::strerror(errno));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  JsonFields f(std::string_view(text), file);
  PreparedMusicInfo info;
  if (f.string("format") != kFormat) f.fail("format", std::string("\"") + kFormat + "\"");
  if (f.integer("version") != kPreparedMusicVersion)
    f.fail("version", std::to_string(kPreparedMusicVersion) + " (prepare the music again with this recur)");
  info.task = f.string("task");
  (void)music_task_from_json(info.task, file + ": \"task\"");  // checked now, not at the first checkpoint
  const std::string mode = f.string("mode");
  if (mode != "stream" && mode != "lines") f.fail("mode", "\"stream\" or \"lines\"");
  info.mode = parse_text_mode(mode);
  info.seq_len = f.integer("seq_len", 0, int64_t(1) << 30);
  if ((info.mode == TextMode::lines) != (info.seq_len > 0)) f.fail("seq_len", "> 0 in lines mode, 0 in stream mode");
  info.valid_fraction = f.number("valid_fraction");
  if (!(info.valid_fraction >= 0 && info.valid_fraction < 1)) f.fail("valid_fraction", "a number in [0, 1)");
  info.seed = uint64_t(f.integer("seed", 0));
  info.stats.train_pieces = f.integer("train_pieces", 1);
  info.stats.valid_pieces = f.integer("valid_pieces", 0);
  info.stats.test_pieces = f.integer("test_pieces", 0);
  info.stats.train_tokens = f.integer("train_tokens", 1);
  info.stats.valid_tokens = f.integer("valid_tokens", 0);
  info.stats.test_tokens = f.integer("test_tokens", 0);
  info.stats.transposed_out_of_range = size_t(f.integer("transposed_out_of_range", 0));
  info.has_valid = f.boolean("valid");
  info.has_test = f.boolean("test");
  for (const char* list : {"inputs", "notes"}) {
    const auto& a = f.raw(list);
    if (!a.is_array()) f.fail(list, "an array of strings");
    for (const auto& s : a) {
      if (!s.is_string()) f.fail(list, "an array of strings");
      (std::string(list) == "inputs" ? info.inputs : info.notes).push_back(s.get<std::string>());
    }
  }
  f.finish();
  for (int s = 0; s < 3; ++s) {
    const bool listed = s == 0 || (s == 1 ? info.has_valid : info.has_test);
    if (listed && !is_prepared_corpus(join(dir, kSplitNames[s])))
      throw FormatError(file + ": lists " + kSplitNames[s] + "/, but " + join(dir, kSplitNames[s]) +
                        " is not a prepared corpus; expected the files of one recur prepare --task music run");
  }
  return info;
}

}  // namespace recur
