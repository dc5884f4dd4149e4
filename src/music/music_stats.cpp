#include "recur/music/music_stats.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <utility>

#include "recur/core/error.h"
#include "recur/music/music_corpus.h"
#include "recur/music/music_tokens.h"

namespace recur {

namespace {

// Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
constexpr std::array<double, 12> kMajor = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
constexpr std::array<double, 12> kMinor = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17};
constexpr std::array<bool, 12> kMajorScale = {1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1};
// Natural minor plus the raised 7th (see the header).
constexpr std::array<bool, 12> kMinorScale = {1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1};

double pearson(const std::array<double, 12>& x, const std::array<double, 12>& y) {
  double mx = 0, my = 0;
  for (int i = 0; i < 12; ++i) mx += x[size_t(i)], my += y[size_t(i)];
  mx /= 12, my /= 12;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < 12; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
}

bool pitched(const Note& n) { return n.channel != midi_drum_channel; }

}  // namespace

std::string MusicKey::name() const {
  static const char* names[] = {"C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"};
  return std::string(names[tonic % 12]) + (minor ? " minor" : " major");
}

bool MusicKey::in_scale(int pitch) const {
  const size_t degree = size_t(((pitch - tonic) % 12 + 12) % 12);
  return minor ? kMinorScale[degree] : kMajorScale[degree];
}

MusicKey estimate_key(const Performance& perf) {
  std::array<double, 12> hist{};
  for (const Note& n : perf.notes)
    if (pitched(n)) hist[size_t(n.pitch % 12)] += std::max(n.end - n.start, 1e-3);  // 0-length notes still count
  MusicKey best;
  best.correlation = -2;
  for (int minor = 0; minor < 2; ++minor) {
    for (int tonic = 0; tonic < 12; ++tonic) {
      std::array<double, 12> prof{};
      for (size_t pc = 0; pc < 12; ++pc) prof[pc] = (minor ? kMinor : kMajor)[(pc + 12 - size_t(tonic)) % 12];
      const double r = pearson(hist, prof);
      if (r > best.correlation) best = {tonic, minor != 0, r};
    }
  }
  if (best.correlation < -1) best = {};
  return best;
}

MusicStats compute_music_stats(const std::vector<Performance>& pieces) {
  MusicStats s;
  s.pieces = pieces.size();
  double sum = 0, sum2 = 0, dur = 0, range_sum = 0, key_corr = 0, sounding = 0, busy = 0;
  size_t in_key = 0, ranged = 0;
  s.pitch_min = 127;
  s.pitch_max = 0;
  for (const Performance& p : pieces) {
    double first = 0, last = 0;
    int lo = 127, hi = -1;
    bool any = false;
    const MusicKey key = estimate_key(p);
    // Polyphony: note-time over the time covered by at least one note (a sweep over on/off events).
    std::vector<std::pair<double, int>> ev;
    for (const Note& n : p.notes) {
      if (!pitched(n)) continue;
      if (!any) first = n.start, last = n.end;
      any = true;
      first = std::min(first, n.start);
      last = std::max(last, n.end);
      lo = std::min(lo, n.pitch);
      hi = std::max(hi, n.pitch);
      ++s.notes;
      sum += n.pitch;
      sum2 += double(n.pitch) * n.pitch;
      dur += n.end - n.start;
      in_key += key.in_scale(n.pitch);
      ev.emplace_back(n.start, +1);
      ev.emplace_back(n.end, -1);
    }
    if (!any) continue;
    std::sort(ev.begin(), ev.end());
    int active = 0;
    double prev = ev.front().first;
    for (const auto& [t, d] : ev) {
      if (active > 0) sounding += double(active) * (t - prev), busy += t - prev;
      active += d;
      prev = t;
    }
    s.seconds += last - first;
    s.pitch_min = std::min(s.pitch_min, lo);
    s.pitch_max = std::max(s.pitch_max, hi);
    range_sum += hi - lo;
    key_corr += key.correlation;
    ++ranged;
  }
  if (s.notes == 0) {
    s.pitch_min = s.pitch_max = 0;
    return s;
  }
  const double n = double(s.notes);
  s.pitch_mean = sum / n;
  s.pitch_std = std::sqrt(std::max(0.0, sum2 / n - s.pitch_mean * s.pitch_mean));
  s.pitch_range_mean = range_sum / double(ranged);
  s.notes_per_second = s.seconds > 0 ? n / s.seconds : 0.0;
  s.mean_duration = dur / n;
  s.polyphony = busy > 0 ? sounding / busy : 0.0;
  s.in_key = double(in_key) / n;
  s.key_correlation = key_corr / double(ranged);
  return s;
}

MusicStats source_music_stats(const std::string& source, const MusicSourceOptions& opts) {
  if (opts.split != "all" && opts.split != "train" && opts.split != "valid" && opts.split != "test")
    throw Error("--split: got '" + opts.split + "', expected all, train, valid or test");
  MusicDataOptions mo;
  mo.channels = opts.channels;
  mo.valid_fraction = 0;  // MIDI and ABC pieces all land in "train"; JSB files keep their split
  mo.jsb_steps_per_quarter = opts.jsb_steps_per_quarter;
  MusicSet set = load_music({source}, mo);
  std::vector<Performance> perfs;
  auto take = [&](std::vector<MusicPiece>& v) {
    for (MusicPiece& p : v) perfs.push_back(std::move(p.perf));
  };
  if (opts.split == "all" || opts.split == "train") take(set.train);
  if (opts.split == "all" || opts.split == "valid") take(set.valid);
  if (opts.split == "all" || opts.split == "test") take(set.test);
  if (!opts.through.empty()) {
    const MusicEncoding enc = parse_music_encoding(opts.through);
    for (Performance& p : perfs) p = decode_music(encode_music(p, enc), enc, {}, source);
  }
  return compute_music_stats(perfs);
}

std::string music_stats_table(const std::vector<std::string>& names, const std::vector<MusicStats>& stats) {
  std::string out = "| statistic |";
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict, PR105329) on "literal" + string.
  for (const std::string& n : names) out.append(" ").append(n).append(" |");
  out += "\n|---|";
  for (size_t i = 0; i < names.size(); ++i) out += "---:|";
  out += "\n";
  auto row = [&](const char* label, auto&& cell) {
    out.append("| ").append(label).append(" |");
    for (const MusicStats& s : stats) out.append(" ").append(cell(s)).append(" |");
    out += "\n";
  };
  auto f = [](const char* fmt, auto... v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v...);
    return std::string(buf);
  };
  row("pieces", [&](const MusicStats& s) { return f("%zu", s.pieces); });
  row("notes", [&](const MusicStats& s) { return f("%zu", s.notes); });
  row("seconds", [&](const MusicStats& s) { return f("%.1f", s.seconds); });
  row("pitch range (all)", [&](const MusicStats& s) { return f("%d-%d", s.pitch_min, s.pitch_max); });
  row("pitch range per piece", [&](const MusicStats& s) { return f("%.1f", s.pitch_range_mean); });
  row("mean pitch (std)", [&](const MusicStats& s) { return f("%.1f (%.1f)", s.pitch_mean, s.pitch_std); });
  row("notes per second", [&](const MusicStats& s) { return f("%.2f", s.notes_per_second); });
  row("mean note length (s)", [&](const MusicStats& s) { return f("%.3f", s.mean_duration); });
  row("polyphony", [&](const MusicStats& s) { return f("%.2f", s.polyphony); });
  row("notes in key", [&](const MusicStats& s) { return f("%.1f%%", 100.0 * s.in_key); });
  row("key fit (K-S r)", [&](const MusicStats& s) { return f("%.2f", s.key_correlation); });
  return out;
}

}  // namespace recur
