// Standard MIDI File reader (own, validating) and writer (libsmf). Why not libsmf for reading:
// it "truncates" a track on an unparsable event and still returns success, and asserts (aborts
// the process) on a track that ends without end-of-track; see docs/music.md.
#include "recur/music/midi.h"

#include "recur/core/file_io.h"

#include <glib.h>
#include <smf.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <deque>
#include <string>
#include <unistd.h>
#include <vector>

namespace recur {
namespace {

// Bigger than any real SMF by far; stops a stray multi-GB file from being slurped.
constexpr size_t max_file_bytes = size_t(64) << 20;
constexpr int default_ppq_for_smpte = 480;

std::string hex2(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v & 0xFFu);
  return buf;
}

// One event the rest of the reader cares about; everything else is validated and dropped.
struct RawEvent {
  int64_t tick;
  int track;
  size_t offset;  // byte offset of the event's delta time, for error messages
  enum Kind : uint8_t { note_on, note_off, program, tempo, time_sig, end_of_track } kind;
  uint8_t channel, a, b;  // note: pitch, velocity; program: number; time_sig: num, denominator power
  uint32_t tempo_us;      // microseconds per quarter note
};

class Parser {
 public:
  Parser(const std::string& bytes, const std::string& origin) : d_(bytes), origin_(origin) {}

  [[noreturn]] void fail(size_t offset, const std::string& what) const {
    std::string where = origin_ + ": byte " + std::to_string(offset);
    if (track_ >= 0) where += " (track " + std::to_string(track_) + ")";
    throw FormatError(where + ": " + what);
  }

  uint32_t be(size_t at, int n) const {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | uint8_t(d_[at + size_t(i)]);
    return v;
  }

  // Variable-length quantity inside [pos, end): at most 4 bytes (28 bits) by the SMF spec.
  uint32_t vlq(size_t& pos, size_t end, const char* what) const {
    const size_t start = pos;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      if (pos >= end) fail(start, std::string("truncated ") + what + " (track data ends inside it)");
      const uint8_t c = uint8_t(d_[pos++]);
      v = (v << 7) | (c & 0x7Fu);
      if (!(c & 0x80u)) return v;
    }
    fail(start, std::string(what) + ": variable-length quantity longer than 4 bytes (absurd value)");
  }

  void parse() {
    const size_t n = d_.size();
    if (n == 0) fail(0, "empty file, expected a Standard MIDI File header 'MThd'");
    if (n < 4 || d_.compare(0, 4, "MThd") != 0)
      fail(0, "not a Standard MIDI File: expected the 'MThd' header chunk");
    if (n < 14) fail(n, "file ends inside the MThd header (" + std::to_string(n) + " bytes, need 14)");
    const uint32_t hlen = be(4, 4);
    if (hlen < 6) fail(4, "MThd length " + std::to_string(hlen) + ", expected 6");
    if (hlen > n - 8) fail(4, "MThd declares " + std::to_string(hlen) + " bytes but only " +
                                  std::to_string(n - 8) + " remain");
    format_ = int(be(8, 2));
    ntracks_ = int(be(10, 2));
    const uint32_t division = be(12, 2);
    if (format_ == 2) fail(8, "SMF format 2 (independent sequences) is not supported, expected 0 or 1");
    if (format_ > 2) fail(8, "unknown SMF format " + std::to_string(format_) + ", expected 0 or 1");
    if (ntracks_ == 0) fail(10, "header declares zero tracks, expected at least 1");
    if (format_ == 0 && ntracks_ != 1)
      fail(10, "format 0 file declares " + std::to_string(ntracks_) + " tracks, expected exactly 1");
    if (division & 0x8000u) {
      // SMPTE: -frames per second (24, 25, 29 = 29.97 drop-frame, 30) and ticks per frame.
      const int fps = 256 - int(division >> 8);
      const int per_frame = int(division & 0xFF);
      if ((fps != 24 && fps != 25 && fps != 29 && fps != 30) || per_frame == 0)
        fail(12, "bad SMPTE division " + hex2(division >> 8) + hex2(division).substr(2) +
                     ", expected 24/25/29/30 frames per second and non-zero ticks per frame");
      smpte_seconds_per_tick_ = 1.0 / ((fps == 29 ? 29.97 : double(fps)) * per_frame);
    } else {
      if (division == 0) fail(12, "division is 0 ticks per quarter note, expected at least 1");
      ppq_ = int(division);
    }

    size_t pos = 8 + hlen;
    int found = 0;
    while (found < ntracks_) {
      if (pos >= n)
        fail(pos, "header declares " + std::to_string(ntracks_) + " tracks but the file ends after " +
                      std::to_string(found));
      if (n - pos < 8) fail(pos, "truncated chunk header (" + std::to_string(n - pos) + " bytes left, need 8)");
      const uint32_t len = be(pos + 4, 4);
      if (len > n - pos - 8)
        fail(pos + 4, "chunk declares " + std::to_string(len) + " bytes but only " +
                          std::to_string(n - pos - 8) + " remain (truncated file or wrong chunk length)");
      if (d_.compare(pos, 4, "MTrk") == 0) {
        track_ = found;
        parse_track(pos + 8, pos + 8 + len);
        track_ = -1;
        ++found;
      } else {
        // The spec says unknown chunk types are to be skipped, but a non-printable "type" means
        // we have lost the chunk structure (a wrong length upstream), which is an error.
        for (int i = 0; i < 4; ++i) {
          const unsigned char c = uint8_t(d_[pos + size_t(i)]);
          if (c < 0x20 || c > 0x7E) fail(pos, "expected an 'MTrk' chunk, found bytes that are not a chunk type");
        }
      }
      pos += 8 + len;
    }
    // Bytes after the last declared track are ignored: some writers pad files.
  }

  void parse_track(size_t pos, const size_t end) {
    int64_t tick = 0;
    int status = -1;  // running status; -1 = none yet
    while (true) {
      if (pos >= end) fail(pos, "track ends without an end-of-track meta event (FF 2F 00)");
      const size_t ev = pos;
      tick += vlq(pos, end, "delta time");
      if (pos >= end) fail(pos, "truncated event: track data ends after a delta time");
      uint8_t c = uint8_t(d_[pos]);
      if (c < 0x80) {
        if (status < 0) fail(pos, "running status (data byte " + hex2(c) + ") with no previous status byte");
      } else {
        ++pos;
        if (c == 0xFF) {
          if (pos >= end) fail(pos, "truncated meta event (no type byte)");
          const uint8_t type = uint8_t(d_[pos++]);
          const uint32_t len = vlq(pos, end, "meta event length");
          if (len > end - pos)
            fail(ev, "meta event " + hex2(type) + " declares " + std::to_string(len) + " bytes but only " +
                         std::to_string(end - pos) + " remain in the track");
          meta(ev, tick, type, pos, len);
          pos += len;
          if (type == 0x2F) {
            push(RawEvent{tick, track_, ev, RawEvent::end_of_track, 0, 0, 0, 0});
            return;  // bytes after end-of-track inside the chunk are ignored
          }
          continue;  // running status is kept across meta events (lenient, as most readers are)
        }
        if (c == 0xF0 || c == 0xF7) {
          const uint32_t len = vlq(pos, end, "sysex length");
          if (len > end - pos)
            fail(ev, "sysex declares " + std::to_string(len) + " bytes but only " + std::to_string(end - pos) +
                         " remain in the track");
          pos += len;
          continue;
        }
        if (c >= 0xF0) fail(pos - 1, "unexpected status byte " + hex2(c) + " (system message) in a MIDI file");
        status = c;
      }
      const int kind = status >> 4;
      const int nbytes = (kind == 0xC || kind == 0xD) ? 1 : 2;
      if (end - pos < size_t(nbytes)) fail(pos, "truncated channel message " + hex2(unsigned(status)));
      uint8_t data[2] = {0, 0};
      for (int i = 0; i < nbytes; ++i) {
        data[i] = uint8_t(d_[pos++]);
        if (data[i] >= 0x80)
          fail(pos - 1, "expected a data byte (< 0x80) in message " + hex2(unsigned(status)) + ", got " + hex2(data[i]));
      }
      const uint8_t ch = uint8_t(status & 0x0F);
      if (kind == 0x9 && data[1] > 0) {
        push(RawEvent{tick, track_, ev, RawEvent::note_on, ch, data[0], data[1], 0});
      } else if (kind == 0x8 || kind == 0x9) {
        push(RawEvent{tick, track_, ev, RawEvent::note_off, ch, data[0], 0, 0});
      } else if (kind == 0xC) {
        push(RawEvent{tick, track_, ev, RawEvent::program, ch, data[0], 0, 0});
      }
    }
  }

  void meta(size_t ev, int64_t tick, uint8_t type, size_t pos, uint32_t len) {
    if (type == 0x51) {
      if (len != 3) fail(ev, "tempo meta event of length " + std::to_string(len) + ", expected 3");
      const uint32_t us = be(pos, 3);
      if (us == 0) fail(ev, "tempo of 0 microseconds per quarter note, expected > 0");
      push(RawEvent{tick, track_, ev, RawEvent::tempo, 0, 0, 0, us});
    } else if (type == 0x58) {
      if (len != 4) fail(ev, "time signature meta event of length " + std::to_string(len) + ", expected 4");
      const uint8_t num = uint8_t(d_[pos]), den_pow = uint8_t(d_[pos + 1]);
      if (num == 0 || den_pow > 6)
        fail(ev, "time signature " + std::to_string(num) + "/2^" + std::to_string(den_pow) +
                     ", expected numerator >= 1 and denominator 1..64");
      push(RawEvent{tick, track_, ev, RawEvent::time_sig, 0, num, den_pow, 0});
    } else if (type == 0x2F && len != 0) {
      fail(ev, "end-of-track meta event of length " + std::to_string(len) + ", expected 0");
    }
  }

  void push(const RawEvent& e) { events_.push_back(e); }

  Performance build() {
    Performance perf;
    perf.format = format_;
    perf.tracks = ntracks_;
    perf.ticks_per_quarter = ppq_ > 0 ? ppq_ : default_ppq_for_smpte;
    // Merge the tracks in time; at one tick, keep file order (track, then position).
    std::stable_sort(events_.begin(), events_.end(),
                     [](const RawEvent& x, const RawEvent& y) { return x.tick < y.tick; });

    // Tempo map: in format 1 tempo events of any track apply to the whole file.
    struct Segment { int64_t tick; double seconds; double sec_per_tick; };
    std::vector<Segment> map{{0, 0.0, ppq_ > 0 ? 0.5 / ppq_ : smpte_seconds_per_tick_}};
    for (const RawEvent& e : events_) {
      if (e.kind != RawEvent::tempo) continue;
      const double bpm = 60e6 / e.tempo_us;
      const double t = map.back().seconds + double(e.tick - map.back().tick) * map.back().sec_per_tick;
      if (ppq_ > 0) map.push_back({e.tick, t, e.tempo_us * 1e-6 / ppq_});
      if (e.tick == 0) perf.tempo_bpm = bpm;
      else if (!perf.tempo_changes.empty() && perf.tempo_changes.back().time == t) perf.tempo_changes.back().bpm = bpm;
      else perf.tempo_changes.push_back({t, bpm});
    }
    auto seconds = [&](int64_t tick) {
      auto it = std::upper_bound(map.begin(), map.end(), tick,
                                 [](int64_t tk, const Segment& s) { return tk < s.tick; });
      const Segment& s = *std::prev(it);
      return s.seconds + double(tick - s.tick) * s.sec_per_tick;
    };

    int program[16] = {};
    std::map<int, std::deque<size_t>> open;  // (channel * 128 + pitch) -> open notes, oldest first
    double end_time = 0;
    for (const RawEvent& e : events_) {
      const double t = seconds(e.tick);
      if (t > max_midi_seconds) {
        track_ = e.track;
        fail(e.offset, "event at " + std::to_string(int64_t(t)) + " s is past the " +
                           std::to_string(int(max_midi_seconds / 3600)) + "-hour limit (absurd delta time)");
      }
      end_time = std::max(end_time, t);
      switch (e.kind) {
        case RawEvent::note_on:
          open[e.channel * 128 + e.a].push_back(perf.notes.size());
          perf.notes.push_back(Note{e.a, e.b, e.channel, program[e.channel], t, t});
          break;
        case RawEvent::note_off: {
          // First on, first off: the pairing the event tokenizer reproduces.
          auto it = open.find(e.channel * 128 + e.a);
          if (it != open.end() && !it->second.empty()) {
            perf.notes[it->second.front()].end = t;
            it->second.pop_front();
          }
          break;
        }
        case RawEvent::program: program[e.channel] = e.a; break;
        case RawEvent::time_sig: {
          const TimeSignature ts{t, e.a, 1 << e.b};
          if (e.tick == 0) perf.time_signature = ts;
          else perf.time_signature_changes.push_back(ts);
          break;
        }
        default: break;
      }
    }
    // A note never switched off sounds until the end of the file.
    for (auto& [key, q] : open)
      for (size_t i : q) perf.notes[i].end = end_time;
    perf.end_time = end_time;
    std::stable_sort(perf.notes.begin(), perf.notes.end(), [](const Note& x, const Note& y) {
      if (x.start != y.start) return x.start < y.start;
      if (x.pitch != y.pitch) return x.pitch < y.pitch;
      if (x.channel != y.channel) return x.channel < y.channel;
      return x.end < y.end;
    });
    return perf;
  }

 private:
  const std::string& d_;
  const std::string& origin_;
  int track_ = -1;  // track being parsed, for messages
  int format_ = 0, ntracks_ = 0, ppq_ = 0;
  double smpte_seconds_per_tick_ = 0;
  std::vector<RawEvent> events_;
};

void check_note(const Note& n, size_t i) {
  auto bad = [&](const std::string& what) {
    throw Error("write_midi: note " + std::to_string(i) + ": " + what);
  };
  if (n.pitch < 0 || n.pitch > 127) bad("pitch " + std::to_string(n.pitch) + ", expected 0..127");
  if (n.velocity < 1 || n.velocity > 127) bad("velocity " + std::to_string(n.velocity) + ", expected 1..127");
  if (n.channel < 0 || n.channel > 15) bad("channel " + std::to_string(n.channel) + ", expected 0..15");
  if (n.program < 0 || n.program > 127) bad("program " + std::to_string(n.program) + ", expected 0..127");
  if (!(n.start >= 0) || !(n.end >= n.start) || !(n.end <= max_midi_seconds))
    bad("times [" + std::to_string(n.start) + ", " + std::to_string(n.end) + "] s, expected 0 <= start <= end <= " +
        std::to_string(int(max_midi_seconds)));
}

// libsmf reports through glib's log (multi-line "libsmf-CRITICAL **" on stderr). Keep its last
// message for our one-line exception instead of letting it reach the terminal.
thread_local std::string smf_last_message;
void smf_log(const gchar*, GLogLevelFlags, const gchar* message, gpointer) {
  smf_last_message = message ? message : "";
}
void quiet_libsmf() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_log_set_handler("libsmf", GLogLevelFlags(G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION), smf_log,
                      nullptr);
  });
}

struct SmfDeleter {
  void operator()(smf_t* s) const { smf_delete(s); }
};

// libsmf takes ownership of the event once it is added to a track.
void add_event(smf_track_t* track, smf_event_t* e, int64_t tick) {
  if (!e) throw Error("write_midi: libsmf could not allocate an event");
  smf_track_add_event_pulses(track, e, int(tick));
}

void add_meta(smf_track_t* track, int64_t tick, std::vector<unsigned char> bytes) {
  add_event(track, smf_event_new_from_pointer(bytes.data(), int(bytes.size())), tick);
}

}  // namespace

double seconds_to_beats(const Performance& perf, double seconds) {
  double t0 = 0, beats = 0, bpm = perf.tempo_bpm;
  for (const TempoChange& c : perf.tempo_changes) {
    if (c.time >= seconds) break;
    beats += (c.time - t0) * bpm / 60.0;
    t0 = c.time;
    bpm = c.bpm;
  }
  return beats + (seconds - t0) * bpm / 60.0;
}

double beats_to_seconds(const Performance& perf, double beats) {
  double t0 = 0, b0 = 0, bpm = perf.tempo_bpm;
  for (const TempoChange& c : perf.tempo_changes) {
    const double bc = b0 + (c.time - t0) * bpm / 60.0;
    if (bc >= beats) break;
    t0 = c.time;
    b0 = bc;
    bpm = c.bpm;
  }
  return t0 + (beats - b0) * 60.0 / bpm;
}

Performance parse_midi(const std::string& bytes, const std::string& origin) {
  Parser p(bytes, origin);
  p.parse();
  return p.build();
}

Performance read_midi(const std::string& path) {
  // The one input reader (core/file_io.h): "-" is standard input, held to the same limit.
  const std::string bytes = read_input(
      path, {.file_max_bytes = int64_t(max_file_bytes), .stream_max_bytes = int64_t(max_file_bytes), .expected = "a MIDI file"});
  return parse_midi(bytes, input_name(path));
}

void write_midi(const Performance& perf, const std::string& path) {
  for (size_t i = 0; i < perf.notes.size(); ++i) check_note(perf.notes[i], i);
  const int ppq = perf.ticks_per_quarter;
  if (ppq < 1 || ppq > 0x7FFF) throw Error("write_midi: ticks_per_quarter " + std::to_string(ppq) + ", expected 1..32767");
  if (!(perf.tempo_bpm > 0)) throw Error("write_midi: tempo_bpm must be > 0");
  for (const TempoChange& c : perf.tempo_changes)
    if (!(c.bpm > 0) || !(c.time >= 0)) throw Error("write_midi: tempo change with bpm <= 0 or negative time");
  auto tick = [&](double seconds) { return int64_t(std::llround(seconds_to_beats(perf, seconds) * ppq)); };
  auto tempo_bytes = [](double bpm) {
    const uint32_t us = uint32_t(std::clamp(std::lround(60e6 / bpm), 1L, 0xFFFFFFL));
    return std::vector<unsigned char>{0xFF, 0x51, 0x03, uint8_t(us >> 16), uint8_t(us >> 8), uint8_t(us)};
  };
  auto ts_bytes = [](const TimeSignature& ts) {
    int pow = 0;
    while ((1 << pow) < ts.denominator && pow < 6) ++pow;
    return std::vector<unsigned char>{0xFF, 0x58, 0x04, uint8_t(std::clamp(ts.numerator, 1, 255)), uint8_t(pow), 24, 8};
  };

  quiet_libsmf();
  std::unique_ptr<smf_t, SmfDeleter> smf(smf_new());
  if (!smf || smf_set_ppqn(smf.get(), ppq) != 0) throw Error("write_midi: libsmf could not create a file");
  smf_track_t* conductor = smf_track_new();
  smf_add_track(smf.get(), conductor);  // owned by smf from here on
  add_meta(conductor, 0, tempo_bytes(perf.tempo_bpm));
  add_meta(conductor, 0, ts_bytes(perf.time_signature));
  // Conductor events in time order (libsmf appends; inserting out of order is O(n) each).
  struct Meta { int64_t tick; std::vector<unsigned char> bytes; };
  std::vector<Meta> metas;
  for (const TempoChange& c : perf.tempo_changes) metas.push_back({tick(c.time), tempo_bytes(c.bpm)});
  for (const TimeSignature& ts : perf.time_signature_changes) metas.push_back({tick(ts.time), ts_bytes(ts)});
  std::stable_sort(metas.begin(), metas.end(), [](const Meta& a, const Meta& b) { return a.tick < b.tick; });
  int64_t last = 0;
  for (Meta& m : metas) {
    add_meta(conductor, m.tick, std::move(m.bytes));
    last = m.tick;
  }
  if (smf_track_add_eot_pulses(conductor, int(last)) != 0) throw Error("write_midi: libsmf rejected end-of-track");

  // One track per channel. Order at one tick: note-offs of notes begun earlier (so a re-struck
  // key is not cut), program changes, note-ons, then offs of zero-length notes (after their on).
  struct Ev { int64_t tick; int order; size_t seq; unsigned char st, a, b; };
  for (int ch = 0; ch < 16; ++ch) {
    std::vector<Ev> evs;
    int current_program = -1;
    std::vector<const Note*> notes;
    for (const Note& n : perf.notes)
      if (n.channel == ch) notes.push_back(&n);
    if (notes.empty()) continue;
    std::stable_sort(notes.begin(), notes.end(), [](const Note* a, const Note* b) { return a->start < b->start; });
    for (const Note* n : notes) {
      const int64_t on = tick(n->start), off = tick(n->end);
      if (n->program != current_program && ch != midi_drum_channel) {
        evs.push_back({on, 1, evs.size(), uint8_t(0xC0 | ch), uint8_t(n->program), 0});
        current_program = n->program;
      }
      evs.push_back({on, 2, evs.size(), uint8_t(0x90 | ch), uint8_t(n->pitch), uint8_t(n->velocity)});
      evs.push_back({off, off == on ? 3 : 0, evs.size(), uint8_t(0x80 | ch), uint8_t(n->pitch), 0});
    }
    std::sort(evs.begin(), evs.end(), [](const Ev& x, const Ev& y) {
      if (x.tick != y.tick) return x.tick < y.tick;
      if (x.order != y.order) return x.order < y.order;
      return x.seq < y.seq;
    });
    smf_track_t* track = smf_track_new();
    smf_add_track(smf.get(), track);
    for (const Ev& e : evs)
      add_event(track, smf_event_new_from_bytes(e.st, e.a, (e.st & 0xF0) == 0xC0 ? -1 : e.b), e.tick);
    if (smf_track_add_eot_pulses(track, int(evs.back().tick)) != 0)
      throw Error("write_midi: libsmf rejected end-of-track");
  }

  // Atomic: libsmf writes a sibling temporary, which is fsynced and renamed over the target.
  const std::string tmp = temporary_path(path);
  smf_last_message.clear();
  if (smf_save(smf.get(), tmp.c_str()) != 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw Error("write_midi: cannot write " + path + " (libsmf: " +
                (smf_last_message.empty() ? std::string("save failed") : smf_last_message) + ")");
  }
  commit_temporary(tmp, path);
}

}  // namespace recur
