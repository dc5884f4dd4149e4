// recur sample MODEL - generate text from a trained language model (lm_text.h).
#include <cstdio>
#include <memory>
#include <string>

#include "cli_io.h"
#include "commands.h"
#include "lm_cli_util.h"
#include "music_cli_util.h"
#include "recur/tasks/lm_text.h"
#include "task_cli.h"
#include "recur/data/text_data.h"

namespace recur::cli {
namespace {

struct SampleArgs {
  std::string model;
  GenerateOptions gen;
  int64_t count = 1;
  std::string prime_file;
  uint64_t seed = 1;
  int threads = 0;
  std::string precision;  // --precision, empty = the file's
  MusicSampleArgs music;
  CLI::Option* length_opt = nullptr;
  std::string out;    // -o: empty or '-' = standard output
  bool json = false;  // JSON Lines, one {text} (or {condition, text}) object per sample
};

// 'x' for a warning line; control characters escaped so the line stays one line.
std::string quoted(const std::string& tok) {
  std::string out = "'";
  for (unsigned char c : tok) {
    char buf[8];
    if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "'";
}

void run(SampleArgs& a) {
  apply_threads(a.threads);
  if (a.count < 1) throw Error("--count: got " + std::to_string(a.count) + ", expected >= 1");
  if (a.gen.length < 1) throw Error("--length: got " + std::to_string(a.gen.length) + ", expected >= 1");
  a.gen.sample.validate();
  if (!a.prime_file.empty()) {
    if (!a.gen.prime.empty()) throw Error("--prime and --prime-file: expected at most one of them");
    a.gen.prime = read_text_file(a.prime_file);
  }
  if (is_task_model(a.model)) {
    TaskSampleRequest q{.count = a.count, .temperature = a.gen.sample.temperature, .argmax = a.gen.sample.argmax,
                        .seed = a.seed, .max_length = a.length_opt->count() ? a.gen.length : 50, .threads = a.threads,
                        .json = a.json, .out = a.out, .precision = a.precision};
    return run_task_sample(a.model, q);
  }
  LmModel model = load_model(a.model);
  model.precision = precision_or(a.precision, model.precision);
  if (music_output_requested(a.music) || is_music_task(model.task)) {
    // A music model's result is token lines or MIDI/WAV files (--midi-out, --wav-out).
    if (a.json || !a.out.empty())
      throw Error(std::string(a.json ? "--json" : "-o") + ": does not apply to a music model (" + a.model +
                  "), whose samples are token lines on standard output or files named by --midi-out and --wav-out");
    return run_music_sample(model, a.model, a.music, a.gen, a.length_opt->count() > 0, a.count, a.seed);
  }
  const bool one_line = model.spec.mode == TextMode::lines || model.spec.level == TokenLevel::words;
  // Streamed to a terminal or pipe as it grows; a file (-o) or JSON is written once, whole.
  const bool stream_out = (a.out.empty() || a.out == "-") && !a.json;
  Rng rng(a.seed);
  std::string out, result;
  for (int64_t i = 0; i < a.count; ++i) {
    out.clear();
    std::string whole;
    const PrimeInfo info = generate_text(model, a.gen, rng, [&](std::string_view piece) {
      out.append(piece);
      whole.append(piece);
      // Stream samples can be long: show them as they grow.
      if (stream_out && !one_line && out.size() > 256) {
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
        out.clear();
      }
    });
    if (i == 0 && !info.unknown.empty()) {
      std::string list;
      for (size_t k = 0; k < info.unknown.size() && k < 10; ++k) list += (k ? " " : "") + quoted(info.unknown[k]);
      if (info.unknown.size() > 10) list += " ...";
      std::fprintf(stderr, "recur: warning: --prime: %zu %s not in the model's vocabulary, read as <unk>: %s\n",
                   info.unknown.size(), model.spec.level == TokenLevel::chars ? "character(s)" : "word(s)",
                   list.c_str());
    }
    if (a.json) {
      result += json_line({{"index", i + 1}, {"text", whole}});
      continue;
    }
    // One sample per line for line and word models; stream char samples are separated by a blank line.
    if (one_line) {
      out += '\n';
    } else {
      if (out.empty() || out.back() != '\n') out += '\n';
      if (i + 1 < a.count) out += '\n';
    }
    if (stream_out) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
    } else {
      result += out;
    }
  }
  if (!stream_out) write_result(a.out, result, "the samples");
}

}  // namespace

void add_sample(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  CLI::App* sub = app.add_subcommand("sample", "Generate from a language (lm), music or generate model (recur train --task lm|music|generate)");
  sub->add_option("MODEL", a->model, "Checkpoint (.safetensors) written by recur train")->required();
  a->length_opt = sub->add_option("--length", a->gen.length,
                  "Tokens to generate (stream char models: exactly; others stop at <eos> or here)")
      ->capture_default_str();
  sub->add_option("--count", a->count, "Number of samples")->capture_default_str();
  sub->add_option("--temperature", a->gen.sample.temperature, "Softmax temperature (> 0; lower is more conservative)")
      ->capture_default_str();
  sub->add_option("--top-k", a->gen.sample.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  sub->add_option("--top-p", a->gen.sample.top_p, "Nucleus sampling: keep tokens up to this probability mass (1 = off)")
      ->capture_default_str();
  sub->add_flag("--argmax", a->gen.sample.argmax, "Always take the most likely token");
  sub->add_option("--prime", a->gen.prime, "Text fed to the model first and printed as the sample's start");
  sub->add_option("--prime-file", a->prime_file, "Read the prime text from a file ('-' = stdin)");
  sub->add_option("--seed", a->seed, "Seed of the draws (same seed, same output)")->capture_default_str();
  add_output_option(sub, a->out, "the samples");
  add_json_flag(sub, a->json, "JSON Lines, one {index, text} object per sample ({condition, text} for a generate model)");
  add_music_sample_options(sub, a->music);
  add_task_sample_options(sub);
  add_threads_option(sub, a->threads);
  add_precision_option(sub, a->precision);
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
