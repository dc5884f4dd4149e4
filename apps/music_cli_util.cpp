#include "music_cli_util.h"

#include <cstdio>
#include <filesystem>

#include "recur/music/music_corpus.h"
#include "recur/music/music_generate.h"
#include "recur/music/prepared_music.h"

namespace recur::cli {

void add_music_train_options(CLI::App* sub, MusicTrainArgs& a) {
  const std::string g = "Music (--task music)";
  a.encoding_opt = sub->add_option("--encoding", a.encoding, "Music tokens: event (polyphonic, NOTE_ON/NOTE_OFF), duration (polyphonic, NOTE + its length) or mono (melody, pitch+duration)")
                       ->check(CLI::IsMember({"event", "mono", "duration"}))->capture_default_str()->group(g);
  a.transpose_opt = sub->add_option("--transpose", a.transpose,
                                    "Augment training pieces with every shift in MIN..MAX semitones (e.g. --transpose=-3..3; N = -N..N)")
                        ->capture_default_str()->group(g);
  a.drums_opt = sub->add_flag("--keep-drums", a.keep_drums, "Encode channel-10 drum notes as pitches")->group(g);
  a.channels_opt = sub->add_option("--channels", a.channels, "Keep only notes on these MIDI channel indices (0..15, 9 = drums)")
                       ->group(g);
  sub->add_option("--jsb-steps-per-quarter", a.jsb_steps, "JSB JSON time steps per quarter (0 = from the file name)")
      ->capture_default_str()->group(g);
}

MusicTrainRequest MusicTrainArgs::request() const {
  MusicTrainRequest r;
  if (encoding_opt->count()) r.encoding = encoding;
  if (transpose_opt->count()) r.transpose = transpose;
  if (drums_opt->count()) r.keep_drums = keep_drums;
  if (channels_opt->count()) r.channels = channels;
  r.jsb_steps_per_quarter = jsb_steps;
  return r;
}

void apply_prepared_music(const MusicTrainArgs& a, const std::vector<std::string>& inputs, TrainOptions& o) {
  if (inputs.size() != 1 || !is_prepared_music_corpus(inputs[0])) return;
  const PreparedMusicInfo info = read_prepared_music(inputs[0]);
  const std::string where = inputs[0] + "/music.json";
  for (CLI::Option* opt : {a.encoding_opt, a.transpose_opt, a.drums_opt, a.channels_opt})
    if (opt->count() > 0)
      throw Error(opt->get_name() + ": the prepared music corpus fixes it (" + where + "); prepare the music again with " +
                  opt->get_name() + " or leave it out");
  if (a.jsb_steps != 0 || o.given.count("--valid-fraction"))
    throw Error(std::string(a.jsb_steps != 0 ? "--jsb-steps-per-quarter" : "--valid-fraction") +
                ": the prepared music corpus fixes how its pieces were read and split (" + where +
                "); give it to recur prepare --task music");
  if (o.given.count("--mode") && o.mode != info.mode)
    throw Error(std::string("--mode ") + text_mode_name(o.mode) + " does not match the prepared music corpus's " +
                text_mode_name(info.mode) + " (" + where + "); prepare the music again with --mode " + text_mode_name(o.mode) +
                " or leave --mode out");
  o.mode = info.mode;
  if (info.mode == TextMode::lines) {
    if (o.given.count("--seq-len") && o.seq_len != info.seq_len)
      throw Error("--seq-len " + std::to_string(o.seq_len) + " does not match the prepared music corpus's windows of " +
                  std::to_string(info.seq_len) + " tokens (" + where + "); prepare the music again with --seq-len " +
                  std::to_string(o.seq_len) + " or leave --seq-len out");
    o.seq_len = info.seq_len;
  }
}

TokenCorpus music_training_corpus(const MusicTrainArgs& a, const std::vector<std::string>& inputs,
                                  const TrainOptions& o, const std::string& saved_task,
                                  const std::function<void(const std::string&)>& note) {
  if (inputs.size() == 1 && is_prepared_music_corpus(inputs[0])) {
    // Read, split and encoded by recur prepare --task music: the splits stay on disk.
    const PreparedMusicInfo info = read_prepared_music(inputs[0]);
    TokenCorpus c;
    c.vocab = PreparedCorpus((std::filesystem::path(inputs[0]) / "train").string()).vocab();
    c.task = info.task;
    c.prepared = inputs[0];
    MusicDataOptions mo;
    mo.encoding = music_task_from_json(info.task, inputs[0]).encoding;
    const MusicTask t = music_task_from_json(info.task, inputs[0]);
    mo.transpose_min = t.transpose_min;
    mo.transpose_max = t.transpose_max;
    note(inputs[0] + " is a prepared music corpus: " + music_corpus_summary(mo, info.stats));
    return c;
  }
  MusicTrainRequest r = a.request();
  r.valid_fraction = valid_fraction_for(o.valid_fraction, 0, false);
  r.seed = o.seed;
  const MusicDataOptions mo = music_data_options(r, saved_task, o.resume_path);
  const MusicSet set = load_music(inputs, mo);
  for (const std::string& n : set.notes) note(n);
  MusicCorpusStats st;
  TokenCorpus c = make_music_corpus(set, mo, o.mode, o.seq_len, &st);
  note(music_corpus_summary(mo, st));
  return c;
}

void add_music_sample_options(CLI::App* sub, MusicSampleArgs& a) {
  const std::string g = "Music models";
  sub->add_option("--midi-out", a.midi_out, "Write the piece as a MIDI file (--count > 1: FILE-2.mid, ...)")->group(g);
  sub->add_option("--wav-out", a.wav_out, "Also render it to WAV with FluidSynth (scripts/setup.sh music)")->group(g);
  sub->add_option("--seconds", a.seconds, "Stop once the generated music lasts this long (0 = use --length)")
      ->check(CLI::NonNegativeNumber)->group(g);
  sub->add_option("--prime-midi", a.prime_midi, "Start from the first --prime-bars bars of this MIDI file")->group(g);
  sub->add_option("--prime-bars", a.prime_bars, "Bars of --prime-midi fed as the prime")->capture_default_str()->group(g);
  sub->add_option("--soundfont", a.soundfont, "SoundFont for --wav-out (default: Debian's FluidR3_GM.sf2)")->group(g);
  sub->add_flag("--no-limits", a.no_limits,
                "Event encoding: draw freely instead of holding notes to the training data's longest note and most "
                "notes at once (docs/music.md)")
      ->group(g);
}

bool music_output_requested(const MusicSampleArgs& a) {
  return !a.midi_out.empty() || !a.wav_out.empty() || !a.prime_midi.empty() || a.seconds > 0 || a.no_limits;
}

void run_music_sample(const LmModel& model, const std::string& model_path, const MusicSampleArgs& m,
                      const GenerateOptions& gen, bool length_given, int64_t count, uint64_t seed) {
  if (!is_music_task(model.task))
    throw Error(model_path + ": not a music model, so --midi-out, --wav-out, --seconds, --prime-midi and --no-limits do not apply; "
                "expected a checkpoint from recur train --task music");
  if (!gen.prime.empty()) throw Error("--prime: a music model is primed with --prime-midi FILE.mid");
  const MusicTask task = music_task_from_json(model.task, model_path);
  MusicGenerateOptions mg;
  mg.sample = gen.sample;
  mg.length = gen.length;
  mg.seconds = m.seconds;
  mg.limit_to_data = !m.no_limits;
  if (m.seconds > 0 && !length_given) mg.length = 1000000;  // the duration decides; this only stops a runaway
  if (!m.prime_midi.empty()) mg.prime = music_prime_from_midi(m.prime_midi, m.prime_bars, task);
  Rng rng(seed);
  sample_music_pieces(model, mg, {.midi_out = m.midi_out, .wav_out = m.wav_out, .soundfont = m.soundfont}, count, rng,
                      model_path, [](const MusicPieceWritten& w) {
                        const MusicSample& s = w.sample;
                        if (w.where.empty()) {  // no files: the tokens, one piece per line
                          std::string line;
                          for (size_t k = 0; k < s.tokens.size(); ++k) line += (k ? " " : "") + s.tokens[k];
                          std::printf("%s\n", line.c_str());
                          std::fflush(stdout);
                          return;
                        }
                        std::fprintf(stderr, "recur: piece %lld: %lld tokens (%lld prime), %zu notes, %.1f s%s -> %s\n",
                                     (long long)(w.index + 1), (long long)s.tokens.size(), (long long)s.prime_tokens,
                                     s.perf.notes.size(), s.perf.end_time, s.ended ? ", ended by the model" : "",
                                     w.where.c_str());
                      });
}

}  // namespace recur::cli
