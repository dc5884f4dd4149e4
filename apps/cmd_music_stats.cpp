// recur music-stats SOURCE... - pitch range, note density and share of notes in key of sets of
// pieces, side by side (music_stats.h): generated pieces next to their training data.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "recur/music/music_corpus.h"
#include "recur/music/music_stats.h"

namespace recur::cli {
namespace {

struct StatsArgs {
  std::vector<std::string> sources;
  std::string split = "all";
  std::string through;  // "", event or mono: statistics of what the encoding keeps
  std::vector<int> channels;
  int jsb_steps = 0;
};

void run(const StatsArgs& a) {
  MusicDataOptions mo;
  mo.channels = a.channels;
  mo.valid_fraction = 0;  // MIDI and ABC pieces all land in "train"; JSB files keep their split
  mo.jsb_steps_per_quarter = a.jsb_steps;
  std::vector<std::string> names;
  std::vector<MusicStats> cols;
  for (const std::string& src : a.sources) {
    MusicSet set = load_music({src}, mo);
    std::vector<Performance> perfs;
    auto take = [&](std::vector<MusicPiece>& v) {
      for (MusicPiece& p : v) perfs.push_back(std::move(p.perf));
    };
    if (a.split == "all" || a.split == "train") take(set.train);
    if (a.split == "all" || a.split == "valid") take(set.valid);
    if (a.split == "all" || a.split == "test") take(set.test);
    if (!a.through.empty()) {
      const MusicEncoding enc = parse_music_encoding(a.through);
      for (Performance& p : perfs) p = decode_music(encode_music(p, enc), enc, {}, src);
    }
    names.push_back(src);
    cols.push_back(compute_music_stats(perfs));
  }
  // A Markdown table, one column per source, so it pastes into BENCHMARKS.md as it is.
  std::string head = "| statistic |", rule = "|---|";
  for (const std::string& n : names) head += " " + n + " |", rule += "---:|";
  std::printf("%s\n%s\n", head.c_str(), rule.c_str());
  auto row = [&](const char* label, auto&& cell) {
    std::string line = std::string("| ") + label + " |";
    for (const MusicStats& s : cols) line += " " + cell(s) + " |";
    std::printf("%s\n", line.c_str());
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
}

}  // namespace

void add_music_stats(CLI::App& app) {
  auto a = std::make_shared<StatsArgs>();
  CLI::App* sub = app.add_subcommand(
      "music-stats", "Pitch range, note density and share of notes in key of music files, one column per source");
  sub->add_option("SOURCE", a->sources, "MIDI/ABC/JSB JSON files or folders; each is one column")->required();
  sub->add_option("--split", a->split, "Pieces of JSB JSON files to use")
      ->check(CLI::IsMember({"all", "train", "valid", "test"}))->capture_default_str();
  sub->add_option("--through", a->through, "Measure what an encoding keeps (encode, then decode each piece)")
      ->check(CLI::IsMember({"event", "mono"}));
  sub->add_option("--channels", a->channels, "Keep only notes on these MIDI channel indices (0..15)");
  sub->add_option("--jsb-steps-per-quarter", a->jsb_steps, "JSB JSON time steps per quarter (0 = from the file name)");
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
