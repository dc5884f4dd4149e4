// recur/music/music_generate.h - improvising with a music language model (music_corpus.h): tokens
// from the sampler until a length in tokens or in seconds of music, decoded to a Performance,
// and rendering a MIDI file to WAV through FluidSynth.
//
// Generation is the text sampler's loop (lm_text.h) with music's stopping rule: it starts from a
// zero state after <eos> (the start of a piece, as the pieces were framed in training), feeds the
// prime's tokens, then draws until `length` tokens, until the decoded music reaches `seconds`, or
// until the model ends the piece with <eos>. Randomness follows sampler.h: one uniform draw per
// token (none with argmax), so a seed gives the same piece on every run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "recur/train/checkpoint.h"
#include "recur/music/midi.h"
#include "recur/music/music_corpus.h"
#include "recur/core/random.h"
#include "recur/model/sampler.h"

namespace recur {

struct MusicGenerateOptions {
  SampleOptions sample;
  int64_t length = 1000;  // tokens to draw at most (the prime not counted)
  double seconds = 0;     // > 0: stop once the generated part lasts this long (length still caps)
  std::vector<std::string> prime;  // tokens fed first (encode_music of a prime piece); kept in the output
  // Event encoding: hold the sample to what the training data did (MusicTask::max_note_seconds,
  // max_polyphony; a checkpoint from before they were recorded samples as it always did). Never
  // drawn (logit -inf): a NOTE_OFF of a pitch that is not sounding, a NOTE_ON of one struck at
  // this instant, a NOTE_ON while max_polyphony notes begun at this instant sound. NOTE_OFFs are
  // inserted (fed to the model like drawn tokens, no random draw spent) before a NOTE_ON of a
  // sounding pitch (its own: struck again), before a NOTE_ON while max_polyphony notes sound (the
  // oldest note's) and before a TIME_SHIFT that would carry a note past max_note_seconds (that
  // note's), so no note outlasts the data's longest and no more sound at once than in the data.
  // false: draw freely.
  bool limit_to_data = true;
};

struct MusicSample {
  std::vector<std::string> tokens;  // prime + generated
  int64_t prime_tokens = 0;
  int64_t generated_tokens = 0;  // after the prime, inserted NOTE_OFFs included
  int64_t forced_note_offs = 0;  // NOTE_OFFs inserted by limit_to_data
  bool ended = false;      // the model emitted <eos>
  Performance perf;        // decoded with the task's options
};

// Throws Error when `model` is not a music model or an option is out of range; a prime token
// outside the vocabulary is an Error naming it (prime tokens come from our own encoder, so one
// missing means the prime was encoded differently from the training data).
MusicSample generate_music(const LmModel& model, const MusicGenerateOptions& opts, Rng& rng,
                           const std::string& origin = "MODEL");

// Where generated pieces go: MIDI files (piece i > 1 of several as FILE-i.mid), WAV files
// rendered from them (with only wav_out, through a temporary MIDI file next to the WAV that is
// removed afterwards), or neither, when the caller prints the tokens. Folders are created.
struct MusicSampleFiles {
  std::string midi_out, wav_out;  // "" = none
  std::string soundfont;          // for wav_out; "" = default_soundfont()
};
struct MusicPieceWritten {
  int64_t index = 0;      // 0-based
  MusicSample sample;
  std::string where;      // "a.mid", "a.wav", "a.mid and a.wav", or "" without files
};
// Generates `count` pieces with generate_music, one after another from `rng`, writes each as
// `files` says, then calls `done`. Throws Error for wav_out with count > 1 and no midi_out (the
// pieces would have no files of their own), and what generate_music, write_midi and render_wav
// throw.
void sample_music_pieces(const LmModel& model, const MusicGenerateOptions& opts, const MusicSampleFiles& files,
                         int64_t count, Rng& rng, const std::string& origin,
                         const std::function<void(const MusicPieceWritten&)>& done);

// The prime of --prime-midi: the first `bars` bars of a MIDI file (first_bars), only the notes
// on the model's channels when it was trained on some, encoded as the model's tokens. Throws
// FormatError for an unreadable file, Error "--prime-midi: <path>: no notes ..." when nothing
// is left to prime with.
std::vector<std::string> music_prime_from_midi(const std::string& midi_path, double bars, const MusicTask& task);

// Seconds of music a token adds (event: TIME_SHIFT; mono: its duration at task.tokens.tempo_bpm).
double music_token_seconds(const MusicTask& task, const std::string& token);

// The General MIDI soundfont of Debian's fluid-soundfont-gm: $RECUR_SOUNDFONT if set, else
// /usr/share/sounds/sf2/FluidR3_GM.sf2, else default-GM.sf2 there; "" when none exists.
std::string default_soundfont();

// fluidsynth -ni -F WAV -r 44100 SOUNDFONT MIDI, into a temporary file renamed over `wav_path`.
// Throws Error with one line saying how to install FluidSynth when it is missing, naming the
// soundfont when it is missing, or with fluidsynth's last message when it fails.
void render_wav(const std::string& midi_path, const std::string& wav_path, const std::string& soundfont = "",
                int sample_rate = 44100);

}  // namespace recur
