// Every `recur train` flag for every task (lm, tag, classify, seq2seq, generate, music): a tiny
// training run (data made here) shows that the flag changes training - the losses, the lr
// column or the lines in metrics.jsonl differ from the same run without it, or the lr column
// follows the one schedule (train/schedule.h) exactly - or that it is refused with one line
// naming the flag and the task. Also: a tag run with --diagnostics and --plots writes the
// diag lines and the figures, and a task run resumed mid-epoch logs the same losses.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli_run.h"
#include "recur/core/safetensors.h"
#include "recur/music/midi.h"

namespace fs = std::filesystem;
using Result = recur::test::CliResult;
using recur::test::slurp;

namespace {

struct Lcg {
  uint32_t x = 12345;
  uint32_t next(uint32_t n) { return ((x = x * 1103515245u + 12345u) >> 16) % n; }
};

// What a run left in metrics.jsonl.
struct Metrics {
  std::vector<nlohmann::json> train, valid, diag, test;
  // The train losses as written (full precision): equal only for the same training.
  std::string losses() const {
    std::string s;
    for (const auto& j : train) s += j.at("loss").dump() + " ";
    return s;
  }
  std::set<double> lrs() const {
    std::set<double> s;
    for (const auto& j : train) s.insert(j.at("lr").get<double>());
    return s;
  }
};

const std::vector<std::string> kTasks = {"lm", "tag", "classify", "seq2seq", "generate", "music"};

class TrainFlags : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("recur_train_flags_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "names");
    fs::create_directories(dir_ / "corpus");
    Lcg r;
    std::string text;
    for (int i = 0; i < 24; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(r.next(7)) + "\n";
    write("text.txt", text);
    std::string tag = "-DOCSTART- -X- O\n\n";
    const char* names[] = {"Smith", "Jones", "Lee"};
    const char* places[] = {"Paris", "Rome", "Oslo"};
    for (int i = 0; i < 50; ++i) {
      for (uint32_t k = 0, m = 1 + r.next(3); k < m; ++k) {
        const uint32_t c = r.next(3);
        if (c == 0) tag += std::string("mr X O\n") + names[r.next(3)] + " X B-PER\n";
        else if (c == 1) tag += std::string("in X O\n") + places[r.next(3)] + " X B-LOC\n";
        else tag += "the X O\n";
      }
      tag += "\n";
    }
    write("tag.txt", tag);
    const char* pos[] = {"good", "great", "fine"};
    const char* neg[] = {"bad", "awful", "poor"};
    const char* fill[] = {"the", "movie", "was", "a", "plot", "very"};
    std::string cls;
    for (int i = 0; i < 60; ++i) {
      const bool y = r.next(2);
      std::string t;
      for (uint32_t k = 0, m = 1 + r.next(4); k < m; ++k) t += std::string(fill[r.next(6)]) + " ";
      cls += t + (y ? pos[r.next(3)] : neg[r.next(3)]) + "\t" + (y ? "pos" : "neg") + "\n";
    }
    write("cls.tsv", cls);
    const char* digits[] = {"zero", "one", "two", "three", "four"};
    std::string pairs;
    for (int i = 0; i < 60; ++i) {
      std::vector<std::string> w;
      for (uint32_t k = 0, m = 1 + r.next(3); k < m; ++k) w.push_back(digits[r.next(5)]);
      std::string a, b;
      for (size_t k = 0; k < w.size(); ++k) a += (k ? " " : "") + w[k];
      for (size_t k = w.size(); k-- > 0;) b += w[k] + (k ? " " : "");
      pairs += a + "\t" + b + "\n";
    }
    write("pairs.txt", pairs);
    write("names/Alpha.txt", "Aaron\nAbel\nAdam\nAlan\nAlbert\nAlex\nAmos\nAndy\nArt\nAxel\nAbe\nAce\n");
    write("names/Zulu.txt", "Zack\nZane\nZeke\nZeno\nZion\nZoe\nZora\nZuri\nZed\nZia\nZev\nZola\n");
    for (int v = 0; v < 5; ++v) write_tune(v);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static void write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
  }
  static void write_tune(int variant) {
    recur::Performance p;
    p.tempo_bpm = 120;
    const int scale[] = {60, 62, 64, 65, 67, 69, 71, 72};
    double t = 0;
    for (int i = 0; i < 24; ++i) {
      const double len = (i + variant) % 3 == 0 ? 0.5 : 0.25;
      p.notes.push_back({.pitch = scale[(i * (variant + 1)) % 8], .velocity = 80, .channel = 0, .program = 0,
                         .start = t, .end = t + len});
      t += len;
    }
    p.end_time = t + 0.5;
    recur::write_midi(p, (dir_ / "corpus" / ("tune" + std::to_string(variant) + ".mid")).string());
  }

  // The base command of a task: its data and a tiny model; every run logs every step.
  static std::string base(const std::string& task) {
    std::string d = "'";
    d += dir_.string();
    d += "/";
    const std::string common = " --hidden 12 --threads 1 --log-every 1 --quiet --valid-fraction 0.2";
    if (task == "lm") return "train " + d + "text.txt' --layers 1 --batch 4 --seq-len 16" + common;
    if (task == "music") return "train --task music " + d + "corpus' --layers 1 --batch 2 --seq-len 16" + common;
    const std::string data = task == "tag" ? "tag.txt'" : task == "classify" ? "cls.tsv'" : task == "seq2seq" ? "pairs.txt'" : "names'";
    return "train " + d + data + " --task " + task + " --embed 8 --batch 8" + common;
  }
  // base(task) with the "--flag value" pairs that `extra` gives again left out (CLI11 takes each once).
  static std::string with(const std::string& task, const std::string& extra) {
    std::istringstream in(base(task));
    std::string out, w;
    while (in >> w) {
      const bool flag = w.rfind("--", 0) == 0 && w != "--quiet" && w != "--task" && w != "--bidirectional";
      if (flag && extra.find(w + " ") != std::string::npos) {
        in >> w;  // and its value
        continue;
      }
      if (!out.empty()) out += " ";
      out += w;
    }
    return out;
  }
  static Result run(const std::string& task, const std::string& extra, const std::string& budget = "--steps 8") {
    const std::string out = (dir_ / ("run_" + task)).string();
    fs::remove_all(out);
    return recur::test::run_recur(with(task, extra + " ") + " " + budget + " " + extra + " --out '" + out + "'", dir_);
  }
  static Metrics metrics(const std::string& task) {
    Metrics m;
    std::istringstream in(slurp(dir_ / ("run_" + task) / "metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      const std::string type = j.at("type");
      (type == "train" ? m.train : type == "valid" ? m.valid : type == "diag" ? m.diag : m.test).push_back(j);
    }
    return m;
  }
  // Runs base + extra and returns its metrics; fails the test if the run fails.
  static Metrics trained(const std::string& task, const std::string& extra, const std::string& budget = "--steps 8") {
    const Result r = run(task, extra, budget);
    EXPECT_EQ(r.rc, 0) << task << " " << extra << ": " << r.err;
    return metrics(task);
  }
  static void expect_refused(const std::string& task, const std::string& extra, const std::string& flag) {
    SCOPED_TRACE(task + " " + extra);
    const Result r = run(task, extra);
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("recur: error: " + flag, 0), 0u) << r.err;
    EXPECT_NE(r.err.find(": does not apply to --task " + task + " ("), std::string::npos) << r.err;
  }

  static fs::path dir_;
};
fs::path TrainFlags::dir_;

// Flags whose effect is on the weights: the train losses differ from the run without them.
TEST_F(TrainFlags, OptimisationFlagsChangeTrainingForEveryTask) {
  const std::vector<std::string> flags = {
      "--init-scale 0.5",  "--clip-norm 0.001", "--clip-value 0.0001", "--lr 0.03",  "--optimizer sgd",
      "--weight-decay 0.5", "--dropout 0.4",    "--batch 3",            "--seed 7", "--cell gru",
  };
  for (const std::string& task : kTasks) {
    const std::string plain = trained(task, "").losses();
    ASSERT_FALSE(plain.empty()) << task;
    for (const std::string& f : flags) EXPECT_NE(trained(task, f).losses(), plain) << task << " " << f;
    // Momentum on top of SGD.
    EXPECT_NE(trained(task, "--optimizer sgd --momentum 0.9").losses(), trained(task, "--optimizer sgd").losses())
        << task;
  }
}

// Model and data flags: the model or the data it trains on differs, so the losses do.
TEST_F(TrainFlags, ModelAndDataFlagsChangeTrainingForEveryTask) {
  const std::vector<std::string> flags = {"--hidden 8",   "--layers 2",        "--proj 4",           "--peephole",
                                          "--embed 6",    "--min-count 30",    "--max-vocab 6",      "--valid-fraction 0.4"};
  for (const std::string& task : kTasks) {
    const std::string plain = trained(task, "").losses();
    for (const std::string& f : flags) {
      const bool vocab = f == "--min-count 30" || f == "--max-vocab 6";
      if (((task == "music" || task == "generate") && vocab) || (task == "lm" && f == "--embed 6"))
        continue;  // music, generate: refused (TaskSpecificFlags...); lm chars: one-hot unless --embed, below
      EXPECT_NE(trained(task, f).losses(), plain) << task << " " << f;
    }
    EXPECT_NE(trained(task, "--cell gru --gru-reset before").losses(), trained(task, "--cell gru").losses()) << task;
  }
  EXPECT_NE(trained("lm", "--embed 6").losses(), trained("lm", "--embed 5").losses());
}

// The one schedule: lr0 * decay^max(0, epoch - decay_after), epochs 1-based, for every task.
TEST_F(TrainFlags, LrDecayAndDecayAfterFollowTheOneSchedule) {
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const std::string budget = "--epochs 3";
    EXPECT_EQ(trained(task, "--lr 0.01", budget).lrs(), (std::set<double>{0.01}));
    const std::set<double> decayed = trained(task, "--lr 0.01 --lr-decay 0.5", budget).lrs();
    ASSERT_EQ(decayed.size(), 3u);
    EXPECT_NEAR(*decayed.rbegin(), 0.005, 1e-12);
    EXPECT_NEAR(*decayed.begin(), 0.00125, 1e-12);
    const std::set<double> after = trained(task, "--lr 0.01 --lr-decay 0.5 --decay-after 1", budget).lrs();
    ASSERT_EQ(after.size(), 3u);
    EXPECT_NEAR(*after.rbegin(), 0.01, 1e-12);
    EXPECT_NEAR(*after.begin(), 0.0025, 1e-12);
  }
}

// Plateau: weights that cannot move (lr 1e-30) never improve validation, so each scheduled
// evaluation after the first halves the rate (patience 0); with patience 1 every second one.
// Evaluations at steps 2, 4, 6, 8; the last train line (step 8) runs at the rate set at step 6.
TEST_F(TrainFlags, PlateauDecayLowersTheRateWhenValidationStalls) {
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const std::string frozen = "--optimizer sgd --lr 1e-30 --valid-every 2";
    EXPECT_EQ(trained(task, frozen).lrs().size(), 1u);
    const Metrics m = trained(task, frozen + " --plateau-decay 0.5");
    ASSERT_FALSE(m.train.empty());
    EXPECT_NEAR(m.train.back().at("lr").get<double>() / m.train.front().at("lr").get<double>(), 0.25, 1e-9);
    const Metrics p = trained(task, frozen + " --plateau-decay 0.5 --plateau-patience 1");
    EXPECT_NEAR(p.train.back().at("lr").get<double>() / p.train.front().at("lr").get<double>(), 0.5, 1e-9);
  }
}

// --warmup N: step s of the first N trains at lr * s / N (log-every 1 logs each step's rate), then
// the schedule as before; a run resumed in the middle of the warm-up goes on from where it was.
TEST_F(TrainFlags, WarmupRampsTheRateOnEveryTaskAndResumes) {
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const Metrics m = trained(task, "--lr 0.01 --warmup 4", "--steps 6");
    ASSERT_EQ(m.train.size(), 6u);
    for (int s = 1; s <= 6; ++s)
      EXPECT_NEAR(m.train[size_t(s - 1)].at("lr").get<double>(), 0.01 * std::min(s, 4) / 4.0, 1e-15) << "step " << s;
    const std::string whole = m.losses();
    const std::string out = (dir_ / ("run_" + task)).string();
    ASSERT_EQ(run(task, "--lr 0.01 --warmup 4", "--steps 2").rc, 0);
    const Result resumed =
        recur::test::run_recur(with(task, "") + " --steps 6 --resume --out '" + out + "'", dir_);
    ASSERT_EQ(resumed.rc, 0) << resumed.err;
    const Metrics r = metrics(task);
    ASSERT_EQ(r.train.size(), 6u);
    EXPECT_NEAR(r.train[2].at("lr").get<double>(), 0.0075, 1e-15);
    EXPECT_EQ(r.losses(), whole) << "a resumed warm-up trains as one run";
  }
  const Result bad = run("lm", "--warmup -1");
  EXPECT_EQ(bad.err.rfind("recur: error: --warmup: got -1, expected 0 (off) or a number of steps >= 1", 0), 0u) << bad.err;
}

// --diverge-factor stops a run whose loss climbs above that multiple of the first step's.
TEST_F(TrainFlags, DivergeFactorStopsEveryTask) {
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const Result r = run(task, "--optimizer sgd --lr 200 --clip-norm 0 --diverge-factor 1.01", "--steps 30");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.err.find("x the first step's"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("above 1.01"), std::string::npos) << r.err;
  }
}

// --patience stops a run after that many validations in a row without a better score (here a
// frozen model: every validation equals the first), says why, and keeps the first (best) model;
// the count is saved, so a run resumed in the middle stops at the same step, and a stopped run
// continues only with a larger --patience.
TEST_F(TrainFlags, PatienceStopsEveryTaskAndResumes) {
  const std::string still = "--optimizer sgd --lr 1e-30 --valid-every 2", frozen = still + " --patience 2";
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const Result r = run(task, frozen, "--steps 20");
    ASSERT_EQ(r.rc, 0) << r.err;
    // Validations at steps 2 (the best), 4 and 6 (no better: 1, 2): stop after step 6.
    EXPECT_NE(r.err.find("stopped early at step 6: 2 validations without improvement (--patience 2); the best model, "
                         "from step 2, is "),
              std::string::npos)
        << r.err;
    const Metrics m = metrics(task);
    EXPECT_EQ(m.train.size(), 6u);
    ASSERT_EQ(m.valid.size(), 3u);
    EXPECT_EQ(m.valid.back().at("step"), 6);
    // Without --patience the same run goes on to its budget.
    EXPECT_EQ(trained(task, still, "--steps 20").train.size(), 20u);
    // Split: 4 steps (validations at 2 and 4: one without improvement), then resumed.
    const std::string out = (dir_ / ("run_" + task)).string();
    ASSERT_EQ(run(task, frozen, "--steps 4").rc, 0);
    auto resume = [&] {
      return recur::test::run_recur(with(task, frozen + " ") + " " + frozen + " --steps 20 --resume --out '" + out + "'",
                                    dir_);
    };
    const Result resumed = resume();
    ASSERT_EQ(resumed.rc, 0) << resumed.err;
    EXPECT_NE(resumed.err.find("stopped early at step 6: 2 validations"), std::string::npos) << resumed.err;
    EXPECT_EQ(metrics(task).train.size(), 6u);
    // Resumed again: nothing to do at the same patience; a larger one trains on.
    const Result again = resume();
    ASSERT_EQ(again.rc, 0) << again.err;
    EXPECT_NE(again.err.find("stopped early at step 6 (--patience 2); pass a larger --patience"), std::string::npos)
        << again.err;
    EXPECT_EQ(metrics(task).train.size(), 6u);
    const Result more = recur::test::run_recur(
        with(task, still + " ") + " " + still + " --steps 20 --resume --patience 3 --out '" + out + "'", dir_);
    ASSERT_EQ(more.rc, 0) << more.err;
    EXPECT_NE(more.err.find("stopped early at step 8: 3 validations"), std::string::npos) << more.err;
    EXPECT_EQ(metrics(task).train.size(), 8u);
  }
}

TEST_F(TrainFlags, PatienceMustBeACount) {
  const Result r = run("classify", "--patience -1");
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.err.rfind("recur: error: --patience", 0), 0u) << r.err;
}

// --init-from starts a fresh run from a task model's weights: its first loss is the loss that
// model reaches, not a new model's; the model (and vocabulary) is the checkpoint's. Refused with
// a resume, for language models, with a model of another task and with architecture flags.
TEST_F(TrainFlags, InitFromStartsFromTheCheckpointsWeights) {
  // The base command without its architecture flags (the model is the checkpoint's).
  auto stripped = [](const std::string& task) {
    std::string cmd = base(task);
    for (const std::string f : {" --hidden 12", " --embed 8", " --layers 1"})
      if (cmd.find(f) != std::string::npos) cmd.erase(cmd.find(f), f.size());
    return cmd;
  };
  // Language models and music too: the vocabulary is kept, the level comes from the model.
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const Metrics first = trained(task, "--lr 0.02", "--steps 30");
    const fs::path model = dir_ / (std::string(task) + "_init.safetensors");
    fs::copy_file(dir_ / ("run_" + std::string(task)) / "last.safetensors", model, fs::copy_options::overwrite_existing);
    const Metrics fresh = trained(task, "", "--steps 3");
    const std::string init = "--init-from '" + model.string() + "'";
    const std::string cmd = stripped(task);
    const std::string out = (dir_ / ("run_" + std::string(task))).string();
    fs::remove_all(out);
    const Result ok = recur::test::run_recur(cmd + " " + init + " --steps 3 --out '" + out + "'", dir_);
    ASSERT_EQ(ok.rc, 0) << ok.err;
    EXPECT_NE(ok.err.find("initialised from " + model.string()), std::string::npos) << ok.err;
    const Metrics tuned = metrics(task);
    ASSERT_EQ(tuned.train.size(), 3u);
    // Training from the checkpoint's weights starts where 30 steps got to, well below a new model.
    const double l0 = tuned.train.front().at("loss").get<double>(), f0 = fresh.train.front().at("loss").get<double>();
    EXPECT_EQ(first.train.front().at("loss"), fresh.train.front().at("loss"));  // same seed, same new model
    EXPECT_LT(l0, 0.9 * f0) << l0 << " vs fresh " << f0;
    EXPECT_EQ(tuned.train.front().at("step"), 1);  // a fresh run
    const Result r = recur::test::run_recur(cmd + " " + init + " --hidden 5 --steps 3 --out '" + out + "'", dir_);
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(r.err, "recur: error: --hidden: not with --init-from " + model.string() +
                         "; the architecture, vocabularies and data columns come from that model\n");
  }
  const fs::path tag_model = dir_ / "tag_init.safetensors";
  const std::string out = (dir_ / "run_init").string();
  const Result other =
      recur::test::run_recur(stripped("classify") + " --init-from '" + tag_model.string() + "' --force --out '" + out + "'", dir_);
  EXPECT_NE(other.rc, 0);
  EXPECT_NE(other.err.find("--init-from " + tag_model.string() + ": a tag model; --task classify needs a classify model"),
            std::string::npos)
      << other.err;
  const Result lm =
      recur::test::run_recur(stripped("lm") + " --init-from '" + tag_model.string() + "' --force --out '" + out + "'", dir_);
  EXPECT_EQ(lm.err, "recur: error: --init-from " + tag_model.string() + ": a task model; --task lm needs a language model\n");
  // A text model cannot start a music run (its tokens are not the music encoding's), nor the
  // reverse; a word level asked of a character model is refused.
  const fs::path lm_model = dir_ / "lm_init.safetensors", music_model = dir_ / "music_init.safetensors";
  const Result text_on_music = recur::test::run_recur(
      stripped("music") + " --init-from '" + lm_model.string() + "' --force --out '" + out + "'", dir_);
  EXPECT_EQ(text_on_music.rc, 1) << text_on_music.err;
  EXPECT_NE(text_on_music.err.find("--init-from " + lm_model.string() + ": trained with task lm, but this run's data is"),
            std::string::npos)
      << text_on_music.err;
  const Result music_on_text = recur::test::run_recur(
      stripped("lm") + " --init-from '" + music_model.string() + "' --force --out '" + out + "'", dir_);
  EXPECT_EQ(music_on_text.rc, 1);
  EXPECT_NE(music_on_text.err.find("but this run's data is text (--task lm)"), std::string::npos) << music_on_text.err;
  const Result level = recur::test::run_recur(
      stripped("lm") + " --level word --init-from '" + lm_model.string() + "' --force --out '" + out + "'", dir_);
  EXPECT_EQ(level.err, "recur: error: --level words: not with --init-from " + lm_model.string() +
                           ", a model of chars; the level comes from that model\n");
}

// Reporting flags: diagnostics lines, validation points, logging interval, budget.
TEST_F(TrainFlags, ReportingAndBudgetFlagsActOnEveryTask) {
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const Metrics plain = trained(task, "");
    EXPECT_TRUE(plain.diag.empty());
    EXPECT_EQ(plain.train.size(), 8u);
    const Metrics d = trained(task, "--diagnostics 2");
    ASSERT_EQ(d.diag.size(), 4u);
    EXPECT_EQ(d.diag[0].at("step"), 2);
    ASSERT_FALSE(d.diag[0].at("layers").empty());
    EXPECT_FALSE(d.diag[0].at("layers")[0].at("grad_h").empty());
    EXPECT_TRUE(d.diag[0].at("layers")[0].contains("gates"));
    EXPECT_EQ(d.losses(), plain.losses());  // diagnostics only look
    const Metrics v = trained(task, "--valid-every 2");
    EXPECT_EQ(v.valid.size(), 4u);
    EXPECT_EQ(trained(task, "--log-every 4").train.size(), 2u);
    EXPECT_EQ(trained(task, "", "--steps 5").train.size(), 5u);
  }
}

// Data files and the time budget: --valid replaces the held-out split, --test adds a final test
// line (music brings its own split and refuses both by name), --time stops the run.
TEST_F(TrainFlags, ValidTestAndTimeActOnEveryTask) {
  const std::map<std::string, std::string> file = {{"lm", "text.txt"},  {"tag", "tag.txt"},     {"classify", "cls.tsv"},
                                                   {"seq2seq", "pairs.txt"}, {"generate", "names"}};
  for (const auto& [task, name] : file) {
    SCOPED_TRACE(task);
    const std::string f = " '" + (dir_ / name).string() + "'";
    const Metrics plain = trained(task, "");
    EXPECT_TRUE(plain.test.empty());
    EXPECT_EQ(trained(task, "--test" + f).test.size(), 1u);
    const Metrics v = trained(task, "--valid" + f);
    ASSERT_FALSE(v.valid.empty());
    EXPECT_NE(v.losses(), plain.losses());  // all of the data trains now
    EXPECT_NE(v.valid.back().at("loss"), plain.valid.back().at("loss"));
  }
  for (const std::string task : {"--valid", "--test"}) {
    const Result r = run("music", task + std::string(" '") + (dir_ / "text.txt").string() + "'");
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(r.err.rfind("recur: error: " + std::string(task), 0), 0u) << r.err;
    EXPECT_NE(r.err.find("--task music"), std::string::npos) << r.err;
  }
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    EXPECT_EQ(trained(task, "--time 0.000001").train.size(), 0u);
  }
}

// --plots draws the learning curves of every task.
TEST_F(TrainFlags, PlotsForEveryTask) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "gnuplot is not installed";
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    ASSERT_EQ(run(task, "--plots", "--steps 4").rc, 0);
    for (const char* name : {"loss", "grad"}) {
      const fs::path png = dir_ / ("run_" + task) / (std::string(name) + ".png");
      EXPECT_TRUE(fs::exists(png) && fs::file_size(png) > 100) << name;
    }
  }
}

// Every task's progress values: tokens/s on train lines, examples/s where examples are counted,
// the validation metric under its real name (seq2seq and generate select on the loss: ppl).
TEST_F(TrainFlags, OneProgressFormat) {
  const std::map<std::string, std::string> metric = {{"tag", "f1"}, {"classify", "accuracy"}};
  for (const std::string& task : kTasks) {
    SCOPED_TRACE(task);
    const Metrics m = trained(task, "");
    ASSERT_FALSE(m.train.empty());
    for (const char* k : {"loss", "ppl", "bpc", "grad_norm", "clip_rate", "tokens_per_s", "examples_per_s", "lr"})
      EXPECT_TRUE(m.train[0].contains(k)) << k;
    ASSERT_FALSE(m.valid.empty());
    EXPECT_FALSE(m.valid[0].contains("neg_loss"));
    if (metric.count(task)) {
      EXPECT_TRUE(m.valid[0].contains(metric.at(task)));
    }
    const Result r = run(task, "", "--steps 2");  // without --quiet: the printed line
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  const Result r = recur::test::run_recur(base("tag") + " --steps 3 --out '" + (dir_ / "p").string() + "'", dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find("step 1 | epoch"), std::string::npos) << "--quiet hides train lines";
  const Result loud = recur::test::run_recur(
      "train '" + (dir_ / "tag.txt").string() + "' --task tag --steps 3 --log-every 1 --threads 1 --force --out '" +
          (dir_ / "p").string() + "'",
      dir_);
  ASSERT_EQ(loud.rc, 0) << loud.err;
  EXPECT_NE(loud.out.find("tok/s"), std::string::npos) << loud.out;
  EXPECT_NE(loud.out.find("ex/s"), std::string::npos) << loud.out;
  EXPECT_NE(loud.out.find("ETA"), std::string::npos) << loud.out;
  EXPECT_NE(loud.out.find("| f1 "), std::string::npos) << loud.out;
}

// Flags that cannot apply to a task are refused by name, never silently ignored; where they
// apply they change training.
TEST_F(TrainFlags, TaskSpecificFlagsActOrAreRefusedByName) {
  for (const std::string task : {"tag", "classify", "seq2seq", "generate"}) {
    expect_refused(task, "--seq-len 8", "--seq-len");
    expect_refused(task, "--mode lines", "--mode");
    expect_refused(task, "--level word", "--level");
  }
  expect_refused("music", "--level word", "--level");
  for (const std::string task : {"music", "generate"}) {
    expect_refused(task, "--max-vocab 10", "--max-vocab");
    expect_refused(task, "--min-count 2", "--min-count");
  }
  for (const std::string task : {"lm", "music", "generate"}) expect_refused(task, "--bidirectional", "--bidirectional");
  for (const std::string task : {"lm", "music", "seq2seq", "generate"}) expect_refused(task, "--char-rnn", "--char-rnn");
  for (const std::string task : {"lm", "music", "classify", "seq2seq", "generate"})
    expect_refused(task, "--token-column 1", "--token-column");
  for (const std::string task : {"lm", "music", "tag", "seq2seq", "generate"}) {
    expect_refused(task, "--binary", "--binary");
    expect_refused(task, "--header 1", "--header");
  }
  for (const std::string task : {"lm", "music", "tag", "classify", "seq2seq"})
    expect_refused(task, "--condition-every-step", "--condition-every-step");
  for (const std::string task : {"lm", "music", "generate"}) expect_refused(task, "--features", "--features");

  // Where they apply, they change training.
  EXPECT_NE(trained("lm", "--seq-len 8").losses(), trained("lm", "").losses());
  EXPECT_NE(trained("music", "--seq-len 8").losses(), trained("music", "").losses());
  EXPECT_NE(trained("lm", "--mode lines").losses(), trained("lm", "").losses());
  EXPECT_NE(trained("lm", "--level word").losses(), trained("lm", "").losses());
  for (const std::string task : {"tag", "classify", "seq2seq"})
    EXPECT_NE(trained(task, "--bidirectional").losses(), trained(task, "").losses()) << task;
  for (const std::string task : {"tag", "classify"})
    EXPECT_NE(trained(task, "--char-rnn").losses(), trained(task, "").losses()) << task;
  EXPECT_NE(trained("classify", "--binary").losses(), trained("classify", "").losses());
  EXPECT_NE(trained("generate", "--condition-every-step").losses(), trained("generate", "").losses());
}

// --tie-weights (lm, music): the decoder's matrix is the input embedding, stored once, and the
// model trains differently from the untied one; a one-hot input or an embedding of another
// width than the recurrent output is refused with one line naming the sizes; task models refuse it.
TEST_F(TrainFlags, TieWeightsSharesTheEmbeddingOrIsRefused) {
  for (const std::string task : {"lm", "music"}) {
    SCOPED_TRACE(task);
    const std::string untied = trained(task, "--embed 12").losses();
    const Metrics tied = trained(task, "--embed 12 --tie-weights");
    ASSERT_FALSE(tied.train.empty());
    EXPECT_NE(tied.losses(), untied);
    const auto rd = recur::SafetensorsReader::open((dir_ / ("run_" + task) / "last.safetensors").string());
    const auto names = rd.names();
    EXPECT_EQ(std::count(names.begin(), names.end(), "encoder.weight"), 1);
    EXPECT_EQ(std::count(names.begin(), names.end(), "decoder.weight"), 0) << "the shared matrix is saved once";
    EXPECT_EQ(std::count(names.begin(), names.end(), "decoder.bias"), 1);
    // A resumed run keeps the tie (inherited from the checkpoint) and goes on.
    const Result r = recur::test::run_recur(base(task) + " --embed 12 --steps 10 --resume --out '" +
                                                (dir_ / ("run_" + task)).string() + "'",
                                            dir_);
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(metrics(task).train.size(), tied.train.size() + 2);
  }
  auto refused = [&](const std::string& extra, const std::string& want) {
    SCOPED_TRACE(extra);
    const Result r = run("lm", extra);
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("recur: error: --tie-weights: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
  };
  refused("--tie-weights", "expected --embed 12 (the recurrent output width: --hidden), got a one-hot input");
  refused("--embed 6 --tie-weights", "the decoder's weight [V, 12] would be the input embedding [V, 6]; expected --embed 12");
  refused("--embed 12 --proj 6 --tie-weights", "expected --embed 6 (the recurrent output width: --proj), got --embed 12");
  for (const std::string task : {"tag", "classify", "seq2seq", "generate"}) expect_refused(task, "--tie-weights", "--tie-weights");
}

TEST_F(TrainFlags, TagRunWritesDiagnosticsAndPlots) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "gnuplot is not installed";
  const Result r = run("tag", "--diagnostics 3 --plots --layers 2", "--steps 9");
  ASSERT_EQ(r.rc, 0) << r.err;
  const Metrics m = metrics("tag");
  ASSERT_EQ(m.diag.size(), 3u);
  const auto& layers = m.diag[0].at("layers");
  ASSERT_EQ(layers.size(), 2u);  // both layers of the tagger's rnn
  EXPECT_EQ(layers[1].at("name"), "rnn.1");
  EXPECT_EQ(layers[0].at("grad_h").size(), layers[0].at("grad_h_last").size());
  for (const char* name : {"loss", "grad", "diagnostics"}) {
    const fs::path png = dir_ / "run_tag" / (std::string(name) + ".png");
    EXPECT_TRUE(fs::exists(png) && fs::file_size(png) > 100) << name;
    EXPECT_NE(slurp(dir_ / "run_tag" / (std::string(name) + ".svg")).find("<svg"), std::string::npos) << name;
  }
}

// A seq2seq run stopped mid-epoch and resumed logs the same losses as one uninterrupted run
// (dropout on, so the generator's state must come back too).
TEST_F(TrainFlags, Seq2seqResumeIsBitIdentical) {
  const std::string opts = " --dropout 0.2";
  const Metrics one = trained("seq2seq", opts, "--steps 11");
  ASSERT_EQ(run("seq2seq", opts, "--steps 4").rc, 0);
  const Result r = recur::test::run_recur(base("seq2seq") + " --steps 11 --resume --out '" +
                                              (dir_ / "run_seq2seq").string() + "'",
                                          dir_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(metrics("seq2seq").losses(), one.losses());
  EXPECT_EQ(one.train.size(), 11u);
}

}  // namespace
