// End-to-end tests of music language models: `recur train --task music` on a tiny corpus made
// with write_midi, `recur sample --midi-out/--wav-out/--seconds/--prime-midi`, `recur info`,
// `recur music-stats`, and the one-line errors for bad inputs. Plus the library pieces the CLI
// relies on (transposition, first bars, key estimation, the task record). Runs in seconds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "recur/music/midi.h"
#include "recur/music/music_corpus.h"
#include "recur/music/music_generate.h"
#include "recur/music/music_stats.h"
#include "recur/music/music_tokens.h"
#include "recur/train/checkpoint.h"

#include "cli_run.h"

namespace fs = std::filesystem;
using namespace recur;

namespace {

using Result = recur::test::CliResult;
using recur::test::slurp;

// A short tune in C major: an arpeggio and a scale in eighths and quarters, with a bass note.
Performance tune(int variant) {
  Performance p;
  p.tempo_bpm = 120;
  const int scale[] = {60, 62, 64, 65, 67, 69, 71, 72};
  double t = 0;
  for (int i = 0; i < 16; ++i) {
    const double len = (i + variant) % 3 == 0 ? 0.5 : 0.25;
    const int pitch = scale[(i * (variant + 1)) % 8];
    p.notes.push_back({.pitch = pitch, .velocity = 80, .channel = 0, .program = 0, .start = t, .end = t + len});
    if (i % 4 == 0) p.notes.push_back({.pitch = 48, .velocity = 70, .channel = 1, .program = 32, .start = t, .end = t + 1.0});
    t += len;
  }
  std::sort(p.notes.begin(), p.notes.end(), [](const Note& a, const Note& b) {
    return a.start != b.start ? a.start < b.start : a.pitch < b.pitch;
  });
  p.end_time = t + 0.5;
  return p;
}

class MusicCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_music_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "corpus");
    for (int v = 0; v < 5; ++v) write_midi(tune(v), (dir_ / "corpus" / ("tune" + std::to_string(v) + ".mid")).string());
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs `[env] recur <args>` (args are shell words, already quoted where needed).
  Result run(const std::string& args, const std::string& env = "") { return recur::test::run_recur(args, dir_, env); }
  // A tiny model trained for a few steps; returns the checkpoint.
  std::string train(const std::string& extra = "") {
    const Result r = run("train --task music '" + path("corpus") + "' --out '" + path("run") +
                         "' --hidden 16 --layers 1 --batch 2 --seq-len 16 --steps 6 --threads 1 --valid-fraction 0.2 "
                         "--force --quiet " + extra);
    EXPECT_EQ(r.rc, 0) << r.err;
    return path("run/last.safetensors");
  }

  fs::path dir_;
};

size_t lines_of(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

bool has_fluidsynth() {
  return std::system("command -v fluidsynth >/dev/null 2>&1") == 0 && !default_soundfont().empty();
}

// Longest sounding stretch and most notes at once of a performance (offs before ons at a tie).
std::pair<double, int> longest_and_polyphony(const Performance& p) {
  double longest = 0;
  std::vector<std::pair<double, int>> edges;
  for (const Note& n : p.notes) {
    longest = std::max(longest, n.end - n.start);
    edges.emplace_back(n.start, 1);
    edges.emplace_back(n.end, -1);
  }
  std::sort(edges.begin(), edges.end());
  int sounding = 0, most = 0;
  for (const auto& e : edges) most = std::max(most, sounding += e.second);
  return {longest, most};
}

// The tunes' longest note is the 1 s bass note and at most 2 notes sound at once: a barely
// trained model drawing freely exceeds both, the default sampling never does (issue 17).
TEST_F(MusicCli, SampledNotesStayWithinTheDatasLongestNoteAndPolyphony) {
  const std::string model = train("--encoding event --transpose=-1..1");
  const Result info = run("info '" + model + "'");
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_NE(info.out.find("sampled notes at most 1.00 s, at most 2 at once"), std::string::npos) << info.out;
  const LmModel lm = load_checkpoint(model).model;
  const MusicTask task = music_task_from_json(lm.task, model);
  EXPECT_DOUBLE_EQ(task.max_note_seconds, 1.0);
  EXPECT_EQ(task.max_polyphony, 2);
  size_t held_notes = 0;
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    MusicGenerateOptions o;
    o.length = 1500;
    o.limit_to_data = false;
    Rng free_rng(seed);
    const MusicSample free = generate_music(lm, o, free_rng);
    const auto [free_longest, free_poly] = longest_and_polyphony(free.perf);
    EXPECT_TRUE(free_longest > 1.05 || free_poly > 2) << free_longest << " s, " << free_poly << " at once";
    EXPECT_EQ(free.forced_note_offs, 0);

    o.limit_to_data = true;
    Rng rng(seed);
    const MusicSample held = generate_music(lm, o, rng);
    const auto [longest, poly] = longest_and_polyphony(held.perf);
    EXPECT_LE(longest, 1.0 + 1e-9);
    EXPECT_LE(poly, 2);
    held_notes += held.perf.notes.size();
    EXPECT_EQ(int64_t(held.tokens.size()), held.generated_tokens);
    // Every NOTE_OFF ends a sounding note and no NOTE_ON re-strikes one.
    std::set<std::string> sounding;
    for (const std::string& t : held.tokens) {
      if (t.rfind("NOTE_ON_", 0) == 0) {
        EXPECT_TRUE(sounding.insert(t.substr(8)).second) << t;
      }
      if (t.rfind("NOTE_OFF_", 0) == 0) {
        EXPECT_EQ(sounding.erase(t.substr(9)), 1u) << t;
      }
    }
  }
  EXPECT_GT(held_notes, 30u);
}

// The duration encoding ends every note by its own DUR: a barely trained model drawing freely
// writes notes longer than the data's longest or more at once than its most (or breaks the
// NOTE-DUR grammar); held to the data, never, and no token is inserted.
TEST_F(MusicCli, DurationEncodingSamplesHeldToTheDataWithoutInsertedTokens) {
  const std::string model = train("--encoding duration --transpose=-1..1");
  const LmModel lm = load_checkpoint(model).model;
  const MusicTask task = music_task_from_json(lm.task, model);
  ASSERT_EQ(task.encoding, MusicEncoding::duration);
  EXPECT_DOUBLE_EQ(task.max_note_seconds, 1.0);
  EXPECT_EQ(task.max_polyphony, 2);
  size_t held_notes = 0;
  bool free_broke_a_limit = false;
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    MusicGenerateOptions o;
    o.length = 1500;
    o.limit_to_data = false;
    Rng free_rng(seed);
    const MusicSample free = generate_music(lm, o, free_rng);
    const auto [free_longest, free_poly] = longest_and_polyphony(free.perf);
    free_broke_a_limit |= free_longest > 1.0 + 1e-9 || free_poly > 2;

    o.limit_to_data = true;
    Rng rng(seed);
    const MusicSample held = generate_music(lm, o, rng);
    const auto [longest, poly] = longest_and_polyphony(held.perf);
    EXPECT_LE(longest, 1.0 + 1e-9);
    EXPECT_LE(poly, 2);
    EXPECT_EQ(held.forced_note_offs, 0);
    EXPECT_EQ(int64_t(held.tokens.size()), held.generated_tokens);
    held_notes += held.perf.notes.size();
    // NOTE is always followed by DUR, and DUR always follows a NOTE.
    for (size_t i = 0; i < held.tokens.size(); ++i) {
      const bool note = held.tokens[i].rfind("NOTE_", 0) == 0;
      const bool dur = held.tokens[i].rfind("DUR_", 0) == 0;
      if (note && i + 1 < held.tokens.size()) {
        EXPECT_EQ(held.tokens[i + 1].rfind("DUR_", 0), 0u) << i;
      }
      if (dur) {
        EXPECT_TRUE(i > 0 && held.tokens[i - 1].rfind("NOTE_", 0) == 0) << i;
      }
    }
  }
  EXPECT_TRUE(free_broke_a_limit);
  EXPECT_GT(held_notes, 30u);
  const Result info = run("info '" + model + "'");
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_NE(info.out.find("music, duration encoding"), std::string::npos) << info.out;
}

TEST_F(MusicCli, TrainSampleMidiReadsBack) {
  const std::string model = train("--transpose=-2..2");  // the default encoding
  const Result info = run("info '" + model + "'");
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_NE(info.out.find("task         music, duration encoding"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("transposed -2..2"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("best valid   loss"), std::string::npos) << info.out;

  const Result s = run("sample '" + model + "' --midi-out '" + path("a.mid") + "' --length 200 --seed 7");
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_NE(s.err.find("-> " + path("a.mid")), std::string::npos) << s.err;
  const Performance p = read_midi(path("a.mid"));
  EXPECT_GT(p.notes.size(), 0u);
  for (const Note& n : p.notes) EXPECT_TRUE(n.pitch >= 0 && n.pitch <= 127);

  // Same seed, same bytes; another seed, (almost surely) other bytes.
  ASSERT_EQ(run("sample '" + model + "' --midi-out '" + path("b.mid") + "' --length 200 --seed 7").rc, 0);
  EXPECT_EQ(slurp(path("a.mid")), slurp(path("b.mid")));
  ASSERT_EQ(run("sample '" + model + "' --midi-out '" + path("c.mid") + "' --length 200 --seed 8").rc, 0);
  EXPECT_NE(slurp(path("a.mid")), slurp(path("c.mid")));

  // An int8 export of the music model samples through its compressed weights: a MIDI file of
  // valid notes, the same bytes for the same seed.
  ASSERT_EQ(run("export '" + model + "' '" + path("m8.safetensors") + "' --precision int8").rc, 0);
  for (const char* f : {"q1.mid", "q2.mid"})
    ASSERT_EQ(run("sample '" + path("m8.safetensors") + "' --midi-out '" + path(f) + "' --length 200 --seed 7").rc, 0);
  EXPECT_EQ(slurp(path("q1.mid")), slurp(path("q2.mid")));
  EXPECT_GT(read_midi(path("q1.mid")).notes.size(), 0u);

  // Greedy decoding is deterministic whatever the seed; top-k and temperature are accepted.
  ASSERT_EQ(run("sample '" + model + "' --midi-out '" + path("g1.mid") + "' --length 60 --argmax --seed 1").rc, 0);
  ASSERT_EQ(run("sample '" + model + "' --midi-out '" + path("g2.mid") + "' --length 60 --argmax --seed 2").rc, 0);
  EXPECT_EQ(slurp(path("g1.mid")), slurp(path("g2.mid")));
  EXPECT_EQ(run("sample '" + model + "' --midi-out '" + path("k.mid") + "' --length 60 --top-k 5 --temperature 0.8").rc,
            0);

  // Without --midi-out: one line of tokens per piece.
  const Result toks = run("sample '" + model + "' --length 30 --count 2");
  ASSERT_EQ(toks.rc, 0) << toks.err;
  EXPECT_EQ(lines_of(toks.out), 2u);
}

TEST_F(MusicCli, SecondsAndPrime) {
  const std::string model = train("--encoding mono");
  const Result s = run("sample '" + model + "' --midi-out '" + path("s.mid") + "' --seconds 3 --seed 3");
  ASSERT_EQ(s.rc, 0) << s.err;
  const Performance p = read_midi(path("s.mid"));
  // mono at the data's 120 bpm: the last token may overshoot by at most a whole note (2 s).
  if (s.err.find("ended by the model") == std::string::npos) {
    EXPECT_GE(p.end_time, 3.0 - 1e-6);
  }
  EXPECT_LE(p.end_time, 5.0 + 1e-6);

  // The first bar of a tune comes back as the start of the piece.
  const std::string prime = path("corpus/tune0.mid");
  const Result q = run("sample '" + model + "' --midi-out '" + path("p.mid") + "' --prime-midi '" + prime +
                       "' --prime-bars 1 --length 20 --seed 3");
  ASSERT_EQ(q.rc, 0) << q.err;
  const Performance out = read_midi(path("p.mid"));
  ASSERT_GE(out.notes.size(), 1u);
  EXPECT_EQ(out.notes[0].pitch, 60);  // mono keeps the top line: the tune's first melody note
  EXPECT_NE(q.err.find("prime)"), std::string::npos);
}

TEST_F(MusicCli, WavOutClearErrorOrWorks) {
  const std::string model = train();
  // No fluidsynth in PATH: one clear line saying how to install it.
  const Result e = run("sample '" + model + "' --wav-out '" + path("x.wav") + "' --length 40", "PATH=/nonexistent");
  EXPECT_EQ(e.rc, 1);
  EXPECT_EQ(lines_of(e.err), 1u) << e.err;
  EXPECT_NE(e.err.find("fluidsynth is not installed"), std::string::npos) << e.err;
  EXPECT_NE(e.err.find("scripts/setup.sh music"), std::string::npos) << e.err;
  EXPECT_FALSE(fs::exists(path("x.wav")));
  EXPECT_FALSE(fs::exists(path("x.wav.tmp.mid")));
  if (has_fluidsynth()) {
    const Result w = run("sample '" + model + "' --midi-out '" + path("y.mid") + "' --wav-out '" + path("y.wav") +
                         "' --length 80 --seed 2");
    ASSERT_EQ(w.rc, 0) << w.err;
    const std::string wav = slurp(path("y.wav"));
    ASSERT_GT(wav.size(), 44u);
    EXPECT_EQ(wav.substr(0, 4), "RIFF");
    EXPECT_EQ(wav.substr(8, 4), "WAVE");
  } else {
    GTEST_SKIP() << "fluidsynth or the GM soundfont not installed (scripts/setup.sh music): only the error was checked";
  }
}

TEST_F(MusicCli, BadInputsAreOneLineErrors) {
  auto expect_error = [&](const std::string& args, const std::string& phrase) {
    const Result r = run(args);
    EXPECT_EQ(r.rc, 1) << args;
    EXPECT_EQ(lines_of(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
  };
  const std::string common = " --out '" + path("bad") + "' --steps 1 --hidden 8 --layers 1";
  fs::create_directories(dir_ / "empty");
  expect_error("train --task music '" + path("empty") + "'" + common, path("empty") + ": no music files");
  std::ofstream(dir_ / "corpus" / "notes.txt") << "not music\n";
  expect_error("train --task music '" + path("corpus") + "'" + common, path("corpus/notes.txt") + ": not a music file");
  fs::remove(dir_ / "corpus" / "notes.txt");
  std::ofstream(dir_ / "corpus" / "broken.mid") << "MThd but not really";
  expect_error("train --task music '" + path("corpus") + "'" + common, path("corpus/broken.mid") + ": ");
  fs::remove(dir_ / "corpus" / "broken.mid");
  expect_error("train --task music '" + path("missing") + "'" + common, path("missing") + ": no such file or folder");
  expect_error("train --task music '" + path("corpus") + "' --transpose 1..x" + common, "--transpose: got '1..x'");
  EXPECT_FALSE(fs::exists(dir_ / "bad"));  // nothing written for a bad input

  // ABC without abc2midi in PATH: a clear error (with it, the tunes are converted).
  std::ofstream(dir_ / "t.abc") << "X:1\nT:Test\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 G4|]\n";
  const Result r = run("train --task music '" + path("t.abc") + "'" + common, "PATH=/nonexistent");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("abc2midi, which is not installed"), std::string::npos) << r.err;

  // Music options on a text model.
  const std::string model = train();
  std::ofstream(dir_ / "text.txt") << "a b c\nb c a\nc a b\n";
  ASSERT_EQ(run("train '" + path("text.txt") + "' --out '" + path("textrun") +
                "' --level word --hidden 8 --layers 1 --steps 1 --batch 1 --seq-len 2")
                .rc,
            0);
  expect_error("sample '" + path("textrun/last.safetensors") + "' --midi-out '" + path("z.mid") + "'",
               "not a music model");
  (void)model;
}

// recur prepare --task music (issue 16): the pieces encoded once into prepared corpora; training on
// them logs the losses training on the MIDI files logs, also stopped and resumed, in both modes.
std::vector<std::string> logged(const std::string& metrics, const char* type) {
  std::vector<std::string> out;
  std::istringstream in(slurp(metrics));
  std::string line;
  while (std::getline(in, line))
    if (line.find(std::string("\"type\":\"") + type + "\"") != std::string::npos) {
      const size_t at = line.find("\"step\":"), l = line.find("\"loss\":");
      out.push_back(line.substr(at, line.find(',', at) - at) + " " + line.substr(l, line.find(',', l) - l));
    }
  return out;
}

TEST_F(MusicCli, PreparedMusicTrainsBitIdenticallyAlsoResumed) {
  for (const std::string mode : {"stream", "lines"}) {
    const std::string music = " --transpose=-1..1 --valid-fraction 0.2";
    const Result p = run("prepare --task music '" + path("corpus") + "' --out '" + path("prep_" + mode) + "' --mode " + mode +
                         " --seq-len 16 --shard-tokens 100 --quiet --seed 5" + music);
    ASSERT_EQ(p.rc, 0) << p.err;
    const std::string common = " --hidden 16 --layers 1 --batch 2 --seq-len 16 --threads 1 --log-every 1 --valid-every 4 "
                               "--seed 5 --quiet --mode " + mode;
    ASSERT_EQ(run("train --task music '" + path("corpus") + "' --out '" + path("text_" + mode) + "' --steps 10" + music +
                  common).rc, 0);
    const Result half = run("train --task music '" + path("prep_" + mode) + "' --out '" + path("pr_" + mode) + "' --steps 5" + common);
    ASSERT_EQ(half.rc, 0) << half.err;
    const Result rest = run("train --task music '" + path("prep_" + mode) + "' --out '" + path("pr_" + mode) +
                            "' --resume --steps 10 --quiet");
    ASSERT_EQ(rest.rc, 0) << rest.err;
    const auto want = logged(path("text_" + mode + "/metrics.jsonl"), "train");
    ASSERT_EQ(want.size(), 10u) << mode;
    EXPECT_EQ(logged(path("pr_" + mode + "/metrics.jsonl"), "train"), want) << mode;
    auto valid = logged(path("pr_" + mode + "/metrics.jsonl"), "valid");
    std::erase_if(valid, [](const std::string& v) { return v.starts_with("\"step\":5 "); });  // the stop's own
    const auto valid_text = logged(path("text_" + mode + "/metrics.jsonl"), "valid");
    ASSERT_EQ(valid_text.size(), 3u) << mode;  // steps 4, 8 and the end
    EXPECT_EQ(valid, valid_text) << mode;
    // The model knows it is music: the same task record as from the files.
    EXPECT_EQ(load_checkpoint(path("pr_" + mode + "/last.safetensors")).model.task,
              load_checkpoint(path("text_" + mode + "/last.safetensors")).model.task);
  }
  // What the corpus fixes is refused by name; a lines corpus keeps its windows.
  const std::string out = " --out '" + path("x") + "' --steps 1 --hidden 8 --layers 1 --quiet";
  for (const std::string flag : {"--encoding event", "--transpose 2", "--valid-fraction 0.1", "--mode stream", "--seq-len 8"}) {
    const Result r = run("train --task music '" + path("prep_lines") + "' " + flag + out);
    EXPECT_EQ(r.rc, 1) << flag;
    EXPECT_EQ(lines_of(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("music.json"), std::string::npos) << flag << ": " << r.err;
  }
  for (const std::string& args : {"prepare --task music '" + path("corpus") + "' --out '" + path("y") + "' --tag-column 2",
                                 "prepare --task tag '" + path("corpus") + "' --out '" + path("y") + "' --encoding event",
                                 "prepare '" + path("corpus") + "' --out '" + path("y") + "' --transpose 2"}) {
    const Result r = run(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.err;
  }
  // A damaged description: one line naming the file and the field.
  std::string m = slurp(path("prep_stream/music.json"));
  m.replace(m.find("\"mode\": \"stream\""), 16, "\"mode\": \"waves\"");
  std::ofstream(path("prep_stream/music.json"), std::ios::trunc) << m;
  const Result bad = run("train --task music '" + path("prep_stream") + "'" + out);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_EQ(lines_of(bad.err), 1u) << bad.err;
  EXPECT_NE(bad.err.find("music.json: \"mode\": got \"waves\""), std::string::npos) << bad.err;
}

TEST_F(MusicCli, AbcInputWhenAbc2midiIsInstalled) {
  if (std::system("command -v abc2midi >/dev/null 2>&1") != 0) GTEST_SKIP() << "abc2midi not installed";
  const fs::path abc = dir_ / "tunes.abc";
  std::ofstream(abc) << "X:1\nT:One\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 G4|]\n\n"
                        "X:2\nT:Two\nM:3/4\nL:1/8\nK:D\nDEF GAB|A2F2D2|]\n";
  MusicDataOptions opts;
  opts.valid_fraction = 0;
  const MusicSet set = load_music({abc.string()}, opts);
  ASSERT_EQ(set.train.size(), 2u);
  EXPECT_EQ(set.train[0].name, abc.string() + "#1");
  EXPECT_GE(set.train[0].perf.notes.size(), 8u);
  // abc2midi worked in a temporary folder: nothing written beside the input.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST_F(MusicCli, MusicStatsTable) {
  const Result r = run("music-stats '" + path("corpus") + "' '" + path("corpus/tune1.mid") + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("| pieces | 5 | 1 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| notes in key | 100.0% | 100.0% |"), std::string::npos) << r.out;
}

// source_music_stats is compute_music_stats over the pieces load_music reads from the source,
// the table has a row per statistic and a column per source, and --through measures what an
// encoding keeps (mono keeps one voice: no chords).
TEST_F(MusicCli, SourceStatsAndTable) {
  MusicDataOptions mo;
  mo.valid_fraction = 0;
  const MusicSet set = load_music({path("corpus")}, mo);
  std::vector<Performance> perfs;
  for (const MusicPiece& p : set.train) perfs.push_back(p.perf);
  const MusicStats want = compute_music_stats(perfs);
  const MusicStats got = source_music_stats(path("corpus"), {});
  EXPECT_EQ(got.pieces, 5u);
  EXPECT_EQ(got.notes, want.notes);
  EXPECT_DOUBLE_EQ(got.polyphony, want.polyphony);
  EXPECT_GT(want.polyphony, 1.0);  // the bass note under the tune
  MusicSourceOptions mono;
  mono.through = "mono";
  EXPECT_NEAR(source_music_stats(path("corpus"), mono).polyphony, 1.0, 1e-9);
  MusicSourceOptions bad;
  bad.split = "dev";
  EXPECT_THROW(source_music_stats(path("corpus"), bad), Error);

  const std::string table = music_stats_table({"a", "b"}, {got, want});
  EXPECT_EQ(lines_of(table), 13u);
  EXPECT_EQ(table.rfind("| statistic | a | b |\n|---|---:|---:|\n| pieces | 5 | 5 |\n", 0), 0u) << table;
  EXPECT_NE(table.find("| notes in key | 100.0% | 100.0% |\n"), std::string::npos) << table;
}

// --prime-midi's tokens: the first bars encoded, only the model's channels, and an error when
// nothing is left.
TEST_F(MusicCli, PrimeFromMidi) {
  const std::string mid = path("corpus/tune2.mid");
  MusicTask task;
  const std::vector<std::string> all = music_prime_from_midi(mid, 1, task);
  EXPECT_EQ(all, encode_music(first_bars(read_midi(mid), 1), task.encoding, task.tokens));
  task.channels = {0};  // the tune without its bass (channel 1)
  const std::vector<std::string> melody = music_prime_from_midi(mid, 1, task);
  Performance p = first_bars(read_midi(mid), 1);
  std::erase_if(p.notes, [](const Note& n) { return n.channel != 0; });
  EXPECT_EQ(melody, encode_music(p, task.encoding, task.tokens));
  EXPECT_LT(melody.size(), all.size());
  task.channels = {5};
  try {
    music_prime_from_midi(mid, 1, task);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--prime-midi: " + mid + ": no notes in the first 1.000000 bar(s) on the model's channels");
  }
}

// A token file written by write_token_file reads back as the same tokens, on one line.
TEST_F(MusicCli, TokenFileRoundTrip) {
  const std::vector<std::string> tokens = encode_music(tune(1), MusicEncoding::event);
  ASSERT_GT(tokens.size(), 10u);
  const std::string file = path("tokens.txt");
  write_token_file(file, tokens);
  EXPECT_EQ(read_token_file(file), tokens);
  EXPECT_EQ(slurp(file), token_line(tokens));
  EXPECT_EQ(lines_of(slurp(file)), 1u);
  try {
    write_token_file(path("missing/tokens.txt"), tokens);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path("missing/tokens.txt") + ": cannot write the token file: ", 0), 0u) << e.what();
  }
}

// ---- library ----

TEST(MusicLib, TransposeDropsOutOfRangeAndKeepsDrums) {
  Performance p;
  p.notes = {{.pitch = 126, .channel = 0, .start = 0, .end = 1},
             {.pitch = 60, .channel = 0, .start = 0, .end = 1},
             {.pitch = 38, .channel = 9, .start = 0, .end = 1}};
  size_t dropped = 0;
  const Performance t = transpose_performance(p, 3, &dropped);
  EXPECT_EQ(dropped, 1u);
  ASSERT_EQ(t.notes.size(), 2u);
  EXPECT_EQ(t.notes[0].pitch, 38);  // drums unchanged
  EXPECT_EQ(t.notes[1].pitch, 63);
}

TEST(MusicLib, FirstBarsCutsAtTheBarLine) {
  Performance p = tune(0);  // 4/4 at 120 bpm: a bar is 2 s
  const Performance b = first_bars(p, 1);
  ASSERT_FALSE(b.notes.empty());
  for (const Note& n : b.notes) {
    EXPECT_LT(n.start, 2.0);
    EXPECT_LE(n.end, 2.0 + 1e-9);
  }
  EXPECT_THROW(first_bars(p, 0), Error);
}

TEST(MusicLib, KeyEstimate) {
  Performance c;  // C major scale, tonic held longest
  const int pcs[] = {60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60};
  double t = 0;
  for (int x : pcs) {
    const double len = x % 12 == 0 ? 1.0 : 0.5;
    c.notes.push_back({.pitch = x, .start = t, .end = t + len});
    t += len;
  }
  const MusicKey k = estimate_key(c);
  EXPECT_EQ(k.name(), "C major");
  EXPECT_GT(k.correlation, 0.7);
  const Performance a = transpose_performance(c, -3);
  EXPECT_EQ(estimate_key(a).name(), "A major");
  const MusicStats s = compute_music_stats({c});
  EXPECT_DOUBLE_EQ(s.in_key, 1.0);
  EXPECT_EQ(s.pitch_min, 60);
  EXPECT_EQ(s.pitch_max, 72);
  EXPECT_NEAR(s.polyphony, 1.0, 1e-9);
}

TEST(MusicLib, TaskRecordRoundTrips) {
  MusicTask t;
  t.encoding = MusicEncoding::mono;
  t.transpose_min = -3;
  t.transpose_max = 3;
  t.channels = {5};
  t.tokens.tempo_bpm = 112;
  t.tokens.program = 26;
  const std::string j = t.to_json();
  EXPECT_TRUE(is_music_task(j));
  EXPECT_FALSE(is_music_task(""));
  EXPECT_FALSE(is_music_task("{\"task\":\"tag\"}"));
  const MusicTask b = music_task_from_json(j, "m");
  EXPECT_EQ(b.to_json(), j);
  EXPECT_THROW(music_task_from_json("{\"task\":\"music\"}", "m"), FormatError);
  EXPECT_DOUBLE_EQ(music_token_seconds(b, "P60_D4"), 4 * 60.0 / 112 / 4);
  t.encoding = MusicEncoding::event;
  EXPECT_DOUBLE_EQ(music_token_seconds(t, "TIME_SHIFT_250"), 0.25);
  EXPECT_DOUBLE_EQ(music_token_seconds(t, "NOTE_ON_60"), 0.0);
}

// The training run's music options (music_data_options): a resumed run takes what was not given
// again from its task record, what was given wins, and malformed values name their flag.
TEST(MusicLib, TrainOptionsFromTheCommandLineAndTheResumedRun) {
  const MusicDataOptions fresh = music_data_options({}, "", "m");
  EXPECT_EQ(fresh.encoding, MusicEncoding::duration);
  EXPECT_EQ(fresh.transpose_min, 0);
  EXPECT_FALSE(fresh.keep_drums);

  MusicTask saved;
  saved.encoding = MusicEncoding::mono;
  saved.transpose_min = -2;
  saved.transpose_max = 4;
  saved.tokens.keep_drums = true;
  saved.channels = {1, 3};
  MusicTrainRequest request;
  request.seed = 9;
  const MusicDataOptions resumed = music_data_options(request, saved.to_json(), "ck");
  EXPECT_EQ(resumed.encoding, MusicEncoding::mono);
  EXPECT_EQ(resumed.transpose_min, -2);
  EXPECT_EQ(resumed.transpose_max, 4);
  EXPECT_TRUE(resumed.keep_drums);
  EXPECT_EQ(resumed.channels, (std::vector<int>{1, 3}));
  EXPECT_EQ(resumed.seed, 9u);

  MusicTrainRequest given;
  given.encoding = "event";
  given.transpose = "3";
  given.keep_drums = false;
  const MusicDataOptions both = music_data_options(given, saved.to_json(), "ck");
  EXPECT_EQ(both.encoding, MusicEncoding::event);
  EXPECT_EQ(both.transpose_min, -3);
  EXPECT_EQ(both.transpose_max, 3);
  EXPECT_FALSE(both.keep_drums);
  EXPECT_EQ(both.channels, (std::vector<int>{1, 3}));

  EXPECT_EQ(parse_transpose_range("-2..5"), (std::pair<int, int>{-2, 5}));
  for (const std::string bad : {"x", "-1", "2..", "1..2..3", "3 "}) {
    MusicTrainRequest r;
    r.transpose = bad;
    try {
      music_data_options(r, "", "m");
      ADD_FAILURE() << "accepted --transpose " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--transpose"), std::string::npos) << e.what();
    }
  }
  MusicTrainRequest wide;
  wide.transpose = "30";  // parsed, then out of range
  EXPECT_THROW(music_data_options(wide, "", "m"), Error);
}

}  // namespace

