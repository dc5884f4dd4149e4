// recur/music/midi.h - Standard MIDI Files (SMF) in and out, as a list of timed notes.
//
// Reading is done by recur's own validating parser: a MIDI file is untrusted input, and the
// Debian libraries (libsmf, portSMF) accept truncated or over-long chunks by silently dropping
// events, or abort the process on a track without end-of-track (see docs/music.md). Every
// problem is a one-line FormatError "<path>: byte <offset> (track <k>): <what was expected>".
// Writing goes through libsmf (variable-length quantities, chunk lengths, end-of-track), into a
// temporary file that is renamed over the target, so a reader never sees half a file.
//
// What is kept: note on/off pairs with their channel, velocity and the channel's program at
// note-on time, the tempo map and time signatures. Controllers, pitch bend, sysex, lyrics and
// other meta events are skipped (validated, not kept). Times are seconds from the start, the
// tempo map already applied, so the tokenizers (music_tokens.h) never need ticks.
#pragma once

#include <string>
#include <vector>

#include "recur/core/error.h"

namespace recur {

// The percussion channel: MIDI channel 10, index 9. Its "pitch" picks a drum, not a note.
inline constexpr int midi_drum_channel = 9;

struct Note {
  int pitch = 60;      // 0..127, 60 = middle C
  int velocity = 64;   // 1..127 (a note-on of velocity 0 is a note-off and never a Note)
  int channel = 0;     // 0..15; 9 = drums
  int program = 0;     // 0..127, General MIDI instrument in effect on the channel at note-on
  double start = 0.0;  // seconds
  double end = 0.0;    // seconds, >= start (0-length notes exist in real files)
  bool operator==(const Note&) const = default;
};

struct TempoChange {
  double time = 0.0;  // seconds
  double bpm = 120.0;
};

struct TimeSignature {
  double time = 0.0;  // seconds
  int numerator = 4;
  int denominator = 4;  // a power of two
};

struct Performance {
  std::vector<Note> notes;  // sorted by (start, pitch, channel, end)
  double tempo_bpm = 120.0;                    // tempo in effect at time 0 (120 if the file has none)
  std::vector<TempoChange> tempo_changes;      // later tempo changes, time > 0, in time order
  int ticks_per_quarter = 480;                 // read: the file's division (480 for SMPTE-timed files)
  TimeSignature time_signature;                // in effect at time 0 (4/4 if the file has none)
  std::vector<TimeSignature> time_signature_changes;  // later ones, time > 0, in time order
  double end_time = 0.0;  // seconds: the last end-of-track (read) or the last note end (decoded)
  int format = 1;         // read: the file's SMF format (0 or 1); write always uses 1
  int tracks = 0;         // read: number of MTrk chunks
};

// Throws FormatError (one line, naming `path`) for a missing or unreadable file or anything
// malformed: not an SMF, truncated or inconsistent chunk lengths, fewer tracks than declared,
// zero tracks, format 2, running status with no previous status, a variable-length quantity
// longer than 4 bytes, a stray status byte, a missing end-of-track, bad tempo/time-signature
// events, or events later than max_midi_seconds (an absurd delta time). path "-" is standard
// input ("<stdin>" in messages); files and stdin are read through recur/core/file_io.h
// read_input, up to 64 MiB.
Performance read_midi(const std::string& path);
// The same from bytes already in memory; `origin` names them in errors.
Performance parse_midi(const std::string& bytes, const std::string& origin);

// Format 1, ticks_per_quarter resolution: track 0 holds the tempo map and time signatures, then
// one track per channel that has notes, with program changes where a note's program differs
// from the channel's current one. Times are converted through perf's tempo map and rounded to
// the nearest tick. Throws Error for notes out of range (pitch, velocity, channel, program,
// negative or reversed times) or when the file cannot be written; the target is left untouched
// on failure.
void write_midi(const Performance& perf, const std::string& path);

// Files longer than this are rejected as corrupt (a 4-byte delta at 96 ticks/quarter is days).
inline constexpr double max_midi_seconds = 6 * 3600.0;

// The tempo map of `perf` (tempo_bpm, then tempo_changes): seconds <-> quarter notes.
double seconds_to_beats(const Performance& perf, double seconds);
double beats_to_seconds(const Performance& perf, double beats);

}  // namespace recur
