// recur/music/jsb_chorales.h - the JSB chorales piano-roll JSON (Boulanger-Lewandowski et al. 2012
// split, czhuang/JSB-Chorales-dataset files) as Performances, for the music tokenizers.
//
// The file is {"train": [...], "valid": [...], "test": [...]}: each split a list of chorales,
// each chorale a list of time steps, each step a list of the MIDI pitches sounding (0-4 of
// them; [] = rest). The data does not say whether a pitch present in two consecutive steps is
// held or struck again, so by default it becomes one held note (the usual piano-roll -> MIDI
// reading, and the one that sounds like a chorale); merge_repeats = false strikes it per step.
// A pitch listed twice in one step (two voices in unison, in the 16th file) is one note.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recur/core/error.h"
#include "recur/music/midi.h"

namespace recur {

struct JsbOptions {
  int steps_per_quarter = 1;  // 1 for jsb-chorales-quarter.json, 4 for jsb-chorales-16th.json
  double tempo_bpm = 100.0;
  int velocity = 80;
  int program = 19;  // church organ; channel 0
  bool merge_repeats = true;
};

struct JsbChorales {
  std::vector<Performance> train, valid, test;
};

// Throws FormatError "<path>: <json location>: <what was expected>" for an unreadable file,
// malformed JSON, a missing split, or a step that is not a list of integer pitches 0..127.
// The file must be a regular file of at most kJsbMaxBytes (the real data set is about 0.2 MB;
// the whole JSON tree is held in memory, several times the file's size).
inline constexpr int64_t kJsbMaxBytes = int64_t(64) << 20;
JsbChorales read_jsb_chorales(const std::string& path, const JsbOptions& opts = {});

}  // namespace recur
