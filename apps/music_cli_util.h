// apps/music_cli_util.h - the music parts of `recur train --task music` and `recur sample
// --midi-out/--wav-out`, kept out of cmd_train.cpp and cmd_sample.cpp so those stay about text
// (docs/music.md).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "recur/train/checkpoint.h"
#include "recur/tasks/lm_text.h"
#include "recur/music/music_corpus.h"
#include "recur/tasks/trainer.h"

namespace recur::cli {

// ---- recur train --task music ----
struct MusicTrainArgs {
  std::string encoding = "duration";
  std::string transpose = "0";  // "N" (= -N..N) or "MIN..MAX"
  bool keep_drums = false;
  std::vector<int> channels;
  int jsb_steps = 0;
  CLI::Option *encoding_opt = nullptr, *transpose_opt = nullptr, *drums_opt = nullptr, *channels_opt = nullptr;
  MusicTrainRequest request() const;  // the options given on the command line (music_corpus.h)
};
void add_music_train_options(CLI::App* sub, MusicTrainArgs& a);

// DATA a prepared music corpus (recur prepare --task music): refuses the music flags it fixes and
// takes its --mode (and lines mode's --seq-len) into `o`. Nothing for music files.
void apply_prepared_music(const MusicTrainArgs& a, const std::vector<std::string>& inputs, TrainOptions& o);

// Reads the inputs into the trainer's corpus (a prepared corpus: names its folder). `saved_task` (a resumed run's "task" metadata)
// gives the music options that were not given again. Notes go to `note`.
TokenCorpus music_training_corpus(const MusicTrainArgs& a, const std::vector<std::string>& inputs,
                                  const TrainOptions& o, const std::string& saved_task,
                                  const std::function<void(const std::string&)>& note);

// ---- recur sample --midi-out ----
struct MusicSampleArgs {
  std::string midi_out, wav_out, prime_midi, soundfont;
  double prime_bars = 2;
  double seconds = 0;
  bool no_limits = false;  // MusicGenerateOptions::limit_to_data off
};
void add_music_sample_options(CLI::App* sub, MusicSampleArgs& a);
bool music_output_requested(const MusicSampleArgs& a);

// Generates `count` pieces from a music model: MIDI (and WAV) files, or tokens on stdout
// without --midi-out. `length_given`: whether --length was on the command line (with --seconds
// and no --length, the length in tokens is only a safety cap).
void run_music_sample(const LmModel& model, const std::string& model_path, const MusicSampleArgs& m,
                      const GenerateOptions& gen, bool length_given, int64_t count, uint64_t seed);

}  // namespace recur::cli
