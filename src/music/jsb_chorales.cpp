// JSB chorales piano-roll JSON -> Performances (see jsb_chorales.h for the held-note rule).
#include "recur/music/jsb_chorales.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "json_parse.h"

namespace recur {
namespace {

Performance chorale(const nlohmann::json& steps, const std::string& where, const JsbOptions& opts) {
  if (!steps.is_array()) throw FormatError(where + ": expected a list of time steps");
  Performance perf;
  perf.tempo_bpm = opts.tempo_bpm;
  perf.tracks = 0;
  const double step = 60.0 / opts.tempo_bpm / opts.steps_per_quarter;
  std::vector<int> open_note(128, -1);  // pitch -> index of the note still sounding
  for (size_t t = 0; t < steps.size(); ++t) {
    const nlohmann::json& chord = steps[t];
    const std::string at = where + "[" + std::to_string(t) + "]";
    if (!chord.is_array()) throw FormatError(at + ": expected a list of MIDI pitches");
    std::set<int> now;
    for (size_t k = 0; k < chord.size(); ++k) {
      const nlohmann::json& p = chord[k];
      // The 16th-note file writes some pitches as floats ("67.0"); integral values are accepted.
      const double v = p.is_number() ? p.get<double>() : -1.0;
      if (!(v >= 0 && v <= 127 && v == std::floor(v)))
        throw FormatError(at + "[" + std::to_string(k) + "]: expected an integer pitch 0..127, got " + p.dump());
      now.insert(int(v));
    }
    const double t0 = double(t) * step, t1 = double(t + 1) * step;
    for (int pitch = 0; pitch < 128; ++pitch) {
      const bool on = now.count(pitch) > 0;
      if (on && opts.merge_repeats && open_note[size_t(pitch)] >= 0) {
        perf.notes[size_t(open_note[size_t(pitch)])].end = t1;
      } else if (on) {
        open_note[size_t(pitch)] = int(perf.notes.size());
        perf.notes.push_back(Note{pitch, opts.velocity, 0, opts.program, t0, t1});
      } else {
        open_note[size_t(pitch)] = -1;
      }
    }
    perf.end_time = t1;
  }
  std::stable_sort(perf.notes.begin(), perf.notes.end(), [](const Note& a, const Note& b) {
    return a.start != b.start ? a.start < b.start : a.pitch < b.pitch;
  });
  return perf;
}

}  // namespace

JsbChorales read_jsb_chorales(const std::string& path, const JsbOptions& opts) {
  if (opts.steps_per_quarter < 1 || !(opts.tempo_bpm > 0) || opts.velocity < 1 || opts.velocity > 127 ||
      opts.program < 0 || opts.program > 127)
    throw Error("read_jsb_chorales: options out of range");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw FormatError(path + ": not a regular file; expected a JSB chorales JSON file");
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && int64_t(size) > kJsbMaxBytes)
    throw FormatError(path + ": " + std::to_string(size) + " bytes exceeds the limit of " + std::to_string(kJsbMaxBytes) +
                      " bytes for a JSB chorales file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open JSB chorales file");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json j = parse_json(text, path, "the JSB chorales object");
  if (!j.is_object()) throw FormatError(path + ": expected a JSON object with train/valid/test");
  JsbChorales out;
  for (auto [name, dst] : {std::pair{"train", &out.train}, {"valid", &out.valid}, {"test", &out.test}}) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_array())
      throw FormatError(path + ": " + name + ": expected a list of chorales");
    for (size_t i = 0; i < it->size(); ++i)
      dst->push_back(chorale((*it)[i], path + ": " + name + "[" + std::to_string(i) + "]", opts));
  }
  return out;
}

}  // namespace recur
