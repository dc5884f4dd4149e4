// recur music-stats SOURCE... - pitch range, note density and share of notes in key of sets of
// pieces, side by side (music_stats.h): generated pieces next to their training data.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli_io.h"
#include "commands.h"
#include "recur/music/music_stats.h"

namespace recur::cli {
namespace {

struct StatsArgs {
  std::vector<std::string> sources;
  MusicSourceOptions opts;
  std::string out;
  bool json = false;
};

void run(const StatsArgs& a) {
  std::vector<MusicStats> cols;
  for (const std::string& src : a.sources) cols.push_back(source_music_stats(src, a.opts));
  if (a.json) {
    // One object; the fields are MusicStats' (music_stats.h), one entry per source in order.
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (size_t i = 0; i < cols.size(); ++i) {
      const MusicStats& m = cols[i];
      list.push_back({{"source", a.sources[i]},
                      {"pieces", m.pieces},
                      {"notes", m.notes},
                      {"seconds", json_number(m.seconds)},
                      {"pitch_min", m.pitch_min},
                      {"pitch_max", m.pitch_max},
                      {"pitch_mean", json_number(m.pitch_mean)},
                      {"pitch_std", json_number(m.pitch_std)},
                      {"pitch_range_mean", json_number(m.pitch_range_mean)},
                      {"notes_per_second", json_number(m.notes_per_second)},
                      {"mean_duration", json_number(m.mean_duration)},
                      {"polyphony", json_number(m.polyphony)},
                      {"in_key", json_number(m.in_key)},
                      {"key_correlation", json_number(m.key_correlation)}});
    }
    return write_result(a.out, json_line({{"sources", list}}), "the statistics");
  }
  write_result(a.out, music_stats_table(a.sources, cols), "the statistics");
}

}  // namespace

void add_music_stats(CLI::App& app) {
  auto a = std::make_shared<StatsArgs>();
  CLI::App* sub = app.add_subcommand(
      "music-stats", "Pitch range, note density and share of notes in key of music files, one column per source");
  sub->add_option("SOURCE", a->sources,
                  "MIDI/ABC/JSB JSON files or folders; each is one column (the kind is told by the file name, so not '-')")
      ->required();
  add_output_option(sub, a->out, "the table");
  add_json_flag(sub, a->json, "one JSON object {sources: [{source, pieces, notes, ...}]}");
  sub->add_option("--split", a->opts.split, "Pieces of JSB JSON files to use")
      ->check(CLI::IsMember({"all", "train", "valid", "test"}))->capture_default_str();
  sub->add_option("--through", a->opts.through, "Measure what an encoding keeps (encode, then decode each piece)")
      ->check(CLI::IsMember({"event", "mono", "duration"}));
  sub->add_option("--channels", a->opts.channels, "Keep only notes on these MIDI channel indices (0..15)");
  sub->add_option("--jsb-steps-per-quarter", a->opts.jsb_steps_per_quarter, "JSB JSON time steps per quarter (0 = from the file name)");
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
