#include "recur/music/music_generate.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "recur/model/lm.h"
#include "recur/model/stepper.h"
#include "run_program.h"

namespace recur {

namespace fs = std::filesystem;

double music_token_seconds(const MusicTask& task, const std::string& token) {
  if (task.encoding == MusicEncoding::event) {
    if (token.rfind("TIME_SHIFT_", 0) == 0) return std::strtol(token.c_str() + 11, nullptr, 10) / 1000.0;
    return 0.0;
  }
  const size_t d = token.rfind("_D");
  if (d == std::string::npos) return 0.0;
  const double sixteenth = 60.0 / task.tokens.tempo_bpm / 4.0;
  return double(std::strtol(token.c_str() + d + 2, nullptr, 10)) * sixteenth;
}

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

  ModelStepper<float> stepper(model.graph(), model.params, lm_stepper_options());
  ModelCache<float> cache;
  StepperStart<float> start = stepper.start({}, 1, cache);  // zero state, carried from token to token
  Tensor<float> logits;                                      // [1, V]
  auto feed = [&](int32_t id) { stepper.step(std::span<const int32_t>(&id, 1), start.state, start.context, logits); };

  MusicSample out;
  feed(Vocab::eos_id);  // a piece starts after <eos>, as in training
  for (const std::string& tok : opts.prime) {
    if (!model.vocab.contains(tok) || tok == Vocab::unk_token || tok == Vocab::eos_token)
      throw Error("--prime-midi: token '" + tok + "' is not in the model's vocabulary");
    feed(model.vocab.id(tok));
    out.tokens.push_back(tok);
  }
  out.prime_tokens = int64_t(out.tokens.size());

  SamplerScratch scratch;
  double seconds = 0;
  for (int64_t n = 0; n < opts.length; ++n) {
    const int32_t id = sample_token(std::span<const float>(logits.data), opts.sample, rng, scratch);
    if (id == Vocab::eos_id) {
      out.ended = true;
      break;
    }
    // <unk> never occurs in music training data, so its output row is untrained; drawing it is
    // possible in principle and harmless to skip (the draw is spent either way).
    if (id != Vocab::unk_id) {
      const std::string& tok = model.vocab.token(id);
      out.tokens.push_back(tok);
      ++out.generated_tokens;
      seconds += music_token_seconds(task, tok);
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
