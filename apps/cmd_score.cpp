// recur score MODEL [SENTENCE...] - log-probability and perplexity of sentences (lm_text.h).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "lm_cli_util.h"
#include "recur/tasks/lm_text.h"
#include "recur/data/text_data.h"
#include "recur/data/utf8.h"

namespace recur::cli {
namespace {

struct ScoreArgs {
  std::string model;
  std::vector<std::string> sentences;
  std::string file;
  bool per_token = false;
  int threads = 0;
};

void run(const ScoreArgs& a) {
  apply_threads(a.threads);
  std::vector<std::string> sentences = a.sentences;
  std::string text;
  std::string origin = "argument";
  if (!a.file.empty()) {
    if (a.file == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      utf8_validate(text, "<stdin>");
      origin = "<stdin>";
    } else {
      text = read_text_file(a.file);
      origin = a.file;
    }
    for (std::string_view line : split_lines(text))
      if (line.find_first_not_of(" \t\v\f") != std::string_view::npos) sentences.emplace_back(line);
  }
  if (sentences.empty())
    throw Error("score: no sentences; expected sentences as arguments or a non-blank --file (- for standard input)");
  for (const auto& s : sentences)
    if (s.find('\n') != std::string::npos)
      throw Error("score: a sentence argument contains a line break; expected one sentence per argument");
  const LmModel model = load_model(a.model);

  std::printf("ln_prob\tlog10_prob\ttokens\toov\tppl\tsentence\n");
  double total_lp = 0;
  int64_t total_tokens = 0, total_oov = 0;
  for (size_t i = 0; i < sentences.size(); ++i) {
    const SentenceScore s = score_sentence(model, sentences[i], a.per_token, origin);
    total_lp += s.logprob;
    total_tokens += s.tokens;
    total_oov += s.oov;
    std::printf("%.4f\t%.4f\t%lld\t%lld\t%.4f\t%s\n", s.logprob, s.log10prob(), (long long)s.tokens,
                (long long)s.oov, s.perplexity(), sentences[i].c_str());
    for (const TokenScore& t : s.per_token)
      std::printf("  %s\tp=%.6g\tln=%.4f%s\n", t.token.c_str(), std::exp(t.logprob), t.logprob, t.oov ? "\toov" : "");
  }
  std::printf("# %zu sentence(s), %lld tokens (line ends included), %lld out of vocabulary (scored as <unk>), "
              "ln_prob %.4f, log10_prob %.4f, perplexity %.4f\n",
              sentences.size(), (long long)total_tokens, (long long)total_oov, total_lp, total_lp / std::log(10.0),
              std::exp(-total_lp / double(total_tokens)));
}

}  // namespace

void add_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  CLI::App* sub = app.add_subcommand("score", "Log-probability and perplexity of sentences under a model");
  sub->add_option("MODEL", a->model, "Checkpoint (.safetensors)")->required();
  sub->add_option("SENTENCE", a->sentences, "Sentences to score, one per argument");
  sub->add_option("--file", a->file, "Score every non-blank line of this file (- = standard input)");
  sub->add_flag("--per-token", a->per_token, "List each token's probability");
  add_threads_option(sub, a->threads);
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
