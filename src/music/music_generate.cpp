#include "recur/music/music_generate.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>

#include "recur/model/lm.h"
#include "recur/model/stepper.h"
#include "run_program.h"

namespace recur {

namespace fs = std::filesystem;

double music_token_seconds(const MusicTask& task, const std::string& token) {
  if (task.encoding != MusicEncoding::mono) {
    if (token.rfind("TIME_SHIFT_", 0) == 0) return std::strtol(token.c_str() + 11, nullptr, 10) / 1000.0;
    return 0.0;
  }
  const size_t d = token.rfind("_D");
  if (d == std::string::npos) return 0.0;
  const double sixteenth = 60.0 / task.tokens.tempo_bpm / 4.0;
  return double(std::strtol(token.c_str() + d + 2, nullptr, 10)) * sixteenth;
}

namespace {

// The event grammar and the data's limits during sampling (MusicGenerateOptions::limit_to_data):
// which pitches sound since when, what each token id is, and the mask they give.
class EventGuard {
 public:
  EventGuard(const Vocab& vocab, const MusicTask& task) : task_(task), kind_(size_t(vocab.size())) {
    for (int32_t id = 0; id < vocab.size(); ++id) {
      const std::string& t = vocab.token(id);
      Kind& k = kind_[size_t(id)];
      if (t.rfind("NOTE_ON_", 0) == 0) k.on = std::atoi(t.c_str() + 8);
      else if (t.rfind("NOTE_OFF_", 0) == 0) k.off = std::atoi(t.c_str() + 9);
      else if (t.rfind("TIME_SHIFT_", 0) == 0) k.shift = music_token_seconds(task, t);
      if (k.off >= 0) off_id_[size_t(k.off)] = id;
    }
  }
  bool full() const { return task_.max_polyphony > 0 && int(onset_.size()) + instant_ >= task_.max_polyphony; }
  // logits [V] -> the same with the tokens the grammar forbids at -inf: a NOTE_OFF of a silent
  // key, a NOTE_ON of a key struck at this very instant, and every NOTE_ON when the voices are
  // full of notes begun at this instant (nothing is left to end).
  void mask(std::span<const float> logits, std::vector<float>& out) const {
    out.assign(logits.begin(), logits.end());
    const bool no_voice = full() && !oldest();
    for (size_t id = 0; id < out.size(); ++id) {
      const Kind& k = kind_[id];
      const auto down = k.on >= 0 ? onset_.find(k.on) : onset_.end();
      if ((k.off >= 0 && !onset_.count(k.off)) ||
          (k.on >= 0 && (down != onset_.end() ? down->second == now_ : no_voice)))
        out[id] = -std::numeric_limits<float>::infinity();
    }
  }
  // The sounding note that began first, if it began before now (a note begun now cannot be
  // ended to make room: decoding would still give it one step).
  const std::pair<const int, double>* oldest() const {
    const std::pair<const int, double>* best = nullptr;
    for (const auto& e : onset_)
      if (e.second < now_ && (!best || e.second < best->second)) best = &e;
    return best;
  }
  // The NOTE_OFF ids to insert before token `id`: for a NOTE_ON of a key that is down, that key's
  // (the model lost track of it: the note is struck again); for a NOTE_ON while max_polyphony
  // notes sound, the one that began first (the voice a synthesizer would steal: the model asked
  // for a new note, usually the next chord's, before ending the old one); for a TIME_SHIFT, the
  // notes it would carry past the longest note.
  std::vector<int32_t> offs_before(int32_t id) const {
    std::vector<int32_t> out;
    const Kind& k = kind_[size_t(id)];
    if (k.on >= 0 && onset_.count(k.on)) {
      out.push_back(off_id_[size_t(k.on)]);
    } else if (k.on >= 0 && full() && oldest()) {
      out.push_back(off_id_[size_t(oldest()->first)]);
    }
    if (k.shift <= 0 || task_.max_note_seconds <= 0) return out;
    for (const auto& [pitch, onset] : onset_)
      if (now_ + k.shift - onset > task_.max_note_seconds + 1e-9) out.push_back(off_id_[size_t(pitch)]);
    return out;
  }
  void take(int32_t id) {
    const Kind& k = kind_[size_t(id)];
    if (k.on >= 0) onset_[k.on] = now_;
    if (k.off >= 0) {
      // A note ended at the instant it began still sounds for one step when decoded.
      auto it = onset_.find(k.off);
      if (it != onset_.end() && it->second == now_) ++instant_;
      if (it != onset_.end()) onset_.erase(it);
    }
    if (k.shift > 0) instant_ = 0;
    now_ += k.shift;
  }

 private:
  struct Kind {
    int on = -1, off = -1;  // pitch of a NOTE_ON / NOTE_OFF
    double shift = 0;       // seconds of a TIME_SHIFT
  };
  const MusicTask& task_;
  std::vector<Kind> kind_;              // [V]
  std::array<int32_t, 128> off_id_{};   // pitch -> its NOTE_OFF id
  std::map<int, double> onset_;         // sounding pitch -> when it started
  double now_ = 0;                      // seconds since the piece began
  int instant_ = 0;                     // notes begun and ended at now_ (decoded one step long)
};

// The duration grammar and the data's limits during sampling: a NOTE is followed by one DUR and
// nothing else; a DUR longer than the data's longest note, a NOTE of a key still sounding, and a
// NOTE while max_polyphony notes sound are forbidden. Nothing is ever inserted (a note ends by
// its own length), so no draw is spent and no token is forced.
class DurationGuard {
 public:
  DurationGuard(const Vocab& vocab, const MusicTask& task) : task_(task), kind_(size_t(vocab.size())) {
    for (int32_t id = 0; id < vocab.size(); ++id) {
      const std::string& t = vocab.token(id);
      Kind& k = kind_[size_t(id)];
      if (t.rfind("NOTE_", 0) == 0) k.note = std::atoi(t.c_str() + 5);
      else if (t.rfind("DUR_", 0) == 0) k.dur = std::atoi(t.c_str() + 4) / 1000.0;
      else if (t.rfind("TIME_SHIFT_", 0) == 0) k.shift = music_token_seconds(task, t);
    }
    // The shortest length stays allowed whatever the limit, so a NOTE always has a way out.
    for (const Kind& k : kind_)
      if (k.dur > 0) shortest_ = shortest_ > 0 ? std::min(shortest_, k.dur) : k.dur;
  }
  // logits [V] -> the same with what the grammar and limits forbid at -inf.
  void mask(std::span<const float> logits, std::vector<float>& out) const {
    out.assign(logits.begin(), logits.end());
    const double limit = task_.max_note_seconds > 0 ? task_.max_note_seconds + 1e-9 : 1e300;
    int sounding = 0;
    for (double end : end_) sounding += end > now_ + 1e-9;
    const bool full = task_.max_polyphony > 0 && sounding >= task_.max_polyphony;
    for (size_t id = 0; id < out.size(); ++id) {
      const Kind& k = kind_[id];
      bool forbid;
      if (pending_ >= 0) forbid = k.dur <= 0 || (k.dur > limit && k.dur > shortest_);  // only a DUR
      else forbid = k.dur > 0 || (k.note >= 0 && (full || end_[size_t(k.note)] > now_ + 1e-9));
      if (forbid) out[id] = -std::numeric_limits<float>::infinity();
    }
  }
  void take(int32_t id) {
    const Kind& k = kind_[size_t(id)];
    if (k.note >= 0) pending_ = k.note;
    if (k.dur > 0 && pending_ >= 0) end_[size_t(pending_)] = now_ + k.dur, pending_ = -1;
    now_ += k.shift;
  }

 private:
  struct Kind {
    int note = -1;     // pitch of a NOTE
    double dur = 0;    // seconds of a DUR
    double shift = 0;  // seconds of a TIME_SHIFT
  };
  const MusicTask& task_;
  std::vector<Kind> kind_;           // [V]
  std::array<double, 128> end_{};    // pitch -> when its last note ends (0: never struck)
  double shortest_ = 0;              // the shortest DUR, seconds
  double now_ = 0;                   // seconds since the piece began
  int pending_ = -1;                 // a NOTE waiting for its DUR
};

}  // namespace

MusicSample generate_music(const LmModel& model, const MusicGenerateOptions& opts, Rng& rng,
                           const std::string& origin) {
  if (!is_music_task(model.task))
    throw Error(origin + ": not a music model (trained without --task music); expected a checkpoint from "
                "recur train --task music");
  const MusicTask task = music_task_from_json(model.task, origin);
  opts.sample.validate();
  if (opts.length < 1) throw Error("--length: got " + std::to_string(opts.length) + ", expected >= 1");
  if (!(opts.seconds >= 0) || !std::isfinite(opts.seconds))
    throw Error("--seconds: expected a duration >= 0 (0 = no limit)");

  ModelStepper<float> stepper(model.graph(), model.params, lm_stepper_options(model.precision));  // an export's, or --precision
  ModelCache<float> cache;
  StepperStart<float> start = stepper.start({}, 1, cache);  // zero state, carried from token to token
  Tensor<float> logits;                                      // [1, V]
  auto feed = [&](int32_t id) { stepper.step(std::span<const int32_t>(&id, 1), start.state, start.context, logits); };

  MusicSample out;
  std::optional<EventGuard> guard;
  std::optional<DurationGuard> dguard;
  // A checkpoint from before the limits were recorded samples exactly as it always did (the same
  // seed, the same piece), grammar included.
  const bool limits = opts.limit_to_data && (task.max_note_seconds > 0 || task.max_polyphony > 0);
  if (limits && task.encoding == MusicEncoding::event) guard.emplace(model.vocab, task);
  if (limits && task.encoding == MusicEncoding::duration) dguard.emplace(model.vocab, task);
  feed(Vocab::eos_id);  // a piece starts after <eos>, as in training
  for (const std::string& tok : opts.prime) {
    if (!model.vocab.contains(tok) || tok == Vocab::unk_token || tok == Vocab::eos_token)
      throw Error("--prime-midi: token '" + tok + "' is not in the model's vocabulary");
    const int32_t id = model.vocab.id(tok);
    feed(id);
    if (guard) guard->take(id);
    if (dguard) dguard->take(id);
    out.tokens.push_back(tok);
  }
  out.prime_tokens = int64_t(out.tokens.size());

  SamplerScratch scratch;
  std::vector<float> masked;  // [V] the logits with what the guard forbids at -inf
  double seconds = 0;
  auto emit = [&](int32_t id) {
    const std::string& tok = model.vocab.token(id);
    out.tokens.push_back(tok);
    ++out.generated_tokens;
    seconds += music_token_seconds(task, tok);
    if (guard) guard->take(id);
    if (dguard) dguard->take(id);
  };
  for (int64_t n = 0; n < opts.length; ++n) {
    if (guard) guard->mask(logits.data, masked);
    if (dguard) dguard->mask(logits.data, masked);
    const bool held = guard || dguard;
    const int32_t id = sample_token(std::span<const float>(held ? masked : logits.data), opts.sample, rng, scratch);
    if (id == Vocab::eos_id) {
      out.ended = true;
      break;
    }
    // <unk> never occurs in music training data, so its output row is untrained; drawing it is
    // possible in principle and harmless to skip (the draw is spent either way).
    if (id != Vocab::unk_id) {
      if (guard)
        for (int32_t off : guard->offs_before(id)) {
          emit(off);
          ++out.forced_note_offs;
          feed(off);
        }
      emit(id);
      if (opts.seconds > 0 && seconds >= opts.seconds) break;
    }
    feed(id);
  }
  out.perf = decode_music(out.tokens, task.encoding, task.tokens, origin + ": generated tokens");
  return out;
}

std::string default_soundfont() {
  if (const char* env = std::getenv("RECUR_SOUNDFONT"); env && *env) return env;
  for (const char* p : {"/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2"}) {
    std::error_code ec;
    if (fs::exists(p, ec)) return p;
  }
  return {};
}

void render_wav(const std::string& midi_path, const std::string& wav_path, const std::string& soundfont,
                int sample_rate) {
  const std::string prog = detail::find_program("fluidsynth");
  if (prog.empty())
    throw Error("--wav-out: fluidsynth is not installed; install it with scripts/setup.sh music (Debian packages "
                "fluidsynth and fluid-soundfont-gm), or drop --wav-out and play the .mid file");
  const std::string sf = soundfont.empty() ? default_soundfont() : soundfont;
  std::error_code ec;
  if (sf.empty())
    throw Error("--wav-out: no General MIDI soundfont found (looked for /usr/share/sounds/sf2/FluidR3_GM.sf2); install "
                "it with scripts/setup.sh music (Debian package fluid-soundfont-gm) or pass --soundfont FILE.sf2");
  if (!fs::is_regular_file(sf, ec)) throw Error("--soundfont: " + sf + ": no such file");
  // Rendered beside the target and renamed, so a failed or interrupted render never leaves a
  // truncated WAV under the name asked for.
  const fs::path target(wav_path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string hidden = std::string(".").append(target.filename().string());  // append: g++ 12 false -Wrestrict
  const std::string tmp = (dir / (hidden + ".tmp.wav")).string();
  const std::string log = (dir / (hidden + ".fluidsynth.log")).string();
  const int rc = detail::run_program(
      {prog, "-ni", "-q", "-F", tmp, "-r", std::to_string(sample_rate), "-g", "0.5", sf, midi_path}, "", log);
  const std::string why = detail::last_log_line(log);
  fs::remove(log, ec);
  if (rc != 0 || !fs::is_regular_file(tmp, ec) || fs::file_size(tmp, ec) <= 44) {
    fs::remove(tmp, ec);
    throw Error(wav_path + ": fluidsynth failed (exit status " + std::to_string(rc) + ")" +
                (why.empty() ? std::string() : ": " + why));
  }
  fs::rename(tmp, wav_path, ec);
  if (ec) {
    const std::string msg = ec.message();
    fs::remove(tmp, ec);
    throw Error(wav_path + ": cannot write: " + msg);
  }
}

std::vector<std::string> music_prime_from_midi(const std::string& midi_path, double bars, const MusicTask& task) {
  Performance p = first_bars(read_midi(midi_path), bars);
  if (!task.channels.empty())
    std::erase_if(p.notes, [&](const Note& n) {
      return std::find(task.channels.begin(), task.channels.end(), n.channel) == task.channels.end();
    });
  std::vector<std::string> prime = encode_music(p, task.encoding, task.tokens);
  if (prime.empty())
    throw Error("--prime-midi: " + midi_path + ": no notes in the first " + std::to_string(bars) + " bar(s)" +
                (task.channels.empty() ? "" : " on the model's channels"));
  return prime;
}

namespace {

// Piece i of several: a.mid, a-2.mid, a-3.mid, ...
std::string numbered(const std::string& path, int64_t i) {
  if (i == 0) return path;
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(i + 1) + p.extension().string())).string();
}

}  // namespace

void sample_music_pieces(const LmModel& model, const MusicGenerateOptions& opts, const MusicSampleFiles& files,
                         int64_t count, Rng& rng, const std::string& origin,
                         const std::function<void(const MusicPieceWritten&)>& done) {
  namespace fs = std::filesystem;
  if (!files.wav_out.empty() && files.midi_out.empty() && count > 1)
    throw Error("--wav-out with --count > 1: also give --midi-out so each piece has a file");
  for (const std::string& out : {files.midi_out, files.wav_out}) {  // build/x/piece.mid: make build/x
    std::error_code ec;
    if (!out.empty() && fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path(), ec);
  }
  for (int64_t i = 0; i < count; ++i) {
    MusicPieceWritten w;
    w.index = i;
    w.sample = generate_music(model, opts, rng, origin);
    if (!files.midi_out.empty() || !files.wav_out.empty()) {
      const bool temp_midi = files.midi_out.empty();
      const std::string mid = temp_midi ? files.wav_out + ".tmp.mid" : numbered(files.midi_out, i);
      write_midi(w.sample.perf, mid);
      if (!temp_midi) w.where = mid;
      if (!files.wav_out.empty()) {
        const std::string wav = numbered(files.wav_out, i);
        try {
          render_wav(mid, wav, files.soundfont);
        } catch (...) {
          std::error_code ec;
          if (temp_midi) fs::remove(mid, ec);
          throw;
        }
        if (temp_midi) {
          std::error_code ec;
          fs::remove(mid, ec);
        }
        w.where += (w.where.empty() ? "" : " and ") + wav;
      }
    }
    done(w);
  }
}

}  // namespace recur
