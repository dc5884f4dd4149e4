// recur/music/music_stats.h - a few statistics of a set of performances, to tell whether generated
// music is plausible next to its training data (docs/music.md, BENCHMARKS.md "Music").
//
// Key: Krumhansl-Schmuckler. A piece's pitch-class histogram, each note weighted by its
// duration, is correlated (Pearson) with the Krumhansl-Kessler major and minor profiles rotated
// to all 12 tonics; the best of the 24 is the key. "In key" means the note's pitch class is in
// the key's scale: major, or for a minor key natural minor plus the raised 7th (the leading tone
// that harmonic minor, and every Bach chorale cadence, uses).
//
// Drum notes (channel 9) are left out of every statistic: they have no pitch.
#pragma once

#include <string>
#include <vector>

#include "recur/music/midi.h"

namespace recur {

struct MusicKey {
  int tonic = 0;       // pitch class 0 = C .. 11 = B
  bool minor = false;
  double correlation = 0;  // with the chosen profile, in [-1, 1]
  std::string name() const;  // "C major", "F# minor"
  bool in_scale(int pitch) const;
};

// Throws nothing; a performance without pitched notes gives C major with correlation 0.
MusicKey estimate_key(const Performance& perf);

struct MusicStats {
  size_t pieces = 0;
  size_t notes = 0;            // pitched notes
  double seconds = 0;          // summed piece lengths (first note start to last note end)
  int pitch_min = 0, pitch_max = 0;
  double pitch_mean = 0, pitch_std = 0;
  double pitch_range_mean = 0;  // per piece max - min, averaged over pieces
  double notes_per_second = 0;  // notes / seconds
  double mean_duration = 0;     // seconds per note
  double polyphony = 0;         // mean number of notes sounding while any sounds
  double in_key = 0;            // share of notes in their piece's estimated key
  double key_correlation = 0;   // mean Krumhansl-Schmuckler correlation of the pieces' keys
};

MusicStats compute_music_stats(const std::vector<Performance>& pieces);

// ---- recur music-stats: sources side by side ----

struct MusicSourceOptions {
  std::string split = "all";  // pieces of JSB JSON files: all, train, valid or test (MIDI and ABC pieces are all "train")
  std::string through;        // "", "event" or "mono": measure what that encoding keeps (encode, then decode)
  std::vector<int> channels;  // keep only notes on these MIDI channels (0..15); empty = all
  int jsb_steps_per_quarter = 0;  // 0: from the file name (music_corpus.h)
};

// The statistics of one source: a MIDI, ABC or JSB JSON file or a folder of them (load_music).
// Throws like load_music; Error naming the option for an unknown split or encoding.
MusicStats source_music_stats(const std::string& source, const MusicSourceOptions& opts);

// A Markdown table with a row per statistic and a column per named set, so it pastes into
// BENCHMARKS.md as it is. names and stats have the same length.
std::string music_stats_table(const std::vector<std::string>& names, const std::vector<MusicStats>& stats);

}  // namespace recur
