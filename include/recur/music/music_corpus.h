// recur/music/music_corpus.h - music files -> pieces -> token lines for the language-model trainer,
// and the "task" record that tells `recur sample` how to turn a model's tokens back into MIDI.
//
// A music model is an ordinary word-level language model (trainer.h) whose vocabulary is the
// fixed token list of an encoding (music_tokens.h): one piece is one line of tokens, so stream
// mode reads the corpus as the pieces back to back with <eos> between them and lines mode as one
// example per piece. Nothing here trains or samples; it only prepares data and says what it is.
//
// Inputs (load_music): a MIDI file (.mid/.midi), an ABC file (.abc: every tune converted with
// Debian's abc2midi, from package abcmidi), a JSB chorales JSON file (.json: its own
// train/valid/test split), or a folder holding such files (not recursive; dotfiles skipped; any
// other file is an error naming it, so a stray file is never silently trained on or ignored).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recur/music/midi.h"
#include "recur/music/music_tokens.h"
#include "recur/data/text_data.h"
#include "recur/data/corpus.h"

namespace recur {

struct MusicDataOptions {
  // duration: notes end by construction, and sampled music keeps the data's note lengths and
  // polyphony (BENCHMARKS.md); event: the performance-RNN tokens, the default before 4 Dec 2026.
  MusicEncoding encoding = MusicEncoding::duration;
  bool keep_drums = false;     // encode channel-10 notes (see music_tokens.h)
  std::vector<int> channels;   // keep only notes on these channels (0..15, 9 = drums); empty = all
  // Augmentation: every training piece is added once per shift in [transpose_min, transpose_max]
  // semitones (0 = the piece as it is). Validation and test pieces are never shifted.
  int transpose_min = 0, transpose_max = 0;
  double valid_fraction = 0.05;  // pieces held out from inputs without their own split; 0 = none
  uint64_t seed = 1;             // which pieces are held out
  int jsb_steps_per_quarter = 0;  // 0: from the file name ("16th" 4, "8th" 2, else 1)
  std::string abc2midi = "abc2midi";  // program run for .abc inputs (looked up in PATH)
  // A resumed run keeps its checkpoint's generation limits (MusicTask::max_note_seconds,
  // max_polyphony; 0 where it has none) instead of measuring them again, so its task record
  // stays the same.
  bool keep_limits = false;
  double max_note_seconds = 0;
  int max_polyphony = 0;

  void validate() const;  // throws Error naming the option
};

struct MusicPiece {
  std::string name;  // "file.mid", "tunes.abc#12", "jsb.json:train[3]"
  Performance perf;
};

struct MusicSet {
  std::vector<MusicPiece> train, valid, test;
  std::vector<std::string> notes;  // one-line remarks for the user (pieces held out, skipped)
};

// Reads and splits the inputs (see the top of the file). Pieces of MIDI/ABC inputs go to train
// except a valid_fraction of them, drawn with `seed`; JSB files keep their own split. Throws
// FormatError naming the file for anything unreadable, Error for a folder without music files
// or an .abc input without abc2midi installed.
MusicSet load_music(const std::vector<std::string>& inputs, const MusicDataOptions& opts);

// The same inputs as one list of performances (every split, in order), for statistics.
std::vector<MusicPiece> read_music_pieces(const std::vector<std::string>& inputs, const MusicDataOptions& opts);

// Pitched notes moved by `semitones`; those that leave 0..127 are dropped (counted in *dropped).
// Drum notes (channel 9) stay where they are: their number names an instrument, not a pitch.
Performance transpose_performance(const Performance& perf, int semitones, size_t* dropped = nullptr);

// The notes that start in the first `bars` bars (bar length from the time signature at time 0,
// through the tempo map), cut at the end of the last bar. Used to prime generation.
Performance first_bars(const Performance& perf, double bars);

// What a music checkpoint records in its "task" metadata: the encoding with its options, and
// how to play decoded tokens (tempo, program, velocity: the training data's most common ones).
struct MusicTask {
  MusicEncoding encoding = MusicEncoding::event;
  MusicTokenOptions tokens;  // keep_drums, and the decoding defaults
  int transpose_min = 0, transpose_max = 0;
  std::vector<int> channels;
  // What generation holds sampled music to (event encoding; music_generate.h): the longest
  // pitched note of the training pieces and the most notes sounding at once. Measured when the
  // corpus is made; 0 in checkpoints from before they were recorded (no limit). Statistics of
  // the data, not its layout: a resumed run keeps its own (MusicDataOptions::keep_limits).
  double max_note_seconds = 0;
  int max_polyphony = 0;
  std::string to_json() const;  // {"task":"music","encoding":"event","keep_drums":false,...}
};
// True when `task_json` (LmModel::task) names the music task.
bool is_music_task(std::string_view task_json);
// Throws FormatError "<origin>: metadata \"task\": ..." for a malformed record.
MusicTask music_task_from_json(std::string_view task_json, std::string_view origin);
// One line for `recur info`: "music, event encoding, transposed -3..3, decoded at 120 bpm, program 0".
std::string music_task_summary(const MusicTask& task);

// The trainer's input: the fixed vocabulary of the encoding, one line of tokens per piece (lines
// mode: pieces longer than seq_len tokens are cut into windows of seq_len tokens, so a batch is
// never padded to a whole symphony), and the task record. Throws Error if no training piece has
// a token.
struct MusicCorpusStats {
  int64_t train_pieces = 0, valid_pieces = 0, test_pieces = 0;  // after augmentation
  int64_t train_tokens = 0, valid_tokens = 0, test_tokens = 0;
  size_t transposed_out_of_range = 0;  // notes dropped by transposition
};
TokenCorpus make_music_corpus(const MusicSet& set, const MusicDataOptions& opts, TextMode mode, int64_t seq_len,
                              MusicCorpusStats* stats = nullptr);
// The pieces of make_music_corpus, a line at a time (each with its '\n'), for writers that do
// not hold the token text (recur prepare --task music); the statistics are returned.
enum class MusicSplit { train, valid, test };
MusicCorpusStats for_each_music_line(const MusicSet& set, const MusicDataOptions& opts, TextMode mode, int64_t seq_len,
                                     const std::function<void(MusicSplit, std::string_view)>& line);
// make_music_corpus's task record: the encoding with its options and what the training pieces
// say about playing and holding generated music.
MusicTask music_task_of(const MusicSet& set, const MusicDataOptions& opts);

// One line for the user: "music (event): 120 training pieces (...), ...; transposed -3..3 (...)".
std::string music_corpus_summary(const MusicDataOptions& opts, const MusicCorpusStats& stats);

// A training run's music options as the user gave them (`recur train --task music`); an option
// left unset takes a resumed run's value from its task record, so the data layout stays, else
// the default. Strings are parsed here, with errors naming the flag.
struct MusicTrainRequest {
  std::optional<std::string> encoding;   // --encoding: "duration" (default), "event" or "mono"
  std::optional<std::string> transpose;  // --transpose: "N" (shifts -N..N) or "MIN..MAX" semitones
  std::optional<bool> keep_drums;        // --keep-drums
  std::optional<std::vector<int>> channels;  // --channels
  int jsb_steps_per_quarter = 0;         // --jsb-steps-per-quarter (0: from the file name)
  double valid_fraction = 0.05;          // --valid-fraction
  uint64_t seed = 1;                     // --seed: which pieces are held out
};
// saved_task: a resumed run's "task" metadata (LmModel::task), empty for a new run; origin
// names it in errors. Throws Error naming the flag for a malformed value.
MusicDataOptions music_data_options(const MusicTrainRequest& request, std::string_view saved_task,
                                    std::string_view origin);
// "3" -> {-3, 3}, "-2..5" -> {-2, 5}; Error naming --transpose otherwise.
std::pair<int, int> parse_transpose_range(const std::string& text);

}  // namespace recur
