#include "recur/music/music_corpus.h"

#include <algorithm>
#include <functional>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "json_fields.h"
#include "recur/music/jsb_chorales.h"
#include "recur/core/random.h"
#include "run_program.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kPieceHoldoutSeed = 0x7069656365ULL;  // "piece": its own stream, as the trainer's seeds

std::string lower_ext(const std::string& path) {
  std::string e = fs::path(path).extension().string();
  for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
  return e;
}
bool is_music_ext(const std::string& e) { return e == ".mid" || e == ".midi" || e == ".abc" || e == ".json"; }

void sort_notes(std::vector<Note>& notes) {
  std::sort(notes.begin(), notes.end(), [](const Note& a, const Note& b) {
    if (a.start != b.start) return a.start < b.start;
    if (a.pitch != b.pitch) return a.pitch < b.pitch;
    if (a.channel != b.channel) return a.channel < b.channel;
    return a.end < b.end;
  });
}

// Only the channels asked for (the solo of a multi-track file, say).
void filter_channels(Performance& p, const std::vector<int>& channels) {
  if (channels.empty()) return;
  std::erase_if(p.notes, [&](const Note& n) {
    return std::find(channels.begin(), channels.end(), n.channel) == channels.end();
  });
}

// Every tune of an .abc file through abc2midi. abc2midi writes <stem><X>.mid next to its input,
// so the input is copied into a private temporary folder first (never write beside user data).
std::vector<MusicPiece> read_abc(const std::string& path, const MusicDataOptions& opts) {
  const std::string prog = detail::find_program(opts.abc2midi);
  if (prog.empty())
    throw Error(path + ": converting ABC notation needs " + opts.abc2midi +
                ", which is not installed; install it with scripts/setup.sh music (Debian package abcmidi) or "
                "convert the tunes to .mid first");
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw FormatError(path + ": cannot open the file");
  probe.close();
  detail::TempDir tmp("recur-abc-");
  if (!tmp.ok()) throw Error(path + ": cannot create a temporary folder for abc2midi");
  std::error_code ec;
  fs::copy_file(path, fs::path(tmp.path()) / "tunes.abc", ec);
  if (ec) throw Error(path + ": cannot copy to " + tmp.path() + ": " + ec.message());
  const std::string log = (fs::path(tmp.path()) / "abc2midi.log").string();
  const int rc = detail::run_program({prog, "tunes.abc", "-silent"}, tmp.path(), log);
  std::vector<std::pair<long, std::string>> files;  // (tune reference number, file)
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    const std::string name = e.path().filename().string();
    if (name.size() > 9 && name.rfind("tunes", 0) == 0 && lower_ext(name) == ".mid")
      files.emplace_back(std::strtol(name.c_str() + 5, nullptr, 10), e.path().string());
  }
  if (files.empty()) {
    const std::string why = detail::last_log_line(log);
    throw FormatError(path + ": abc2midi (exit status " + std::to_string(rc) + ") wrote no MIDI file" +
                      (why.empty() ? std::string() : ": " + why) + "; expected ABC tunes with X: and K: fields");
  }
  std::sort(files.begin(), files.end());
  std::vector<MusicPiece> out;
  for (const auto& [x, file] : files) {
    try {
      out.push_back({path + "#" + std::to_string(x), read_midi(file)});
    } catch (const Error& e) {
      throw FormatError(path + ": tune X:" + std::to_string(x) + ": abc2midi's MIDI is unreadable: " + e.what());
    }
  }
  return out;
}

// A JSB file's steps per quarter from its name: jsb-chorales-16th.json, -8th, -quarter.
int jsb_steps_for(const std::string& path, int given) {
  if (given > 0) return given;
  const std::string name = fs::path(path).filename().string();
  if (name.find("16th") != std::string::npos) return 4;
  if (name.find("8th") != std::string::npos) return 2;
  return 1;
}

// Inputs expanded to files: folders to their music files, in name order.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  if (inputs.empty()) throw Error("DATA: missing; expected MIDI, ABC or JSB JSON files, or a folder of them");
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(in, ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name[0] == '.' || e.is_directory(ec)) continue;  // hidden files, subfolders
        if (!is_music_ext(lower_ext(name)))
          throw FormatError(e.path().string() +
                            ": not a music file; expected only .mid, .midi, .abc or .json (JSB chorales) files in a "
                            "training folder (move it out or name the files to train on)");
        found.push_back(e.path().string());
      }
      if (ec) throw Error(in + ": cannot list the folder: " + ec.message());
      if (found.empty()) throw Error(in + ": no music files (.mid, .midi, .abc, .json) in this folder");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (!fs::exists(in, ec)) {
      throw FormatError(in + ": no such file or folder");
    } else {
      files.push_back(in);
    }
  }
  return files;
}

struct ReadResult {
  std::vector<MusicPiece> unsplit;  // MIDI and ABC pieces
  JsbChorales jsb;                  // pieces with their own split (names in jsb_names)
  std::vector<std::string> jsb_train, jsb_valid, jsb_test;
};

ReadResult read_inputs(const std::vector<std::string>& inputs, const MusicDataOptions& opts) {
  opts.validate();
  ReadResult r;
  for (const std::string& file : expand_inputs(inputs)) {
    const std::string e = lower_ext(file);
    if (e == ".abc") {
      for (MusicPiece& p : read_abc(file, opts)) r.unsplit.push_back(std::move(p));
    } else if (e == ".json") {
      JsbChorales j = read_jsb_chorales(file, {.steps_per_quarter = jsb_steps_for(file, opts.jsb_steps_per_quarter)});
      auto take = [&](std::vector<Performance>& from, std::vector<Performance>& to, std::vector<std::string>& names,
                      const char* split) {
        for (size_t i = 0; i < from.size(); ++i) {
          names.push_back(file + ":" + split + "[" + std::to_string(i) + "]");
          to.push_back(std::move(from[i]));
        }
      };
      take(j.train, r.jsb.train, r.jsb_train, "train");
      take(j.valid, r.jsb.valid, r.jsb_valid, "valid");
      take(j.test, r.jsb.test, r.jsb_test, "test");
    } else {
      r.unsplit.push_back({file, read_midi(file)});  // any other name is read as MIDI: errors name it
    }
  }
  for (auto* v : {&r.jsb.train, &r.jsb.valid, &r.jsb.test})
    for (Performance& p : *v) filter_channels(p, opts.channels);
  for (MusicPiece& p : r.unsplit) filter_channels(p.perf, opts.channels);
  return r;
}

template <typename T>
T median_of(std::vector<T> v, T fallback) {
  if (v.empty()) return fallback;
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
  return v[v.size() / 2];
}

std::string join_tokens(const std::vector<std::string>& toks, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < to; ++i) {
    if (i > from) s += ' ';
    s += toks[i];
  }
  return s;
}

}  // namespace

void MusicDataOptions::validate() const {
  for (int c : channels)
    if (c < 0 || c > 15) throw Error("--channels: got " + std::to_string(c) + ", expected channel indices 0..15");
  if (transpose_min > transpose_max || transpose_min < -24 || transpose_max > 24)
    throw Error("--transpose: got " + std::to_string(transpose_min) + ".." + std::to_string(transpose_max) +
                ", expected MIN..MAX semitones with -24 <= MIN <= MAX <= 24");
  if (!(valid_fraction >= 0 && valid_fraction < 1))
    throw Error("--valid-fraction: got " + std::to_string(valid_fraction) + ", expected a fraction in [0, 1)");
  if (jsb_steps_per_quarter < 0) throw Error("--jsb-steps-per-quarter: expected 0 (from the file name) or >= 1");
}

MusicSet load_music(const std::vector<std::string>& inputs, const MusicDataOptions& opts) {
  ReadResult r = read_inputs(inputs, opts);
  MusicSet set;
  for (size_t i = 0; i < r.jsb.train.size(); ++i) set.train.push_back({r.jsb_train[i], std::move(r.jsb.train[i])});
  for (size_t i = 0; i < r.jsb.valid.size(); ++i) set.valid.push_back({r.jsb_valid[i], std::move(r.jsb.valid[i])});
  for (size_t i = 0; i < r.jsb.test.size(); ++i) set.test.push_back({r.jsb_test[i], std::move(r.jsb.test[i])});
  // Pieces without a split: a random valid_fraction of them is held out (whole pieces, so no
  // piece is both learnt and used to measure).
  const size_t n = r.unsplit.size();
  size_t hold = 0;
  if (opts.valid_fraction > 0 && n >= 2)
    hold = std::clamp<size_t>(size_t(std::llround(opts.valid_fraction * double(n))), 1, n - 1);
  else if (opts.valid_fraction > 0 && n == 1 && set.valid.empty())
    set.notes.push_back("a single piece: training without validation");
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  Rng rng(opts.seed ^ kPieceHoldoutSeed);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[size_t(rng.below(i))]);  // Fisher-Yates
  std::vector<char> held(n, 0);
  for (size_t i = 0; i < hold; ++i) held[order[i]] = 1;
  for (size_t i = 0; i < n; ++i) (held[i] ? set.valid : set.train).push_back(std::move(r.unsplit[i]));
  if (hold > 0) set.notes.push_back(std::to_string(hold) + " of " + std::to_string(n) + " pieces held out for validation");
  return set;
}

std::vector<MusicPiece> read_music_pieces(const std::vector<std::string>& inputs, const MusicDataOptions& opts) {
  MusicDataOptions o = opts;
  o.valid_fraction = 0;
  MusicSet s = load_music(inputs, o);
  std::vector<MusicPiece> all = std::move(s.train);
  for (auto* v : {&s.valid, &s.test})
    for (MusicPiece& p : *v) all.push_back(std::move(p));
  return all;
}

Performance transpose_performance(const Performance& perf, int semitones, size_t* dropped) {
  Performance out = perf;
  if (semitones == 0) return out;
  out.notes.clear();
  for (Note n : perf.notes) {
    if (n.channel != midi_drum_channel) {
      n.pitch += semitones;
      if (n.pitch < 0 || n.pitch > 127) {
        if (dropped) ++*dropped;
        continue;
      }
    }
    out.notes.push_back(n);
  }
  sort_notes(out.notes);
  return out;
}

Performance first_bars(const Performance& perf, double bars) {
  if (!(bars > 0) || !std::isfinite(bars)) throw Error("--prime-bars: expected a number of bars > 0");
  const TimeSignature& ts = perf.time_signature;
  const double bar_quarters = double(ts.numerator) * 4.0 / double(ts.denominator);
  const double end_s = beats_to_seconds(perf, bars * bar_quarters);
  Performance out = perf;
  out.notes.clear();
  for (Note n : perf.notes) {
    if (n.start >= end_s) continue;
    n.end = std::min(n.end, end_s);
    out.notes.push_back(n);
  }
  std::erase_if(out.tempo_changes, [&](const TempoChange& t) { return t.time >= end_s; });
  std::erase_if(out.time_signature_changes, [&](const TimeSignature& t) { return t.time >= end_s; });
  out.end_time = std::min(perf.end_time, end_s);
  return out;
}

std::string MusicTask::to_json() const {
  nlohmann::ordered_json j = {{"task", "music"},
                              {"encoding", music_encoding_name(encoding)},
                              {"keep_drums", tokens.keep_drums},
                              {"channels", channels},
                              {"transpose", {transpose_min, transpose_max}},
                              {"tempo_bpm", tokens.tempo_bpm},
                              {"program", tokens.program},
                              {"velocity", tokens.velocity}};
  if (max_note_seconds > 0) j["max_note_seconds"] = max_note_seconds;
  if (max_polyphony > 0) j["max_polyphony"] = max_polyphony;
  return j.dump();
}


bool is_music_task(std::string_view task_json) {
  if (task_json.empty()) return false;
  try {
    const auto j = parse_json(task_json, "task", "a task record");
    return j.is_object() && j.contains("task") && j["task"] == "music";
  } catch (const FormatError&) {
    return false;  // not a music record; whoever reads it as its own kind reports what is wrong
  }
}

MusicTask music_task_from_json(std::string_view task_json, std::string_view origin) {
  JsonFields f(task_json, std::string(origin) + ": metadata \"task\"");
  MusicTask t;
  if (f.string("task") != "music") f.fail("task", "\"music\"");
  const std::string enc = f.string("encoding");
  if (enc != "event" && enc != "mono" && enc != "duration") f.fail("encoding", "\"event\", \"mono\" or \"duration\"");
  t.encoding = parse_music_encoding(enc);
  t.tokens.keep_drums = f.boolean("keep_drums");
  const auto& ch = f.raw("channels");
  if (!ch.is_array()) f.fail("channels", "an array of channel indices 0..15");
  for (const auto& c : ch) {
    if (!c.is_number_integer() || c.get<int64_t>() < 0 || c.get<int64_t>() > 15)
      f.fail("channels", "an array of channel indices 0..15");
    t.channels.push_back(c.get<int>());
  }
  const auto& tr = f.raw("transpose");
  if (!tr.is_array() || tr.size() != 2 || !tr[0].is_number_integer() || !tr[1].is_number_integer())
    f.fail("transpose", "[min, max] semitones");
  // Decoded notes go on the first channel kept in training (the solo's own channel), else 0.
  t.tokens.channel = t.channels.empty() ? 0 : t.channels.front();
  t.transpose_min = tr[0].get<int>();
  t.transpose_max = tr[1].get<int>();
  t.tokens.tempo_bpm = f.number("tempo_bpm");
  if (!(t.tokens.tempo_bpm >= 1 && t.tokens.tempo_bpm <= 1000)) f.fail("tempo_bpm", "a tempo in [1, 1000]");
  t.tokens.program = int(f.integer("program", 0, 127));
  t.tokens.velocity = int(f.integer("velocity", 1, 127));
  if (f.has("max_note_seconds")) {
    t.max_note_seconds = f.number("max_note_seconds");
    if (!(t.max_note_seconds > 0 && t.max_note_seconds <= 3600)) f.fail("max_note_seconds", "seconds in (0, 3600]");
  }
  if (f.has("max_polyphony")) t.max_polyphony = int(f.integer("max_polyphony", 1, 128));
  f.finish();
  return t;
}

std::string music_task_summary(const MusicTask& t) {
  char buf[160];
  std::string s = std::string("music, ") + music_encoding_name(t.encoding) + " encoding";
  if (t.tokens.keep_drums) s += " (drums kept)";
  if (!t.channels.empty()) {
    s += ", channels";
    for (int c : t.channels) s.append(" ").append(std::to_string(c));  // append: g++ 12 false -Wrestrict
  }
  if (t.transpose_min != 0 || t.transpose_max != 0)
    s.append(", transposed ").append(std::to_string(t.transpose_min)).append("..").append(std::to_string(t.transpose_max));
  std::snprintf(buf, sizeof buf, ", decoded at %g bpm, program %d, velocity %d", t.tokens.tempo_bpm, t.tokens.program,
                t.tokens.velocity);
  s += buf;
  if (t.encoding != MusicEncoding::mono && (t.max_note_seconds > 0 || t.max_polyphony > 0)) {
    std::snprintf(buf, sizeof buf, ", sampled notes at most %.2f s, at most %d at once", t.max_note_seconds,
                  t.max_polyphony);
    s += buf;
  }
  return s;
}

MusicTask music_task_of(const MusicSet& set, const MusicDataOptions& opts) {
  // How to play generated tokens: the training data's usual tempo, instrument and loudness; and
  // what generation holds sampled music to: its longest note and its most notes at once.
  std::map<int, int64_t> programs;
  std::vector<double> tempos;
  std::vector<int> velocities;
  double longest = 0;
  int polyphony = 0;
  for (const MusicPiece& p : set.train) {
    tempos.push_back(p.perf.tempo_bpm);
    std::vector<std::pair<double, int>> edges;  // (time, +1 on / -1 off), offs first at a tie
    for (const Note& n : p.perf.notes) {
      if (n.channel == midi_drum_channel && !opts.keep_drums) continue;
      ++programs[n.program];
      velocities.push_back(n.velocity);
      longest = std::max(longest, n.end - n.start);
      edges.emplace_back(n.start, 1);
      edges.emplace_back(n.end, -1);
    }
    std::sort(edges.begin(), edges.end());
    int sounding = 0;
    for (const auto& e : edges) polyphony = std::max(polyphony, sounding += e.second);
  }
  MusicTask task;
  task.encoding = opts.encoding;
  task.channels = opts.channels;
  task.transpose_min = opts.transpose_min;
  task.transpose_max = opts.transpose_max;
  task.tokens.keep_drums = opts.keep_drums;
  task.tokens.tempo_bpm = std::clamp(std::round(median_of(tempos, 120.0) * 100.0) / 100.0, 1.0, 1000.0);
  task.tokens.velocity = std::clamp(median_of(velocities, 80), 1, 127);
  task.tokens.program = 0;
  // At least one event step: the encoding lengthens shorter notes to one.
  task.max_note_seconds = longest > 0 ? std::min(3600.0, std::max(longest, event_time_step)) : 0;
  task.max_polyphony = std::min(polyphony, 128);
  if (opts.keep_limits) task.max_note_seconds = opts.max_note_seconds, task.max_polyphony = opts.max_polyphony;
  int64_t best = -1;
  for (const auto& [prog, count] : programs)
    if (count > best) best = count, task.tokens.program = prog;
  return task;
}

MusicCorpusStats for_each_music_line(const MusicSet& set, const MusicDataOptions& opts, TextMode mode, int64_t seq_len,
                                     const std::function<void(MusicSplit, std::string_view)>& line) {
  opts.validate();
  if (seq_len < 1) throw Error("--seq-len: expected >= 1");
  MusicCorpusStats st;
  MusicTokenOptions topts;
  topts.keep_drums = opts.keep_drums;
  // One line per piece (lines mode: per window of seq_len tokens).
  auto add = [&](const Performance& perf, MusicSplit split, int64_t& pieces, int64_t& tokens) {
    const std::vector<std::string> toks = encode_music(perf, opts.encoding, topts);
    if (toks.empty()) return;
    const size_t step = mode == TextMode::lines ? size_t(seq_len) : toks.size();
    for (size_t at = 0; at < toks.size(); at += step)
      line(split, join_tokens(toks, at, std::min(toks.size(), at + step)) + "\n");
    ++pieces;
    tokens += int64_t(toks.size());
  };
  for (const MusicPiece& p : set.train)
    for (int shift = opts.transpose_min; shift <= opts.transpose_max; ++shift)
      add(shift == 0 ? p.perf : transpose_performance(p.perf, shift, &st.transposed_out_of_range), MusicSplit::train,
          st.train_pieces, st.train_tokens);
  for (const MusicPiece& p : set.valid) add(p.perf, MusicSplit::valid, st.valid_pieces, st.valid_tokens);
  for (const MusicPiece& p : set.test) add(p.perf, MusicSplit::test, st.test_pieces, st.test_tokens);
  if (st.train_tokens == 0)
    throw Error("no notes to learn in the training pieces; expected MIDI files with pitched notes" +
                std::string(opts.channels.empty() ? "" : " on the --channels given"));
  return st;
}

TokenCorpus make_music_corpus(const MusicSet& set, const MusicDataOptions& opts, TextMode mode, int64_t seq_len,
                              MusicCorpusStats* stats) {
  TokenCorpus c;
  c.vocab = Vocab::from_tokens(TokenLevel::words, music_vocab_tokens(opts.encoding));
  const MusicCorpusStats st = for_each_music_line(set, opts, mode, seq_len, [&](MusicSplit split, std::string_view l) {
    (split == MusicSplit::train ? c.train : split == MusicSplit::valid ? c.valid : c.test) += l;
  });
  c.task = music_task_of(set, opts).to_json();
  if (stats) *stats = st;
  return c;
}

std::string music_corpus_summary(const MusicDataOptions& mo, const MusicCorpusStats& st) {
  std::string msg = std::string("music (") + music_encoding_name(mo.encoding) + "): " + std::to_string(st.train_pieces) +
                    " training pieces (" + std::to_string(st.train_tokens) + " tokens), " +
                    std::to_string(st.valid_pieces) + " validation (" + std::to_string(st.valid_tokens) + "), " +
                    std::to_string(st.test_pieces) + " test (" + std::to_string(st.test_tokens) + ")";
  if (mo.transpose_min != 0 || mo.transpose_max != 0)
    msg += "; transposed " + std::to_string(mo.transpose_min) + ".." + std::to_string(mo.transpose_max) + " (" +
           std::to_string(st.transposed_out_of_range) + " notes out of range dropped)";
  return msg;
}

std::pair<int, int> parse_transpose_range(const std::string& s) {
  auto bad = [&] {
    throw Error("--transpose: got '" + s + "', expected N (shifts -N..N) or MIN..MAX semitones, e.g. --transpose=-3..3");
  };
  auto to_int = [&](const std::string& t) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(t, &used);
    } catch (const std::exception&) {
      bad();
    }
    if (used != t.size()) bad();
    return v;
  };
  const size_t dots = s.find("..");
  if (dots == std::string::npos) {
    const int n = to_int(s);
    if (n < 0) bad();
    return {-n, n};
  }
  return {to_int(s.substr(0, dots)), to_int(s.substr(dots + 2))};
}

MusicDataOptions music_data_options(const MusicTrainRequest& r, std::string_view saved_task, std::string_view origin) {
  MusicDataOptions mo;
  if (!saved_task.empty() && is_music_task(saved_task)) {
    // A resumed run keeps the data layout: options not given again come from the checkpoint.
    const MusicTask t = music_task_from_json(saved_task, origin);
    mo.encoding = t.encoding;
    mo.transpose_min = t.transpose_min;
    mo.transpose_max = t.transpose_max;
    mo.keep_drums = t.tokens.keep_drums;
    mo.channels = t.channels;
    mo.keep_limits = true;
    mo.max_note_seconds = t.max_note_seconds;
    mo.max_polyphony = t.max_polyphony;
  }
  if (r.encoding) mo.encoding = parse_music_encoding(*r.encoding);
  if (r.transpose) std::tie(mo.transpose_min, mo.transpose_max) = parse_transpose_range(*r.transpose);
  if (r.keep_drums) mo.keep_drums = *r.keep_drums;
  if (r.channels) mo.channels = *r.channels;
  mo.valid_fraction = r.valid_fraction;
  mo.seed = r.seed;
  mo.jsb_steps_per_quarter = r.jsb_steps_per_quarter;
  mo.validate();
  return mo;
}

}  // namespace recur
