// Event and monophonic tokenizers; grammar and guarantees in music_tokens.h and docs/music.md.
#include "recur/music/music_tokens.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <tuple>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "recur/core/file_io.h"

namespace recur {
namespace {

// "<prefix><a>" or "<prefix><a>_D<d>". Built by appending: GCC 12 warns falsely (-Wrestrict,
// PR105329) on "literal" + std::string.
std::string tok(std::string_view prefix, int a, int d = -1) {
  std::string t(prefix);
  t += std::to_string(a);
  if (d >= 0) {
    t += "_D";
    t += std::to_string(d);
  }
  return t;
}

std::vector<const Note*> pitched_notes(const Performance& perf, const MusicTokenOptions& opts) {
  std::vector<const Note*> out;
  for (const Note& n : perf.notes)
    if (opts.keep_drums || n.channel != midi_drum_channel) out.push_back(&n);
  return out;
}

// "PREFIX<int>" -> int, or -1 when `tok` does not have that shape.
int suffix_int(std::string_view tok, std::string_view prefix) {
  if (tok.size() <= prefix.size() || tok.substr(0, prefix.size()) != prefix) return -1;
  int v = -1;
  const char* b = tok.data() + prefix.size();
  const char* e = tok.data() + tok.size();
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e || (*b == '0' && e - b > 1)) return -1;  // no "007"
  return v;
}

bool is_mono_duration(int d) {
  return std::find(std::begin(mono_durations), std::end(mono_durations), d) != std::end(mono_durations);
}

// Largest allowed duration <= d (d >= 1).
int floor_duration(int64_t d) {
  int best = mono_durations[0];
  for (int v : mono_durations)
    if (v <= d) best = v;
  return best;
}

void push_rests(std::vector<std::string>& out, int64_t steps) {
  while (steps > 0) {
    const int d = floor_duration(steps);
    out.push_back(tok("REST_D", d));
    steps -= d;
  }
}

[[noreturn]] void bad_token(std::string_view origin, size_t i, std::string_view tok, const char* expected) {
  throw FormatError(std::string(origin) + ": token " + std::to_string(i) + ": unknown token '" + std::string(tok) +
                    "' (expected " + expected + ")");
}

void finish(Performance& perf) {
  std::stable_sort(perf.notes.begin(), perf.notes.end(), [](const Note& x, const Note& y) {
    if (x.start != y.start) return x.start < y.start;
    if (x.pitch != y.pitch) return x.pitch < y.pitch;
    return x.end < y.end;
  });
  perf.end_time = 0;
  for (const Note& n : perf.notes) perf.end_time = std::max(perf.end_time, n.end);
  perf.tracks = 0;
}

std::vector<std::string> encode_event(const Performance& perf, const MusicTokenOptions& opts) {
  struct Ev { int64_t step; int on; int pitch; int velocity; size_t seq; };
  std::vector<Ev> evs;
  for (const Note* n : pitched_notes(perf, opts)) {
    const int64_t s = std::llround(n->start / event_time_step);
    const int64_t e = std::max<int64_t>(std::llround(n->end / event_time_step), s + 1);  // at least one step
    evs.push_back({s, 1, n->pitch, n->velocity, evs.size()});
    evs.push_back({e, 0, n->pitch, 0, evs.size()});
  }
  // Offs before ons at one instant; ons by pitch, then in file order (notes are start-sorted).
  std::sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
    if (a.step != b.step) return a.step < b.step;
    if (a.on != b.on) return a.on < b.on;
    if (a.pitch != b.pitch) return a.pitch < b.pitch;
    return a.seq < b.seq;
  });
  std::vector<std::string> out;
  out.reserve(evs.size() * 2);
  int64_t now = 0;
  int bin = -1;
  for (const Ev& e : evs) {
    for (int64_t gap = e.step - now; gap > 0;) {
      const int64_t k = std::min<int64_t>(gap, event_max_shift_steps);
      out.push_back(tok("TIME_SHIFT_", int(k * 10)));
      gap -= k;
    }
    now = e.step;
    if (e.on) {
      const int b = velocity_bin(e.velocity);
      if (b != bin) out.push_back(tok("VELOCITY_", b));
      bin = b;
      out.push_back(tok("NOTE_ON_", e.pitch));
    } else {
      out.push_back(tok("NOTE_OFF_", e.pitch));
    }
  }
  return out;
}

// TIME_SHIFT tokens for `gap` steps of 10 ms (several when the gap is over a second).
void push_shifts(std::vector<std::string>& out, int64_t gap) {
  while (gap > 0) {
    const int64_t k = std::min<int64_t>(gap, event_max_shift_steps);
    out.push_back(tok("TIME_SHIFT_", int(k * 10)));
    gap -= k;
  }
}

// A note's grid start and length in steps, as the event encoding rounds them.
std::pair<int64_t, int64_t> grid_note(const Note& n) {
  const int64_t s = std::llround(n.start / event_time_step);
  const int64_t e = std::max<int64_t>(std::llround(n.end / event_time_step), s + 1);
  return {s, e - s};
}

std::vector<std::string> encode_duration(const Performance& perf, const MusicTokenOptions& opts) {
  struct On { int64_t step; int pitch; int64_t len; int velocity; size_t seq; };
  std::vector<On> ons;
  for (const Note* n : pitched_notes(perf, opts)) {
    const auto [s, len] = grid_note(*n);
    ons.push_back({s, n->pitch, quantise_duration_steps(len), n->velocity, ons.size()});
  }
  std::sort(ons.begin(), ons.end(), [](const On& a, const On& b) {
    return std::tie(a.step, a.pitch, a.seq) < std::tie(b.step, b.pitch, b.seq);
  });
  std::vector<std::string> out;
  out.reserve(ons.size() * 3);
  int64_t now = 0;
  int bin = -1;
  for (const On& o : ons) {
    push_shifts(out, o.step - now);
    now = o.step;
    const int b = velocity_bin(o.velocity);
    if (b != bin) out.push_back(tok("VELOCITY_", b));
    bin = b;
    out.push_back(tok("NOTE_", o.pitch));
    out.push_back(tok("DUR_", int(o.len * 10)));
  }
  return out;
}

std::vector<std::string> encode_mono(const Performance& perf, const MusicTokenOptions& opts) {
  // (onset, pitch, end) on the sixteenth grid of the file's tempo map.
  struct M { int64_t on; int pitch; int64_t end; };
  std::vector<M> ms;
  for (const Note* n : pitched_notes(perf, opts)) {
    const int64_t on = std::llround(seconds_to_beats(perf, n->start) * 4);
    const int64_t end = std::max<int64_t>(std::llround(seconds_to_beats(perf, n->end) * 4), on + 1);
    ms.push_back({on, n->pitch, end});
  }
  // Highest pitch per onset (the melody of a lead-sheet style file sits on top).
  std::sort(ms.begin(), ms.end(), [](const M& a, const M& b) {
    return a.on != b.on ? a.on < b.on : a.pitch > b.pitch;
  });
  ms.erase(std::unique(ms.begin(), ms.end(), [](const M& a, const M& b) { return a.on == b.on; }), ms.end());
  std::vector<std::string> out;
  int64_t now = 0;
  for (size_t k = 0; k < ms.size(); ++k) {
    push_rests(out, ms[k].on - now);
    int64_t len = ms[k].end - ms[k].on;
    if (k + 1 < ms.size()) len = std::min(len, ms[k + 1].on - ms[k].on);
    const int d = floor_duration(len);
    out.push_back(tok("P", ms[k].pitch, d));
    now = ms[k].on + d;
  }
  return out;
}

Performance decode_event(const std::vector<std::string>& tokens, const MusicTokenOptions& opts,
                         std::string_view origin) {
  Performance perf;
  perf.tempo_bpm = opts.tempo_bpm;
  // One tick = 1 ms at this tempo (500 per quarter at 120 bpm), so written files keep the
  // 10 ms grid exactly instead of adding tick rounding on top of the quantisation.
  perf.ticks_per_quarter = std::clamp(int(std::lround(60000.0 / opts.tempo_bpm)), 1, 0x7FFF);
  int64_t now = 0;
  int velocity = bin_velocity(velocity_bin(opts.velocity));
  std::deque<size_t> open[128];  // first on, first off, as read_midi pairs them
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t == "<eos>") break;
    int v;
    if ((v = suffix_int(t, "NOTE_ON_")) >= 0 && v < 128) {
      open[v].push_back(perf.notes.size());
      const double s = double(now) * event_time_step;
      perf.notes.push_back(Note{v, velocity, opts.channel, opts.program, s, s});
    } else if ((v = suffix_int(t, "NOTE_OFF_")) >= 0 && v < 128) {
      if (!open[v].empty()) {  // an off with nothing sounding is ignored (a sample may do that)
        Note& n = perf.notes[open[v].front()];
        n.end = std::max(double(now) * event_time_step, n.start + event_time_step);
        open[v].pop_front();
      }
    } else if ((v = suffix_int(t, "TIME_SHIFT_")) >= 10 && v <= event_max_shift_steps * 10 && v % 10 == 0) {
      now += v / 10;
    } else if ((v = suffix_int(t, "VELOCITY_")) >= 0 && v < event_velocity_bins) {
      velocity = bin_velocity(v);
    } else {
      bad_token(origin, i, t, "NOTE_ON_<0..127>, NOTE_OFF_<0..127>, TIME_SHIFT_<10..1000 step 10> or VELOCITY_<0..31>");
    }
  }
  for (auto& q : open)
    for (size_t i : q) perf.notes[i].end = std::max(double(now) * event_time_step, perf.notes[i].start + event_time_step);
  finish(perf);
  return perf;
}

Performance decode_duration(const std::vector<std::string>& tokens, const MusicTokenOptions& opts,
                            std::string_view origin) {
  Performance perf;
  perf.tempo_bpm = opts.tempo_bpm;
  perf.ticks_per_quarter = std::clamp(int(std::lround(60000.0 / opts.tempo_bpm)), 1, 0x7FFF);  // 1 ms ticks
  int64_t now = 0;
  int velocity = bin_velocity(velocity_bin(opts.velocity));
  const std::vector<int>& bins = duration_bins_ms();
  // A NOTE waits for its DUR. A NOTE not followed by one (a sample cut at its length, or a token
  // file written by hand) lasts one step; a DUR with no NOTE before it is ignored, as event
  // decoding ignores a NOTE_OFF of a silent key.
  int pending = -1;
  auto close = [&](int64_t steps) {
    if (pending < 0) return;
    const double s = double(now) * event_time_step;
    perf.notes.push_back(Note{pending, velocity, opts.channel, opts.program, s, s + double(steps) * event_time_step});
    pending = -1;
  };
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t == "<eos>") break;
    int v;
    if ((v = suffix_int(t, "NOTE_")) >= 0 && v < 128) {
      close(1);
      pending = v;
    } else if ((v = suffix_int(t, "DUR_")) >= 0 && std::binary_search(bins.begin(), bins.end(), v)) {
      close(v / 10);
    } else if ((v = suffix_int(t, "TIME_SHIFT_")) >= 10 && v <= event_max_shift_steps * 10 && v % 10 == 0) {
      close(1);
      now += v / 10;
    } else if ((v = suffix_int(t, "VELOCITY_")) >= 0 && v < event_velocity_bins) {
      close(1);
      velocity = bin_velocity(v);
    } else {
      bad_token(origin, i, t, "NOTE_<0..127>, DUR_<ms> (duration_bins_ms), TIME_SHIFT_<10..1000 step 10> or VELOCITY_<0..31>");
    }
  }
  close(1);
  finish(perf);
  return perf;
}

Performance decode_mono(const std::vector<std::string>& tokens, const MusicTokenOptions& opts,
                        std::string_view origin) {
  Performance perf;
  perf.tempo_bpm = opts.tempo_bpm;
  const double sixteenth = 60.0 / opts.tempo_bpm / 4.0;
  int64_t now = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t == "<eos>") break;
    const size_t us = t.find("_D");
    const int d = us == std::string::npos ? -1 : suffix_int(std::string_view(t).substr(us), "_D");
    int pitch = -2;
    if (us != std::string::npos) {
      const std::string_view head = std::string_view(t).substr(0, us);
      pitch = head == "REST" ? -1 : suffix_int(head, "P");
    }
    if (d < 0 || !is_mono_duration(d) || pitch < -1 || pitch > 127)
      bad_token(origin, i, t, "P<0..127>_D<d> or REST_D<d>, d in 1 2 3 4 6 8 12 16");
    if (pitch >= 0)
      perf.notes.push_back(Note{pitch, opts.velocity, opts.channel, opts.program, double(now) * sixteenth,
                                double(now + d) * sixteenth});
    now += d;
  }
  finish(perf);
  perf.end_time = std::max(perf.end_time, double(now) * sixteenth);
  return perf;
}

}  // namespace

const char* music_encoding_name(MusicEncoding encoding) {
  switch (encoding) {
    case MusicEncoding::event: return "event";
    case MusicEncoding::mono: return "mono";
    case MusicEncoding::duration: return "duration";
  }
  return "?";
}

MusicEncoding parse_music_encoding(std::string_view name) {
  if (name == "event") return MusicEncoding::event;
  if (name == "mono") return MusicEncoding::mono;
  if (name == "duration") return MusicEncoding::duration;
  throw Error("unknown music encoding '" + std::string(name) + "' (expected event, mono or duration)");
}

const std::vector<int>& duration_bins_ms() {
  static const std::vector<int> bins = [] {
    std::vector<int> b;
    for (int ms = 10; ms <= 1000; ms += 10) b.push_back(ms);
    for (int ms = 1050; ms <= 3000; ms += 50) b.push_back(ms);
    for (int ms = 3250; ms <= 8000; ms += 250) b.push_back(ms);
    for (int ms = 8500; ms <= 16000; ms += 500) b.push_back(ms);
    return b;
  }();
  return bins;
}

int64_t quantise_duration_steps(int64_t steps) {
  const std::vector<int>& bins = duration_bins_ms();
  const int64_t ms = std::max<int64_t>(steps, 1) * 10;
  const auto hi = std::lower_bound(bins.begin(), bins.end(), ms);
  if (hi == bins.end()) return bins.back() / 10;
  if (hi == bins.begin() || *hi == ms) return *hi / 10;
  const int64_t up = *hi, down = *std::prev(hi);
  return (ms - down < up - ms ? down : up) / 10;  // nearest; a tie goes up
}

int velocity_bin(int velocity) { return (std::clamp(velocity, 1, 127) - 1) / 4; }

int bin_velocity(int bin) {
  const int b = std::clamp(bin, 0, event_velocity_bins - 1);
  return std::min(b * 4 + 3, 127);  // the bin holds b*4+1 .. b*4+4; its upper middle
}

std::vector<std::string> music_vocab_tokens(MusicEncoding encoding) {
  std::vector<std::string> v;
  if (encoding == MusicEncoding::event) {
    for (int p = 0; p < 128; ++p) v.push_back(tok("NOTE_ON_", p));
    for (int p = 0; p < 128; ++p) v.push_back(tok("NOTE_OFF_", p));
    for (int k = 1; k <= event_max_shift_steps; ++k) v.push_back(tok("TIME_SHIFT_", k * 10));
    for (int b = 0; b < event_velocity_bins; ++b) v.push_back(tok("VELOCITY_", b));
  } else if (encoding == MusicEncoding::duration) {
    for (int p = 0; p < 128; ++p) v.push_back(tok("NOTE_", p));
    for (int ms : duration_bins_ms()) v.push_back(tok("DUR_", ms));
    for (int k = 1; k <= event_max_shift_steps; ++k) v.push_back(tok("TIME_SHIFT_", k * 10));
    for (int b = 0; b < event_velocity_bins; ++b) v.push_back(tok("VELOCITY_", b));
  } else {
    for (int p = 0; p < 128; ++p)
      for (int d : mono_durations) v.push_back(tok("P", p, d));
    for (int d : mono_durations) v.push_back(tok("REST_D", d));
  }
  return v;
}

std::vector<std::string> encode_music(const Performance& perf, MusicEncoding encoding, const MusicTokenOptions& opts) {
  switch (encoding) {
    case MusicEncoding::event: return encode_event(perf, opts);
    case MusicEncoding::duration: return encode_duration(perf, opts);
    case MusicEncoding::mono: break;
  }
  return encode_mono(perf, opts);
}

Performance decode_music(const std::vector<std::string>& tokens, MusicEncoding encoding,
                         const MusicTokenOptions& opts, std::string_view origin) {
  if (!(opts.tempo_bpm > 0) || opts.velocity < 1 || opts.velocity > 127 || opts.channel < 0 || opts.channel > 15 ||
      opts.program < 0 || opts.program > 127)
    throw Error("decode_music: options out of range (tempo > 0, velocity 1..127, channel 0..15, program 0..127)");
  switch (encoding) {
    case MusicEncoding::event: return decode_event(tokens, opts, origin);
    case MusicEncoding::duration: return decode_duration(tokens, opts, origin);
    case MusicEncoding::mono: break;
  }
  return decode_mono(tokens, opts, origin);
}

std::vector<std::string> read_token_file(const std::string& path) {
  // A named token file is a regular file (as it always was); "-" is standard input, read through
  // the one input reader (core/file_io.h) with the same size limit.
  std::error_code ec;
  if (path != "-" && std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw FormatError(path + ": not a regular file; expected a token file");
  const std::string text = read_input(
      path, {.file_max_bytes = kTokenFileMaxBytes, .stream_max_bytes = kTokenFileMaxBytes, .expected = "a token file"});
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) out.push_back(tok);
  return out;
}

std::string token_line(const std::vector<std::string>& tokens) {
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i) text += ' ';
    text += tokens[i];
  }
  text += '\n';
  return text;
}

void write_token_file(const std::string& path, const std::vector<std::string>& tokens) {
  write_file_atomic(path, token_line(tokens), "the token file");
}

}  // namespace recur

namespace recur {
namespace {

std::string describe(const Note& n) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "pitch %d velocity %d [%.4f, %.4f] s", n.pitch, n.velocity, n.start, n.end);
  return buf;
}

}  // namespace

RoundTripReport check_round_trip(const Performance& original, const Performance& decoded, MusicEncoding encoding,
                                 const MusicTokenOptions& opts) {
  RoundTripReport r;
  std::vector<Note> expected;
  for (const Note& n : original.notes) {
    if (!opts.keep_drums && n.channel == midi_drum_channel) ++r.dropped_drums;
    else expected.push_back(n);
  }
  std::vector<Note> got = decoded.notes;
  r.decoded = got.size();
  const double eps = 1e-6;
  if (encoding == MusicEncoding::duration) {
    // (grid start, pitch, quantised length) on both sides; the decoded notes are exact grid
    // values, so only the start gets half a step for the rounding of the original.
    auto key = [](const Note& n) {
      const auto [s, len] = grid_note(n);
      return std::tuple(s, n.pitch, quantise_duration_steps(len));
    };
    auto by_key = [&](const Note& a, const Note& b) { return key(a) < key(b); };
    std::stable_sort(expected.begin(), expected.end(), by_key);
    std::stable_sort(got.begin(), got.end(), by_key);
    r.expected = expected.size();
    for (size_t i = 0; i < std::min(expected.size(), got.size()); ++i) {
      const Note& e = expected[i];
      const Note& g = got[i];
      const auto [es, elen] = grid_note(e);
      const double want_len = double(quantise_duration_steps(elen)) * event_time_step;
      const bool ok = e.pitch == g.pitch && std::abs(e.start - g.start) <= event_time_step / 2 + eps &&
                      std::abs(double(es) * event_time_step - g.start) < eps &&
                      std::abs((g.end - g.start) - want_len) < eps &&
                      velocity_bin(e.velocity) == velocity_bin(g.velocity);
      if (ok) ++r.matched;
      else if (r.first_mismatch.empty())
        r.first_mismatch = "note " + std::to_string(i) + ": expected " + describe(e) + " (length " +
                           std::to_string(want_len) + " s), got " + describe(g);
    }
  } else if (encoding == MusicEncoding::event) {
    // Re-pair each pitch's notes first-on/first-off: starts in order with ends in order.
    std::vector<std::vector<Note*>> by_pitch(128);
    for (Note& n : expected) by_pitch[size_t(n.pitch)].push_back(&n);
    for (auto& notes : by_pitch) {
      std::vector<double> ends;
      for (Note* n : notes) ends.push_back(n->end);
      std::sort(ends.begin(), ends.end());
      std::stable_sort(notes.begin(), notes.end(), [](const Note* a, const Note* b) { return a->start < b->start; });
      std::vector<Note> sorted;
      for (Note* n : notes) sorted.push_back(*n);
      for (size_t i = 0; i < notes.size(); ++i) {
        *notes[i] = sorted[i];
        notes[i]->end = ends[i];
      }
    }
    auto key = [](const Note& n) {
      return std::tuple(std::llround(n.start / event_time_step), n.pitch, std::llround(n.end / event_time_step));
    };
    auto by_key = [&](const Note& a, const Note& b) { return key(a) < key(b); };
    std::stable_sort(expected.begin(), expected.end(), by_key);
    std::stable_sort(got.begin(), got.end(), by_key);
    r.expected = expected.size();
    for (size_t i = 0; i < std::min(expected.size(), got.size()); ++i) {
      const Note& e = expected[i];
      const Note& g = got[i];
      const double half = event_time_step / 2 + eps;
      const bool one_step = std::abs(g.end - g.start - event_time_step) < eps;
      const bool ok = e.pitch == g.pitch && std::abs(e.start - g.start) <= half &&
                      (std::abs(e.end - g.end) <= half || (one_step && std::abs(e.end - g.end) <= 3 * half)) &&
                      velocity_bin(e.velocity) == velocity_bin(g.velocity);
      if (ok) ++r.matched;
      else if (r.first_mismatch.empty())
        r.first_mismatch = "note " + std::to_string(i) + ": expected " + describe(e) + ", got " + describe(g);
    }
  } else {
    // The melody the encoder keeps, on the grid: (onset, pitch, longest allowed length).
    struct M { int64_t on; int pitch; int64_t len; };
    std::vector<M> ms;
    for (const Note& n : expected) {
      const int64_t on = std::llround(seconds_to_beats(original, n.start) * 4);
      const int64_t end = std::llround(seconds_to_beats(original, n.end) * 4);
      ms.push_back({on, n.pitch, std::max<int64_t>(end - on, 1)});
    }
    std::sort(ms.begin(), ms.end(), [](const M& a, const M& b) { return a.on != b.on ? a.on < b.on : a.pitch > b.pitch; });
    ms.erase(std::unique(ms.begin(), ms.end(), [](const M& a, const M& b) { return a.on == b.on; }), ms.end());
    for (size_t k = 0; k + 1 < ms.size(); ++k) ms[k].len = std::min(ms[k].len, ms[k + 1].on - ms[k].on);
    r.expected = ms.size();
    const double sixteenth = 60.0 / opts.tempo_bpm / 4.0;
    for (size_t i = 0; i < std::min(ms.size(), got.size()); ++i) {
      const Note& g = got[i];
      const int64_t on = std::llround(g.start / sixteenth), len = std::llround((g.end - g.start) / sixteenth);
      const int64_t floor_len = std::min<int64_t>(ms[i].len, 16);
      const bool ok = on == ms[i].on && g.pitch == ms[i].pitch && len <= floor_len &&
                      len >= *std::prev(std::upper_bound(std::begin(mono_durations), std::end(mono_durations), floor_len));
      if (ok) ++r.matched;
      else if (r.first_mismatch.empty())
        r.first_mismatch = "note " + std::to_string(i) + ": expected pitch " + std::to_string(ms[i].pitch) +
                           " at sixteenth " + std::to_string(ms[i].on) + " lasting <= " + std::to_string(floor_len) +
                           ", got pitch " + std::to_string(g.pitch) + " at " + std::to_string(on) + " lasting " +
                           std::to_string(len);
    }
  }
  if (r.first_mismatch.empty() && r.decoded != r.expected)
    r.first_mismatch = "expected " + std::to_string(r.expected) + " notes, decoded " + std::to_string(r.decoded);
  return r;
}

}  // namespace recur
