// src/tasks/train_tasks.h - the TrainTask (train/loop.h) of each kind of `recur train` run, made
// from the one options struct (trainer.h). Internal to the library.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "recur/data/corpus.h"
#include "recur/model/model.h"
#include "recur/tasks/trainer.h"
#include "recur/train/loop.h"

namespace recur::detail {

using NoteFn = std::function<void(const std::string&)>;

// The language model on text (opts.data_path) or on a token corpus (music). With
// opts.resume_path, reads that checkpoint and hands its training part to *resume. Every call
// into the language model's code (lm.h, checkpoint.h, lm_text.h, lm_layer_diagnostics) is in
// lm_task.cpp, so a change of the model code touches one file.
std::unique_ptr<TrainTask> make_lm_task(const TrainOptions& opts, const TokenCorpus* corpus, ResumeState* resume,
                                        const NoteFn& note);

// classify, tag, seq2seq, generate: a TaskModel (tasks.h) trained on its data file.
std::unique_ptr<TrainTask> make_model_task(const TrainOptions& opts, ResumeState* resume, const NoteFn& note);

// For each layer i of `spec`, the first index into `refs` (model_param_refs' order) from which
// on every parameter belongs to layer i or above: what model_backward's layer_done(i) makes
// final, as the loop's GradsReadyFn wants it.
std::vector<size_t> final_refs_after_layer(const ModelSpec& spec, const std::vector<ParamRef<float>>& refs);
// model_backward's layer_done for a TrainTask's GradsReadyFn (empty when `ready` is).
inline LayerDoneFn layer_done_for(const GradsReadyFn& ready, const std::vector<size_t>& first) {
  if (!ready) return {};
  return [&ready, &first](size_t layer) { ready(first[layer]); };
}

// --precision bf16 never falls back silently: a note for each recurrent layer of `spec` that
// trains in float32 instead (rnn.h rnn_bf16_unsupported at `steps` steps) and, when the batches'
// sequences differ in length (`ragged`), that such batches do. Nothing for f32.
inline void note_precision(const ModelSpec& spec, const TrainOptions& o, int64_t steps, bool ragged, const NoteFn& note) {
  if (o.precision != Precision::bf16) return;
  bool any = false;
  for (const LayerSpec& l : spec.layers) {
    if (l.kind != LayerKind::rnn) continue;
    const std::string why = rnn_bf16_unsupported<float>(l.rnn, steps, {});
    if (!why.empty()) {
      note("--precision bf16: layer " + l.name + " trains in float32: " + why);
      continue;
    }
    any = true;
  }
  if (any && ragged)
    note("--precision bf16: a batch whose sequences differ in length trains its recurrent layers in float32 "
         "(oneDNN's bf16 path runs full-length sequences); the linear layers' products are bfloat16 throughout");
  else if (any)
    note("--precision bf16: the recurrent and linear layers' products in bfloat16; embeddings, attention and the "
         "loss in float32");
}

// U(-s, s) for every weight of a task model's trainable parameters (--init-scale).
inline constexpr uint64_t kOrderSeed = 0x6f72646572ULL;  // "order"
inline constexpr uint64_t kHoldoutSeed = 0x686f6c64ULL;  // "hold"
inline constexpr uint64_t kGrowSeed = 0x67726f77ULL;     // "grow": --extend-vocab's new rows

}  // namespace recur::detail
