#include "music_cli_util.h"

#include <cstdio>
#include <filesystem>

#include "recur/music/music_corpus.h"
#include "recur/music/music_generate.h"

namespace recur::cli {

namespace fs = std::filesystem;

namespace {

// "3" -> -3..3, "-2..5" -> -2..5.
std::pair<int, int> parse_transpose(const std::string& s) {
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

std::string numbered(const std::string& path, int64_t i) {
  if (i == 0) return path;
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(i + 1) + p.extension().string())).string();
}

}  // namespace

void add_music_train_options(CLI::App* sub, MusicTrainArgs& a) {
  const std::string g = "Music (--task music)";
  a.encoding_opt = sub->add_option("--encoding", a.encoding, "Music tokens: event (polyphonic) or mono (melody, pitch+duration)")
                       ->check(CLI::IsMember({"event", "mono"}))->capture_default_str()->group(g);
  a.transpose_opt = sub->add_option("--transpose", a.transpose,
                                    "Augment training pieces with every shift in MIN..MAX semitones (e.g. --transpose=-3..3; N = -N..N)")
                        ->capture_default_str()->group(g);
  a.drums_opt = sub->add_flag("--keep-drums", a.keep_drums, "Encode channel-10 drum notes as pitches")->group(g);
  a.channels_opt = sub->add_option("--channels", a.channels, "Keep only notes on these MIDI channel indices (0..15, 9 = drums)")
                       ->group(g);
  sub->add_option("--jsb-steps-per-quarter", a.jsb_steps, "JSB JSON time steps per quarter (0 = from the file name)")
      ->capture_default_str()->group(g);
}

TokenCorpus music_training_corpus(const MusicTrainArgs& a, const std::vector<std::string>& inputs,
                                  const TrainOptions& o, const std::string& saved_task,
                                  const std::function<void(const std::string&)>& note) {
  if (!o.valid_path.empty() || !o.test_path.empty())
    throw Error(std::string(o.valid_path.empty() ? "--test" : "--valid") +
                ": not used with --task music; validation pieces are held out from DATA (--valid-fraction) and JSB "
                "JSON files bring their own valid/test split");
  MusicDataOptions mo;
  mo.encoding = parse_music_encoding(a.encoding);
  std::tie(mo.transpose_min, mo.transpose_max) = parse_transpose(a.transpose);
  mo.keep_drums = a.keep_drums;
  mo.channels = a.channels;
  if (!saved_task.empty() && is_music_task(saved_task)) {
    // A resumed run keeps the data layout: options not given again come from the checkpoint.
    const MusicTask t = music_task_from_json(saved_task, o.resume_path);
    if (a.encoding_opt->count() == 0) mo.encoding = t.encoding;
    if (a.transpose_opt->count() == 0) mo.transpose_min = t.transpose_min, mo.transpose_max = t.transpose_max;
    if (a.drums_opt->count() == 0) mo.keep_drums = t.tokens.keep_drums;
    if (a.channels_opt->count() == 0) mo.channels = t.channels;
  }
  mo.valid_fraction = o.valid_fraction;
  mo.seed = o.seed;
  mo.jsb_steps_per_quarter = a.jsb_steps;
  const MusicSet set = load_music(inputs, mo);
  for (const std::string& n : set.notes) note(n);
  MusicCorpusStats st;
  TokenCorpus c = make_music_corpus(set, mo, o.mode, o.seq_len, &st);
  char buf[320];
  std::snprintf(buf, sizeof buf, "music (%s): %lld training pieces (%lld tokens), %lld validation (%lld), %lld test (%lld)",
                music_encoding_name(mo.encoding), (long long)st.train_pieces, (long long)st.train_tokens,
                (long long)st.valid_pieces, (long long)st.valid_tokens, (long long)st.test_pieces,
                (long long)st.test_tokens);
  std::string msg = buf;
  if (mo.transpose_min != 0 || mo.transpose_max != 0)
    msg += "; transposed " + std::to_string(mo.transpose_min) + ".." + std::to_string(mo.transpose_max) + " (" +
           std::to_string(st.transposed_out_of_range) + " notes out of range dropped)";
  note(msg);
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
}

bool music_output_requested(const MusicSampleArgs& a) {
  return !a.midi_out.empty() || !a.wav_out.empty() || !a.prime_midi.empty() || a.seconds > 0;
}

void run_music_sample(const LmModel& model, const std::string& model_path, const MusicSampleArgs& m,
                      const GenerateOptions& gen, bool length_given, int64_t count, uint64_t seed) {
  if (!is_music_task(model.task))
    throw Error(model_path + ": not a music model, so --midi-out, --wav-out, --seconds and --prime-midi do not apply; "
                "expected a checkpoint from recur train --task music");
  if (!gen.prime.empty()) throw Error("--prime: a music model is primed with --prime-midi FILE.mid");
  const MusicTask task = music_task_from_json(model.task, model_path);
  MusicGenerateOptions mg;
  mg.sample = gen.sample;
  mg.length = gen.length;
  mg.seconds = m.seconds;
  if (m.seconds > 0 && !length_given) mg.length = 1000000;  // the duration decides; this only stops a runaway
  if (!m.prime_midi.empty()) mg.prime = music_prime_from_midi(m.prime_midi, m.prime_bars, task);
  // --wav-out alone renders from a temporary MIDI file next to the WAV.
  if (!m.wav_out.empty() && m.midi_out.empty() && count > 1)
    throw Error("--wav-out with --count > 1: also give --midi-out so each piece has a file");
  for (const std::string& out : {m.midi_out, m.wav_out}) {  // build/x/piece.mid: make build/x
    std::error_code ec;
    if (!out.empty() && fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path(), ec);
  }
  Rng rng(seed);
  for (int64_t i = 0; i < count; ++i) {
    const MusicSample s = generate_music(model, mg, rng, model_path);
    if (m.midi_out.empty() && m.wav_out.empty()) {
      std::string line;
      for (size_t k = 0; k < s.tokens.size(); ++k) line += (k ? " " : "") + s.tokens[k];
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
      continue;
    }
    const bool temp_midi = m.midi_out.empty();
    const std::string mid = temp_midi ? m.wav_out + ".tmp.mid" : numbered(m.midi_out, i);
    write_midi(s.perf, mid);
    std::string where = temp_midi ? std::string() : mid;
    if (!m.wav_out.empty()) {
      const std::string wav = numbered(m.wav_out, i);
      try {
        render_wav(mid, wav, m.soundfont);
      } catch (...) {
        std::error_code ec;
        if (temp_midi) fs::remove(mid, ec);
        throw;
      }
      if (temp_midi) {
        std::error_code ec;
        fs::remove(mid, ec);
      }
      where += (where.empty() ? "" : " and ") + wav;
    }
    std::fprintf(stderr, "recur: piece %lld: %lld tokens (%lld prime), %zu notes, %.1f s%s -> %s\n",
                 (long long)(i + 1), (long long)s.tokens.size(), (long long)s.prime_tokens, s.perf.notes.size(),
                 s.perf.end_time, s.ended ? ", ended by the model" : "", where.c_str());
  }
}

}  // namespace recur::cli
