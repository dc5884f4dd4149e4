// src/tasks/task_records.h - the steps of reading a task file that the text path (read_task_file,
// build_task_model) and a prepared task corpus (prepared_task.h) share, so both give the same
// examples and the same vocabularies. Internal to the library.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "recur/data/task_data.h"
#include "recur/data/vocab.h"
#include "recur/tasks/tasks.h"

namespace recur {

// The characters (code points) of `s`, as the char vocabulary counts them.
std::vector<std::string> code_points(std::string_view s);

// The form of an input word the word vocabulary reads: the word itself, or (tag with
// lower_words) its ASCII lower case. Counting and encoding both go through it.
std::string task_word(const TaskSpec& task, std::string_view word);

// One record of a task file as read_task_file turns it into an example (token input). `origin`
// names the file in messages.
RawExample raw_example_of(const TaskSpec& task, TaggedSentence&& s);
RawExample raw_example_of(const TaskSpec& task, LabelledText&& r, const std::string& origin);
RawExample raw_example_of(const TaskSpec& task, TextPair&& p, const std::string& origin);

// What a fresh model's vocabularies and labels are built from: every input word, the characters
// of every input word (tag with char_rnn), every target token (seq2seq, generate) and the set of
// labels (tags, classes or conditions).
struct TaskCounts {
  TokenCounter words{TokenLevel::words};
  TokenCounter chars{TokenLevel::chars};
  TokenCounter targets{TokenLevel::words};
  std::set<std::string> labels;
};
TaskCounts count_task_examples(const TaskSpec& task, const std::vector<RawExample>& train);
// build_task_model from counts (the text path counts its examples; a prepared corpus has them).
TaskModel build_task_model_from_counts(const TaskSpec& task, const TaskCounts& counts, const TaskVocabOptions& vocab,
                                       const TaskModelOptions& model, int64_t features_width, Rng& rng);

// resolve_tag_schemes's choice given the scheme detected in the training tags: task.file_scheme
// = detected, task.train_scheme from `requested` ("auto", "iob1", "bio", "bioes"). Error when a
// scheme is requested for tags that are not chunk tags.
void choose_tag_schemes(TaskSpec& task, std::string_view requested, TagScheme detected);

}  // namespace recur
