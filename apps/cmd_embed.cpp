// recur embed TEXT... --out vectors.txt - word vectors learned from unlabelled text (skip-gram with
// negative sampling, tasks/word_vectors.h), written as GloVe text for `recur train --embeddings`.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli_io.h"
#include "commands.h"
#include "recur/core/file_io.h"
#include "recur/tasks/word_vectors.h"

namespace recur::cli {
namespace {

struct EmbedArgs {
  std::vector<std::string> inputs;
  std::string out;
  WordVectorOptions o;
  EmbeddingCorpusOptions corpus;
  bool quiet = false;
};

void run(EmbedArgs& a) {
  a.o.validate();  // before reading gigabytes
  const bool bar = !a.quiet && ::isatty(STDERR_FILENO) != 0;
  if (bar) a.o.progress = [](double done) { std::fprintf(stderr, "\r\033[Ktraining %3.0f%%", 100 * done); };
  const auto sentences = read_embedding_corpus(a.inputs, a.corpus);
  const WordVectors v = train_word_vectors(sentences, a.o);
  if (bar) std::fprintf(stderr, "\r\033[K");
  write_file_atomic(a.out, word_vectors_text(v), "the word vectors");
  if (!a.quiet)
    std::fprintf(stderr, "recur: %lld tokens in %zu sentences; %zu words seen %lld times or more; wrote %s (%zu x %lld)\n",
                 (long long)v.tokens, sentences.size(), v.words.size(), (long long)a.o.min_count, a.out.c_str(),
                 v.words.size(), (long long)a.o.dim);
}

}  // namespace

void add_embed(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  CLI::App* sub = app.add_subcommand(
      "embed",
      "Learn word vectors from unlabelled text (skip-gram with negative sampling, word2vec's recipe) and write them "
      "as GloVe text, for recur train --embeddings");
  sub->add_option("TEXT", a->inputs, "Text files, one sentence per line ('-' = stdin); with --conll, CoNLL files")
      ->required();
  sub->add_option("--out", a->out, "The vectors file to write (GloVe text: 'word v1 .. vD' per line)")->required();
  auto* conll = sub->add_flag("--conll", a->corpus.conll,
                              "TEXT is CoNLL: the first column of each line, blank lines between sentences");
  sub->add_flag("--lower", a->corpus.lowercase, "Lower-case ASCII letters (for --embeddings of lower-cased text)");
  sub->add_flag("--task-words", a->corpus.task_words,
                "Split words around punctuation as recur train splits classify and seq2seq text, so the vectors "
                "are of the model's tokens (with --lower for a model that lower-cases, the default)")
      ->excludes(conll);
  sub->add_option("--dim", a->o.dim, "Vector size D")->capture_default_str();
  sub->add_option("--window", a->o.window, "Largest context distance (shrunk at random per word)")->capture_default_str();
  sub->add_option("--negatives", a->o.negatives, "Noise words per pair")->capture_default_str();
  sub->add_option("--min-count", a->o.min_count, "Words seen fewer times are left out")->capture_default_str();
  sub->add_option("--epochs", a->o.epochs, "Passes over the text")->capture_default_str();
  sub->add_option("--lr", a->o.lr, "Starting learning rate (decays linearly)")->capture_default_str();
  sub->add_option("--subsample", a->o.subsample, "Frequent-word subsampling threshold t (0 = off)")->capture_default_str();
  sub->add_option("--seed", a->o.seed, "Seed of every random draw")->capture_default_str();
  sub->add_flag("--quiet", a->quiet, "No progress or summary");
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
