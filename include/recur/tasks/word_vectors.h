// recur/tasks/word_vectors.h - word vectors learned from unlabelled text (`recur embed`):
// skip-gram with negative sampling (Mikolov et al. 2013, "Distributed Representations of Words
// and Phrases"), word2vec's recipe, written as GloVe text so that `recur train --embeddings`
// reads them as it reads downloaded vectors. Pre-trained vectors cannot be downloaded on every
// machine; any text the machine has can train these.
//
// The recipe, as word2vec.c runs it:
//   vocabulary  words seen at least min_count times, most frequent first (ties by bytes)
//   subsampling a word of relative frequency f is kept with probability
//               min(1, (sqrt(f / t) + 1) * t / f), drawn anew each epoch (t = subsample; 0 = off)
//   contexts    for each kept centre word, a window b drawn uniformly from 1..window, and every
//               kept word within b positions in its sentence (word2vec's random shrink)
//   loss        per (centre c, context o): -log s(u_o . v_c) - sum_k log s(-u_k . v_c) over
//               `negatives` noise words k drawn from unigram counts^0.75 (s = sigmoid)
//   update      plain SGD on v_c and the u's, rate lr0 * (1 - done/total), floored at lr0 * 1e-4
//   init        v (the vectors written) U(-0.5/D, 0.5/D); u zero
// Every draw comes from one seeded Rng and the updates run on one thread in corpus order, so a
// seed gives the same file on any machine's thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "recur/core/tensor.h"

namespace recur {

struct WordVectorOptions {
  int64_t dim = 100;         // D
  int64_t window = 5;        // the largest context distance
  int64_t negatives = 5;     // noise words per (centre, context) pair
  int64_t min_count = 5;     // rarer words are left out (neither trained nor written)
  int64_t epochs = 5;
  double lr = 0.025;         // the starting rate lr0
  double subsample = 1e-4;   // t; 0 = every word kept
  uint64_t seed = 1;
  std::function<void(double done)> progress;  // called now and then with the fraction done
  void validate() const;     // Error "--<flag>: got .., expected .."
};

struct WordVectors {
  std::vector<std::string> words;  // [V], most frequent first
  std::vector<int64_t> counts;     // [V]
  Tensor<float> vectors;           // [V, D], row i is words[i]'s
  int64_t tokens = 0;              // corpus tokens read (all words, kept or not)
};

// How read_embedding_corpus reads its files.
struct EmbeddingCorpusOptions {
  bool conll = false;      // CoNLL files: the first column of each line, a blank line between sentences
  bool lowercase = false;  // ASCII letters lowered (task_words: as split_words lowers a model's text)
  // Text split as recur train splits classify and seq2seq text (task_data.h split_words: around
  // punctuation, at French typography's spaces), so the vectors' words are the model's tokens.
  bool task_words = false;
};
// The sentences of text files ('-' = standard input): each line a sentence of whitespace-separated
// tokens (or split_words' tokens); CoNLL files as the options say, -DOCSTART- lines skipped.
std::vector<std::vector<std::string>> read_embedding_corpus(const std::vector<std::string>& paths,
                                                            const EmbeddingCorpusOptions& opts);

// sentences: the corpus as token lists (a context never crosses a sentence). Error when no word
// reaches min_count.
WordVectors train_word_vectors(const std::vector<std::vector<std::string>>& sentences, const WordVectorOptions& o);

// GloVe text: one "word v1 .. vD" line per word (values printed exactly enough to read back the
// same floats).
std::string word_vectors_text(const WordVectors& v);

// The loss of one (centre, context) pair with its noise words and its gradients:
//   L = -log s(u[0] . v) - sum_{k>=1} log s(-u[k] . v)
// v [D]; u: the context's output vector then the noise words', each [D]; grad_v [D] and
// grad_u (one [D] per u) are overwritten. Exposed for the gradient test; training applies
// v -= lr grad_v, u[k] -= lr grad_u[k].
template <typename T>
double sgns_loss(std::span<const T> v, const std::vector<std::span<const T>>& u, std::span<T> grad_v,
                 const std::vector<std::span<T>>& grad_u);

}  // namespace recur
