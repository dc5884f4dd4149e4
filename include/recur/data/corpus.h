// recur/data/corpus.h - a corpus already turned into tokens: the hand-over from a tokenizer
// that is not plain text (music) to the language-model trainer.
#pragma once

#include <string>

#include "recur/data/vocab.h"

namespace recur {

// Data already turned into tokens by someone else (music: music_corpus.h), given to the
// language-model trainer (tasks/trainer.h) instead of its data_path. The texts are word-level
// token lines as the text path would read them (stream: the lines back to back with <eos>
// between them; lines: one example per line), the vocabulary is fixed by the tokenizer rather
// than counted, and the split is the caller's (opts.valid_path, valid_fraction and
// max_vocab/min_count are not used). opts.level must be words. opts.data_path only names the
// data in messages and in the checkpoint.
struct TokenCorpus {
  Vocab vocab{TokenLevel::words};
  std::string train, valid, test;  // valid/test empty: none
  std::string task;                // JSON object saved as the checkpoint's "task" metadata
  // A corpus the tokenizer prepared on disk instead (recur prepare --task music): this folder's
  // train/, valid/ and test/ are prepared corpora (prepared.h) in the vocabulary above, read a
  // window at a time; train/valid/test above stay empty.
  std::string prepared;
};

}  // namespace recur
