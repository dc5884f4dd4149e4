// recur music-stats SOURCE... - pitch range, note density and share of notes in key of sets of
// pieces, side by side (music_stats.h): generated pieces next to their training data.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "recur/music/music_stats.h"

namespace recur::cli {
namespace {

struct StatsArgs {
  std::vector<std::string> sources;
  MusicSourceOptions opts;
};

void run(const StatsArgs& a) {
  std::vector<MusicStats> cols;
  for (const std::string& src : a.sources) cols.push_back(source_music_stats(src, a.opts));
  const std::string table = music_stats_table(a.sources, cols);
  std::fwrite(table.data(), 1, table.size(), stdout);
}

}  // namespace

void add_music_stats(CLI::App& app) {
  auto a = std::make_shared<StatsArgs>();
  CLI::App* sub = app.add_subcommand(
      "music-stats", "Pitch range, note density and share of notes in key of music files, one column per source");
  sub->add_option("SOURCE", a->sources, "MIDI/ABC/JSB JSON files or folders; each is one column")->required();
  sub->add_option("--split", a->opts.split, "Pieces of JSB JSON files to use")
      ->check(CLI::IsMember({"all", "train", "valid", "test"}))->capture_default_str();
  sub->add_option("--through", a->opts.through, "Measure what an encoding keeps (encode, then decode each piece)")
      ->check(CLI::IsMember({"event", "mono"}));
  sub->add_option("--channels", a->opts.channels, "Keep only notes on these MIDI channel indices (0..15)");
  sub->add_option("--jsb-steps-per-quarter", a->opts.jsb_steps_per_quarter, "JSB JSON time steps per quarter (0 = from the file name)");
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
