// recur/music/music_tokens.h - Performance <-> token strings, for word-level language models over music.
//
// Three encodings; the name (music_encoding_name) is what a checkpoint records, and the token list
// (music_vocab_tokens) is fixed per encoding so Vocab::from_tokens(TokenLevel::words, ...) gives
// the same ids on every machine. Token grammar and what a round trip keeps: docs/music.md.
//
//  event  Polyphonic "performance RNN" events (Oore et al. 2018), 388 tokens:
//           NOTE_ON_<p>  NOTE_OFF_<p>     p = 0..127
//           TIME_SHIFT_<ms>               ms = 10, 20, .., 1000 (longer gaps: several tokens)
//           VELOCITY_<b>                  b = 0..31, velocity v in bin (v - 1) / 4; emitted before
//                                         a NOTE_ON only when the bin changes
//         Times are quantised on an absolute 10 ms grid (no drift), a note shorter than one step
//         lasts one step, and at one instant the NOTE_OFFs come before the NOTE_ONs so a
//         re-struck key is not swallowed. Channels and programs are not encoded: all pitched
//         channels are merged (decoding gives channel/program from the options), and two
//         overlapping notes of one pitch come back paired first-on/first-off.
//  duration  Polyphonic events with each note's length given at its start (as REMI's
//         Note-Duration, Huang & Yang 2020), 436 tokens:
//           NOTE_<p> DUR_<ms>             p = 0..127: a note starting now, lasting ms
//           TIME_SHIFT_<ms>, VELOCITY_<b> as in event
//         A note is always two tokens, NOTE then DUR, so it ends by construction: a model cannot
//         leave one hanging or switch off a key that is not down, and the length it learns is
//         the length it plays. Lengths are quantised like event times (10 ms grid, at least one
//         step) and then to the nearest of 176 values (duration_bins_ms: 10 ms steps to 1 s, then
//         50, 250 and 500 ms steps to 16 s; longer notes are cut to 16 s). At one instant
//         notes go by pitch.
//  mono   Monophonic melody on a sixteenth-note grid, 1032 tokens:
//           P<p>_D<d>   a note of pitch p lasting d sixteenths
//           REST_D<d>   silence of d sixteenths
//         d in {1, 2, 3, 4, 6, 8, 12, 16} (sixteenth, eighth, dotted eighth, quarter, dotted
//         quarter, half, dotted half, whole). Onsets are rounded to the grid through the file's
//         tempo map; at each onset only the highest pitch is kept; a note lasts until its own
//         (rounded) end or the next onset, whichever is first, floored to an allowed value, and
//         the rest of the gap becomes REST tokens, so every onset stays exactly on the grid.
//
// Drums (channel 10) are dropped by both encodings unless keep_drums: their pitch numbers pick
// instruments, and mixing them with melodic pitches would teach a model nonsense chords.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/error.h"
#include "recur/music/midi.h"

namespace recur {

enum class MusicEncoding { event, mono, duration };

const char* music_encoding_name(MusicEncoding encoding);  // "event" / "mono" / "duration"
MusicEncoding parse_music_encoding(std::string_view name);  // throws Error on anything else

struct MusicTokenOptions {
  bool keep_drums = false;  // encode channel-10 notes as ordinary pitches
  // Decoding (tokens carry none of these):
  double tempo_bpm = 120.0;  // mono: length of a sixteenth; both: the decoded file's tempo
  int velocity = 80;         // mono: velocity of every note (event: from VELOCITY tokens)
  int channel = 0;           // channel of every decoded note
  int program = 0;           // program of every decoded note (0 = acoustic grand piano)
};

inline constexpr double event_time_step = 0.010;   // seconds per TIME_SHIFT unit
inline constexpr int event_max_shift_steps = 100;  // TIME_SHIFT_1000 = 1 s
inline constexpr int event_velocity_bins = 32;
inline constexpr int mono_durations[] = {1, 2, 3, 4, 6, 8, 12, 16};  // in sixteenths

// The note lengths of the duration encoding in milliseconds, ascending: 10..1000 step 10,
// 1050..3000 step 50, 3250..8000 step 250, 8500..16000 step 500 (176 values).
const std::vector<int>& duration_bins_ms();
// A length in 10 ms steps (>= 1) -> the nearest value of duration_bins_ms() in steps (ties up).
int64_t quantise_duration_steps(int64_t steps);

int velocity_bin(int velocity);     // 1..127 -> 0..31
int bin_velocity(int bin);          // 0..31 -> the bin's middle velocity

// Every token of the encoding, in a fixed order (not including Vocab's <unk>/<eos>).
std::vector<std::string> music_vocab_tokens(MusicEncoding encoding);

std::vector<std::string> encode_music(const Performance& perf, MusicEncoding encoding,
                                      const MusicTokenOptions& opts = {});
// Throws FormatError "<origin>: token <i>: unknown token '<t>' (expected ...)" for a token that
// is not in the encoding's vocabulary. "<eos>" ends the piece (a language model's sample may
// carry one); notes still sounding at the end stop at the last time reached (at least one step).
Performance decode_music(const std::vector<std::string>& tokens, MusicEncoding encoding,
                         const MusicTokenOptions& opts = {}, std::string_view origin = "<tokens>");

// What a round trip through an encoding promises to keep (docs/music.md), checked note by note.
//  event: every pitched note (drums unless keep_drums), with two overlapping notes of one pitch
//         re-paired first-on/first-off; start within half a step (5 ms), end within 5 ms or,
//         for a note shortened to one step, within 15 ms; velocity in the same bin.
//  duration: every pitched note, start within 5 ms, length the quantised length of the note's
//         grid start and end (quantise_duration_steps), velocity in the same bin.
//  mono:  the highest note at each sixteenth-grid onset: same onset step and pitch, duration
//         no longer than the note or the gap to the next onset, and at least the largest
//         allowed value below that.
struct RoundTripReport {
  size_t expected = 0;          // notes the encoding should keep
  size_t decoded = 0;           // notes decoding gave
  size_t matched = 0;           // expected notes found, within the tolerances above
  size_t dropped_drums = 0;     // channel-10 notes left out
  std::string first_mismatch;   // "" when all match, else "note <i>: expected ..., got ..."
  bool ok() const { return matched == expected && decoded == expected; }
};
RoundTripReport check_round_trip(const Performance& original, const Performance& decoded, MusicEncoding encoding,
                                 const MusicTokenOptions& opts = {});

// Whitespace-separated tokens from a text file (FormatError naming the path when unreadable).
// A regular file of at most kTokenFileMaxBytes (about 5 million event tokens, hours of music;
// the tokens are held in memory several times over while decoding), or "-": standard input, held
// to the same limit (recur/core/file_io.h read_input).
inline constexpr long long kTokenFileMaxBytes = 64LL << 20;
std::vector<std::string> read_token_file(const std::string& path);

// One piece as one line, tokens separated by spaces: "tok tok tok\n", the `lines` framing of a
// word-level corpus.
std::string token_line(const std::vector<std::string>& tokens);
// That line as a token file, written atomically (read_token_file reads it back). Throws Error
// "<path>: cannot write the token file: <reason>".
void write_token_file(const std::string& path, const std::vector<std::string>& tokens);

}  // namespace recur
