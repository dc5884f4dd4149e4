// recur score MODEL [SENTENCE...] - log-probability and perplexity of sentences (lm_text.h).
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli_io.h"
#include "commands.h"
#include "lm_cli_util.h"
#include "recur/core/file_io.h"
#include "recur/tasks/lm_text.h"
#include "recur/data/text_data.h"

namespace recur::cli {
namespace {

struct ScoreArgs {
  std::string model;
  std::vector<std::string> sentences;
  std::string file, out;
  bool per_token = false, token_tsv = false, json = false;
  int threads = 0;
};

void run(const ScoreArgs& a) {
  apply_threads(a.threads);
  if (a.json + a.token_tsv + a.per_token > 1)
    throw Error("--per-token, --token-tsv and --json: expected at most one of them (--json has the per-token scores)");
  std::vector<std::string> sentences = a.sentences;
  std::string origin = "argument";
  if (!a.file.empty()) {
    // The one reader (core/file_io.h): '-' is standard input, with the same size limit.
    const std::string text = read_text_file(a.file);
    origin = input_name(a.file);
    for (std::string_view line : split_lines(text))
      if (line.find_first_not_of(" \t\v\f") != std::string_view::npos) sentences.emplace_back(line);
  }
  if (sentences.empty())
    throw Error("score: no sentences; expected sentences as arguments or a non-blank --file (- for standard input)");
  for (const auto& s : sentences)
    if (s.find('\n') != std::string::npos)
      throw Error("score: a sentence argument contains a line break; expected one sentence per argument");
  const LmModel model = load_model(a.model, "score needs a language model (lm)");
  const bool want_tokens = a.per_token || a.token_tsv || a.json;

  std::string out;
  if (a.token_tsv) out = "sentence\tindex\ttoken\tln_prob\tp\toov\n";
  else if (!a.json) out = "ln_prob\tlog10_prob\ttokens\toov\tppl\tsentence\n";
  nlohmann::ordered_json items = nlohmann::ordered_json::array();
  double total_lp = 0;
  int64_t total_tokens = 0, total_oov = 0;
  for (size_t i = 0; i < sentences.size(); ++i) {
    const SentenceScore s = score_sentence(model, sentences[i], want_tokens, origin);
    total_lp += s.logprob;
    total_tokens += s.tokens;
    total_oov += s.oov;
    if (a.json) {
      nlohmann::ordered_json toks = nlohmann::ordered_json::array();
      for (const TokenScore& t : s.per_token)
        toks.push_back({{"token", t.token}, {"ln_prob", json_number(t.logprob)}, {"p", json_number(std::exp(t.logprob))}, {"oov", t.oov}});
      items.push_back({{"sentence", sentences[i]},
                       {"ln_prob", json_number(s.logprob)},
                       {"log10_prob", json_number(s.log10prob())},
                       {"tokens", s.tokens},
                       {"oov", s.oov},
                       {"ppl", json_number(s.perplexity())},
                       {"per_token", toks}});
      continue;
    }
    if (a.token_tsv) {
      // One row per token, columns only: the sentence's number (1-based), the token's place in it.
      for (size_t k = 0; k < s.per_token.size(); ++k) {
        const TokenScore& t = s.per_token[k];
        char nums[64];
        std::snprintf(nums, sizeof nums, "\t%.6f\t%.6g\t%d\n", t.logprob, std::exp(t.logprob), t.oov ? 1 : 0);
        // A tab token (char models) is written \t so that the columns stay columns.
        out += std::to_string(i + 1) + "\t" + std::to_string(k + 1) + "\t" + (t.token == "\t" ? "\\t" : t.token) + nums;
      }
      continue;
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "%.4f\t%.4f\t%lld\t%lld\t%.4f\t", s.logprob, s.log10prob(), (long long)s.tokens,
                  (long long)s.oov, s.perplexity());
    out += buf + sentences[i] + "\n";
    // The indented per-token lines are kept as they were (scripts and the v1 fixtures read
    // them); --token-tsv and --json are the machine-readable forms.
    for (const TokenScore& t : s.per_token) {
      std::snprintf(buf, sizeof buf, "\tp=%.6g\tln=%.4f%s\n", std::exp(t.logprob), t.logprob, t.oov ? "\toov" : "");
      out += "  " + t.token + buf;
    }
  }
  const double ppl = std::exp(-total_lp / double(total_tokens));
  if (a.json) {
    nlohmann::ordered_json j = {{"sentences", items},
                                {"total", {{"sentences", int64_t(sentences.size())},
                                           {"tokens", total_tokens},
                                           {"oov", total_oov},
                                           {"ln_prob", json_number(total_lp)},
                                           {"log10_prob", json_number(total_lp / std::log(10.0))},
                                           {"ppl", json_number(ppl)}}}};
    return write_result(a.out, json_line(j), "the scores");
  }
  if (!a.token_tsv) {
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "# %zu sentence(s), %lld tokens (line ends included), %lld out of vocabulary (scored as <unk>), "
                  "ln_prob %.4f, log10_prob %.4f, perplexity %.4f\n",
                  sentences.size(), (long long)total_tokens, (long long)total_oov, total_lp, total_lp / std::log(10.0), ppl);
    out += buf;
  }
  write_result(a.out, out, "the scores");
}

}  // namespace

void add_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  CLI::App* sub = app.add_subcommand("score", "Log-probability and perplexity of sentences under a language model (lm)");
  sub->add_option("MODEL", a->model, "Checkpoint (.safetensors) of a language model")->required();
  sub->add_option("SENTENCE", a->sentences, "Sentences to score, one per argument");
  sub->add_option("--file", a->file, "Score every non-blank line of this file (- = standard input)");
  add_output_option(sub, a->out, "the scores");
  sub->add_flag("--per-token", a->per_token, "List each token's probability under its sentence (indented 'p=... ln=...' lines)");
  sub->add_flag("--token-tsv", a->token_tsv,
                "Print one TSV row per token instead: header 'sentence index token ln_prob p oov'");
  add_json_flag(sub, a->json, "one JSON object: every sentence with its per-token scores, and the totals");
  add_threads_option(sub, a->threads);
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
