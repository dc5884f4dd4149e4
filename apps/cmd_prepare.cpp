// recur prepare INPUT... --out DIR - tokenise a text corpus once into a prepared corpus
// (recur/data/prepared.h, docs/data.md) that `recur train DIR` reads from disk. This file only
// parses the options, draws the progress bar and calls the library.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "recur/data/prepared.h"
#include "music_cli_util.h"
#include "recur/music/prepared_music.h"
#include "recur/tasks/prepared_task.h"
#include "recur/train/loop.h"

namespace recur::cli {
namespace {

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string out, level = "char", mode = "stream", vocab;
  PrepareOptions o;
  bool quiet = false;
  // --task: a task file instead of a text corpus (prepared_task.h).
  std::string task;
  TaskColumnOverrides columns;
  bool keep_case = false;
  std::vector<CLI::Option*> text_only;  // options that mean nothing for a task file
  CLI::Option* mode_opt = nullptr;
  // --task music: how `recur train --task music` would read and split the inputs.
  MusicTrainArgs music;
  double valid_fraction = 0.05;
  uint64_t seed = 1;
  int64_t seq_len = 64;
  std::vector<CLI::Option*> music_only;
};

// "pass 1/2 counting  12.3 MB / 45.6 MB  27%  80.1 MB/s  ETA 0m03s" on stderr, redrawn at most
// ten times a second, only on a terminal. Both passes read every byte, so the ETA counts both.
class ProgressBar {
 public:
  ProgressBar(bool on, int passes) : on_(on && ::isatty(STDERR_FILENO) != 0), passes_(passes), start_(clock::now()) {}
  void draw(const PrepareProgress& p) {
    if (!on_) return;
    const auto now = clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double done = double(p.pass == 1 ? p.bytes_done : std::max<int64_t>(p.bytes_total, 0) + p.bytes_done);
    const double mbs = secs > 0 ? done / secs / 1e6 : 0;
    std::string line = passes_ == 1 ? std::string("reading ") + "  " + format_count(double(p.bytes_done)) + "B"
                                    : "pass " + std::to_string(p.pass) + "/2 " + (p.pass == 1 ? "counting" : "writing ") +
                                          "  " + format_count(double(p.bytes_done)) + "B";
    if (p.bytes_total > 0) {
      const double all = double(passes_) * double(p.bytes_total);
      char buf[96];
      std::snprintf(buf, sizeof buf, " / %sB  %3.0f%%  %.1f MB/s  ETA %s", format_count(double(p.bytes_total)).c_str(),
                    100.0 * done / all, mbs, format_duration(done > 0 ? secs * (all - done) / done : 0).c_str());
      line += buf;
    }
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    live_ = true;
  }
  void clear() {
    if (live_) std::fprintf(stderr, "\r\033[K");
    live_ = false;
  }

 private:
  using clock = std::chrono::steady_clock;
  bool on_, live_ = false;
  int passes_;
  clock::time_point start_, last_{};
};

// recur prepare --task music INPUT...: the pieces encoded once, each split a prepared corpus.
void run_music(PrepareArgs& a) {
  MusicTrainRequest r = a.music.request();
  r.valid_fraction = a.valid_fraction;
  r.seed = a.seed;
  MusicPrepareOptions o;
  o.data = music_data_options(r, "", "");
  o.mode = parse_text_mode(a.mode);
  o.seq_len = a.seq_len;
  o.shard_tokens = a.o.shard_tokens;
  ProgressBar bar(!a.quiet, 2);
  o.progress = [&](const PrepareProgress& p) { bar.draw(p); };
  const auto t0 = std::chrono::steady_clock::now();
  PreparedMusicInfo info;
  try {
    info = prepare_music_corpus(a.inputs, a.out, o);
  } catch (...) {
    bar.clear();
    throw;
  }
  bar.clear();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const std::string& n : info.notes) std::printf("%s\n", n.c_str());
  std::printf("prepared %s: %s; %s mode%s; %.1f s\n", a.out.c_str(), music_corpus_summary(o.data, info.stats).c_str(),
              text_mode_name(o.mode), o.mode == TextMode::lines ? (", windows of " + std::to_string(o.seq_len) + " tokens").c_str() : "",
              secs);
}

// recur prepare --task KIND FILE: one task file read once, a block at a time.
void run_task(PrepareArgs& a) {
  for (CLI::Option* opt : a.text_only)
    if (opt->count() > 0)
      throw CLI::ValidationError(opt->get_name() + ": applies to text corpora, not to --task " + a.task +
                       " (a task file's words are counted into tables; recur train builds the vocabulary)");
  if (a.task == "music") {
    if (a.columns.any() || a.keep_case)
      throw CLI::ValidationError("--token-column, --tag-column, --text-column, --label-column, --header and --keep-case "
                                 "say how a task file is read; they do not apply to --task music");
    return run_music(a);
  }
  for (CLI::Option* opt : a.music_only)
    if (opt->count() > 0)
      throw CLI::ValidationError(opt->get_name() + ": applies to --task music, not to --task " + a.task);
  if (a.mode_opt->count() > 0)
    throw CLI::ValidationError("--mode: applies to text corpora and --task music, not to --task " + a.task +
                               " (a task file's examples are its sentences, rows or pairs)");
  if (a.inputs.size() != 1)
    throw CLI::ValidationError("--task " + a.task + ": got " + std::to_string(a.inputs.size()) + " inputs, expected one task file");
  TaskSpec task;
  task.kind = parse_task_kind(a.task);
  task.lowercase = !a.keep_case;
  apply_column_overrides(task, a.columns);
  TaskPrepareOptions o;
  o.shard_ids = a.o.shard_tokens;
  o.read_block = a.o.read_block;
  ProgressBar bar(!a.quiet, 1);
  o.progress = [&](const PrepareProgress& p) { bar.draw(p); };
  const auto t0 = std::chrono::steady_clock::now();
  TaskPrepareResult r;
  try {
    r = prepare_task_corpus(task, a.inputs[0], a.out, o);
  } catch (...) {
    bar.clear();
    throw;
  }
  bar.clear();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("prepared %s: %lld %s examples, %lld ids in %lld shard%s; %lld distinct words, %lld %s",
              a.out.c_str(), (long long)r.examples, a.task.c_str(), (long long)r.ids, (long long)r.shards,
              r.shards == 1 ? "" : "s", (long long)r.inputs,
              (long long)(task.kind == TaskKind::classify ? r.labels : r.outputs),
              task.kind == TaskKind::classify ? "labels" : task.kind == TaskKind::tag ? "tags" : "target words");
  if (task.kind == TaskKind::tag) std::printf(" (%s)", tag_scheme_name(r.tag_scheme));
  std::printf("; %.1f MB in %.1f s (%.1f MB/s)\n", double(r.source_bytes) / 1e6, secs,
              secs > 0 ? double(r.source_bytes) / 1e6 / secs : 0.0);
}

void run(PrepareArgs& a) {
  if (!a.task.empty()) return run_task(a);
  a.o.level = a.level == "char" || a.level == "chars" ? TokenLevel::chars : TokenLevel::words;
  a.o.mode = parse_text_mode(a.mode);
  if (!a.vocab.empty()) a.o.fixed_vocab = std::make_shared<const Vocab>(read_prepared_vocab(a.vocab));
  ProgressBar bar(!a.quiet, 2);
  a.o.progress = [&](const PrepareProgress& p) { bar.draw(p); };
  const auto t0 = std::chrono::steady_clock::now();
  PrepareResult r;
  try {
    r = prepare_corpus(a.inputs, a.out, a.o);
  } catch (...) {
    bar.clear();
    throw;
  }
  bar.clear();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("prepared %s: %lld %s tokens", a.out.c_str(), (long long)r.tokens, token_level_name(a.o.level));
  if (a.o.mode == TextMode::lines) std::printf(" in %lld lines", (long long)r.examples);
  std::printf(", %lld shard%s of %d-bit ids, vocabulary %lld; %s: %.1f MB in %.1f s (%.1f MB/s)\n", (long long)r.shards,
              r.shards == 1 ? "" : "s", r.token_bits, (long long)r.vocab_size, r.oov.summary().c_str(),
              double(r.source_bytes) / 1e6, secs, secs > 0 ? double(r.source_bytes) / 1e6 / secs : 0.0);
}

}  // namespace

void add_prepare(CLI::App& app) {
  auto a = std::make_shared<PrepareArgs>();
  CLI::App* sub = app.add_subcommand("prepare", "Tokenise a text corpus once into shards that recur train DIR reads from disk");
  sub->add_option("INPUT", a->inputs, "Text files, folders (their files, recursively) or - for standard input")->required();
  sub->add_option("--out", a->out, "Folder of the prepared corpus: manifest.json, vocab.json, shard-NNNNN.bin")->required();
  sub->add_option("--task", a->task,
                  "Prepare a task file instead of text: tag (CoNLL), classify (TSV/CSV), seq2seq (source<TAB>target), or "
                  "music (MIDI, ABC or JSB JSON files and folders, encoded as recur train --task music does)")
      ->check(CLI::IsMember({"tag", "classify", "seq2seq", "music"}));
  CLI::Option* level = sub->add_option("--level", a->level, "Tokens: char (code points) or word (whitespace)")
      ->check(CLI::IsMember({"char", "word", "chars", "words"}))->capture_default_str();
  // The mode is fixed here because it decides what the ids are (a char stream keeps '\n' as a
  // token, lines do not) and the lines' offsets; recur train takes it from the manifest.
  CLI::Option* mode = sub->add_option("--mode", a->mode, "stream: one token sequence; lines: one example per non-empty line")
      ->check(CLI::IsMember({"stream", "lines"}))->capture_default_str();
  // --task: how the file is read, as recur train --task takes it (1-based columns, 0 = last).
  sub->add_option("--token-column", a->columns.token_column, "--task tag: column of the tokens (1-based)");
  sub->add_option("--tag-column", a->columns.tag_column, "--task tag: column of the tags (1-based, 0 = last)");
  sub->add_option("--text-column", a->columns.text_column, "--task classify: column of the text (1-based)");
  sub->add_option("--label-column", a->columns.label_column, "--task classify: column of the label (1-based, 0 = last)");
  sub->add_option("--header", a->columns.header, "--task classify: 1 the first row is a header, 0 none, -1 guess");
  sub->add_flag("--keep-case", a->keep_case, "--task classify|seq2seq: do not lower-case the text");
  CLI::Option* max_vocab = sub->add_option("--max-vocab", a->o.vocab.max_vocab, "Vocabulary size cap incl. <unk>, <eos> (0 = all)")
      ->check(CLI::Validator([](std::string& s) -> std::string {
                return s == "0" || std::atoll(s.c_str()) >= 3 ? "" : "expected 0 (unlimited) or >= 3";
              }, "0|>=3"))
      ->capture_default_str();
  CLI::Option* min_count = sub->add_option("--min-count", a->o.vocab.min_count, "Rarer tokens become <unk>")
      ->check(CLI::PositiveNumber)->capture_default_str();
  CLI::Option* vocab = sub->add_option("--vocab", a->vocab,
                  "Encode with this prepared corpus's vocabulary (its folder or vocab.json) instead of counting one: "
                  "validation and test sets for recur train --valid/--test and recur eval")
      ->excludes(max_vocab)->excludes(min_count);
  sub->add_option("--shard-tokens", a->o.shard_tokens, "Token ids per shard file")
      ->check(CLI::Range(int64_t(1), kPreparedMaxTokens))->capture_default_str();
  CLI::Option* count_entries = sub->add_option("--count-entries", a->o.count_entries,
                  "Distinct words counted in memory (about 100 bytes each) before counts spill to disk")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_flag("--quiet", a->quiet, "No progress bar");
  add_music_train_options(sub, a->music);
  CLI::Option* vf = sub->add_option("--valid-fraction", a->valid_fraction,
                                    "--task music: pieces held out for validation (JSB files keep their own split)")
                        ->check(CLI::Range(0.0, 0.99))->capture_default_str()->group("Music (--task music)");
  CLI::Option* seed = sub->add_option("--seed", a->seed, "--task music: which pieces are held out")
                          ->capture_default_str()->group("Music (--task music)");
  CLI::Option* seq_len = sub->add_option("--seq-len", a->seq_len,
                                         "--task music --mode lines: pieces cut into windows of this many tokens "
                                         "(recur train --seq-len must then be the same)")
                             ->check(CLI::Range(int64_t(1), int64_t(1) << 30))->capture_default_str()->group("Music (--task music)");
  a->music_only = {a->music.encoding_opt, a->music.transpose_opt, a->music.drums_opt, a->music.channels_opt, vf, seed, seq_len};
  if (CLI::Option* jsb = sub->get_option_no_throw("--jsb-steps-per-quarter")) a->music_only.push_back(jsb);
  a->mode_opt = mode;
  a->text_only = {level, max_vocab, min_count, vocab, count_entries};
  sub->callback([a] {
    if (a->task.empty() && (a->columns.any() || a->keep_case))
      throw CLI::ValidationError("--token-column, --tag-column, --text-column, --label-column, --header and --keep-case "
                                 "say how a task file is read; expected --task tag|classify|seq2seq with them");
    if (a->task.empty())
      for (CLI::Option* opt : a->music_only)
        if (opt->count() > 0) throw CLI::ValidationError(opt->get_name() + ": applies to --task music");
    run(*a);
  });
}

}  // namespace recur::cli
