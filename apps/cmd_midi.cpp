// recur midi encode|decode|roundtrip - MIDI files <-> music tokens (see docs/music.md).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "recur/core/file_io.h"
#include "recur/music/midi.h"
#include "recur/music/music_tokens.h"

namespace recur::cli {
namespace {

struct MidiArgs {
  std::string input;
  std::string output;
  std::string encoding = "event";
  bool keep_drums = false;
  double tempo = 120.0;
  int program = 0;
};

// To standard output, or a token file (music_tokens.h).
void write_tokens(const std::vector<std::string>& tokens, const std::string& path) {
  if (path.empty() || path == "-") {
    const std::string line = token_line(tokens);
    std::fwrite(line.data(), 1, line.size(), stdout);
  } else {
    write_token_file(path, tokens);
  }
}

// A MIDI file, or standard output for '-': libsmf writes only to a named file, so the bytes go
// through a temporary file that is removed afterwards.
void write_midi_to(const Performance& perf, const std::string& path) {
  if (path != "-") return write_midi(perf, path);
  const std::string tmp = temporary_path((std::filesystem::temp_directory_path() / "recur-midi.mid").string());
  try {
    write_midi(perf, tmp);
    const std::string bytes = read_input(tmp, {.expected = "a MIDI file"});
    std::remove(tmp.c_str());
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);  // checked at exit (main.cpp)
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void add_common(CLI::App* sub, MidiArgs& a) {
  sub->add_option("--encoding", a.encoding, "Token encoding")->check(CLI::IsMember({"event", "mono", "duration"}))->capture_default_str();
  sub->add_flag("--keep-drums", a.keep_drums, "Encode channel-10 drum notes as ordinary pitches");
}

}  // namespace

void add_midi(CLI::App& app) {
  auto a = std::make_shared<MidiArgs>();
  CLI::App* midi = app.add_subcommand("midi", "MIDI files <-> music tokens (event, duration or mono encoding)");
  midi->require_subcommand(1);

  CLI::App* enc = midi->add_subcommand("encode", "Print a MIDI file's tokens on one line");
  enc->add_option("file", a->input, "MIDI file ('-' = stdin)")->required();
  enc->add_option("-o,--output", a->output, "Token file (default: standard output)");
  add_common(enc, *a);
  enc->callback([a] {
    MusicTokenOptions opts;
    opts.keep_drums = a->keep_drums;
    const Performance perf = read_midi(a->input);
    write_tokens(encode_music(perf, parse_music_encoding(a->encoding), opts), a->output);
  });

  CLI::App* dec = midi->add_subcommand("decode", "Turn a token file back into a MIDI file");
  dec->add_option("file", a->input, "Token file (whitespace-separated tokens; '-' = stdin)")->required();
  dec->add_option("-o,--output", a->output, "MIDI file to write ('-' = standard output)")->required();
  dec->add_option("--tempo", a->tempo, "Tempo of the written file; mono: length of a sixteenth")
      ->check(CLI::Range(1.0, 1000.0))->capture_default_str();
  dec->add_option("--program", a->program, "General MIDI program of the notes")->check(CLI::Range(0, 127))->capture_default_str();
  add_common(dec, *a);
  dec->callback([a] {
    MusicTokenOptions opts;
    opts.tempo_bpm = a->tempo;
    opts.program = a->program;
    const Performance perf = decode_music(read_token_file(a->input), parse_music_encoding(a->encoding), opts, a->input);
    write_midi_to(perf, a->output);
    std::fprintf(stderr, "recur midi decode: %zu notes, %.2f s -> %s\n", perf.notes.size(), perf.end_time, a->output.c_str());
  });

  CLI::App* rt = midi->add_subcommand("roundtrip", "Encode and decode a MIDI file and report the notes kept");
  rt->add_option("file", a->input, "MIDI file ('-' = stdin)")->required();
  add_common(rt, *a);
  rt->callback([a] {
    MusicTokenOptions opts;
    opts.keep_drums = a->keep_drums;
    const MusicEncoding encoding = parse_music_encoding(a->encoding);
    const Performance perf = read_midi(a->input);
    const std::vector<std::string> tokens = encode_music(perf, encoding, opts);
    const Performance back = decode_music(tokens, encoding, opts);
    const RoundTripReport r = check_round_trip(perf, back, encoding, opts);
    std::printf("%s: %zu notes (%zu drum notes not encoded), %zu tokens (%s), %zu/%zu notes matched%s%s\n",
                a->input.c_str(), perf.notes.size(), r.dropped_drums, tokens.size(), a->encoding.c_str(), r.matched,
                r.expected, r.ok() ? "" : "; first mismatch: ", r.first_mismatch.c_str());
    if (!r.ok()) throw Error(a->input + ": round trip lost notes (" + r.first_mismatch + ")");
  });
}

}  // namespace recur::cli
