// recur/music/prepared_music.h - a music corpus made once ("recur prepare --task music"): the
// inputs read, split, transposed and encoded into tokens as `recur train --task music` does,
// written as prepared corpora (data/prepared.h) of the encoding's fixed vocabulary, so training
// reads the tokens a window at a time and no run or resume re-reads the MIDI files:
//
//   DIR/music.json   what the corpus is: the task record (music_corpus.h MusicTask), mode and
//                    --seq-len of the token lines, how the split was drawn, the statistics
//   DIR/train/       the training pieces (with their transpositions), a prepared corpus
//   DIR/valid/       the validation pieces (absent when there are none)
//   DIR/test/        the test pieces (JSB's own test split; absent when there are none)
//
// Training on it logs bit-identical losses to training on the inputs with the same options
// (tests/test_music_train.cpp). The format is in docs/data.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "recur/data/prepared.h"
#include "recur/music/music_corpus.h"

namespace recur {

inline constexpr uint32_t kPreparedMusicVersion = 1;

struct MusicPrepareOptions {
  MusicDataOptions data;               // encoding, transposition, drums, channels, split
  TextMode mode = TextMode::stream;    // as recur train --mode: one stream, or one example per line
  int64_t seq_len = 64;                // lines mode: pieces cut into windows of this many tokens
  int64_t shard_tokens = int64_t(1) << 26;
  std::function<void(const PrepareProgress&)> progress;  // the encoding passes of the splits
};

struct PreparedMusicInfo {
  std::string task;                    // MusicTask::to_json(): the checkpoint's "task" record
  TextMode mode = TextMode::stream;
  int64_t seq_len = 0;                 // lines mode: the window; stream mode: 0 (any --seq-len)
  double valid_fraction = 0;           // how the pieces were held out
  uint64_t seed = 0;
  MusicCorpusStats stats;
  bool has_valid = false, has_test = false;
  std::vector<std::string> inputs;
  std::vector<std::string> notes;      // load_music's remarks (pieces held out, skipped)
};

// Reads `inputs` (as load_music), writes the corpus into out_dir (created; an earlier corpus
// there is replaced) and returns what music.json says. Memory: the pieces' notes and one
// prepared shard; the token text goes to disk a line at a time.
PreparedMusicInfo prepare_music_corpus(const std::vector<std::string>& inputs, const std::string& out_dir,
                                       const MusicPrepareOptions& opts);

// True when `path` is a folder holding music.json (or that file).
bool is_prepared_music_corpus(const std::string& path);
// DIR/music.json checked field by field (FormatError naming the file and field), and its train/
// (and valid/, test/ where it says so) present.
PreparedMusicInfo read_prepared_music(const std::string& dir);

}  // namespace recur
