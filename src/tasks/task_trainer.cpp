// The task training loop. It shares the optimizer, clipping, checkpoint writing and metrics
// format with the language-model trainer (trainer.cpp) but batches whole examples.
#include "recur/tasks/task_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "json_fields.h"
#include "run_dir.h"
#include "recur/tasks/trainer.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kOrderSeed = 0x6f72646572ULL;  // "order"
constexpr uint64_t kDropoutSeed = 0x64726f70ULL;  // "drop"
constexpr uint64_t kHoldoutSeed = 0x686f6c64ULL;  // "hold"

[[noreturn]] void bad(const char* flag, const std::string& got, const char* expected) {
  throw Error(std::string(flag) + ": got " + got + ", expected " + expected);
}

// The batches of one epoch: a seeded shuffle, then examples of similar length grouped into the
// same batch (less padding) within windows of 50 batches, then the batches shuffled again.
std::vector<std::vector<int64_t>> epoch_batches(const std::vector<TaskExample>& ex, int64_t batch, uint64_t seed,
                                                int64_t epoch) {
  Rng rng(seed ^ kOrderSeed ^ (uint64_t(epoch) * 0x9e3779b97f4a7c15ULL));
  std::vector<int64_t> idx(ex.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[size_t(rng.below(i))]);
  auto len = [&](int64_t i) { return std::max<int64_t>(ex[size_t(i)].steps, int64_t(ex[size_t(i)].targets.size())); };
  const size_t window = size_t(batch) * 50;
  for (size_t s = 0; s < idx.size(); s += window) {
    const auto e = idx.begin() + int64_t(std::min(idx.size(), s + window));
    std::stable_sort(idx.begin() + int64_t(s), e, [&](int64_t a, int64_t b) { return len(a) < len(b); });
  }
  std::vector<std::vector<int64_t>> out;
  for (size_t s = 0; s < idx.size(); s += size_t(batch))
    out.emplace_back(idx.begin() + int64_t(s), idx.begin() + int64_t(std::min(idx.size(), s + size_t(batch))));
  for (size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[size_t(rng.below(i))]);
  return out;
}

struct RunState {
  int64_t step = 0, epoch = 0, batch_in_epoch = 0;
  double best_metric = -std::numeric_limits<double>::infinity();
  double best_loss = std::numeric_limits<double>::infinity();
  int64_t best_step = 0;
  Rng::State dropout_rng{};
  int64_t optimizer_steps = 0;
  double elapsed_s = 0;
  uint64_t seed = 1;
  int64_t batch = 32;
  double valid_fraction = 0;
  std::string optimizer;
  // The data layout a resumed run must reproduce.
  std::string valid_path;
  int64_t train_examples = 0;
  // The logging window (sums since the last train line), so a resumed run logs the same values.
  double w_loss = 0, w_norm = 0;
  int64_t w_count = 0, w_steps = 0, w_examples = 0;
};

std::string state_json(const RunState& s) {
  nlohmann::ordered_json j = {{"step", s.step},
                              {"epoch", s.epoch},
                              {"batch_in_epoch", s.batch_in_epoch},
                              {"best_metric", number_or_null(-s.best_metric)},
                              {"best_loss", number_or_null(s.best_loss)},
                              {"best_step", s.best_step},
                              {"dropout_rng", rng_state_json(s.dropout_rng)},
                              {"optimizer_steps", s.optimizer_steps},
                              {"elapsed_s", s.elapsed_s},
                              {"seed", std::to_string(s.seed)},
                              {"batch", s.batch},
                              {"valid_fraction", s.valid_fraction},
                              {"optimizer", s.optimizer},
                              {"valid_path", s.valid_path},
                              {"train_examples", s.train_examples},
                              {"window", {s.w_loss, s.w_norm, s.w_count, s.w_steps, s.w_examples}}};
  return j.dump();
}

RunState state_from_json(const std::string& json, const std::string& origin) {
  JsonFields f(std::string_view(json), origin + ": metadata \"train_state\"");
  RunState s;
  s.step = f.integer("step", 0);
  s.epoch = f.integer("epoch", 0);
  s.batch_in_epoch = f.integer("batch_in_epoch", 0);
  s.best_metric = -f.number("best_metric", true);  // stored negated so "none yet" is null = +inf
  s.best_loss = f.number("best_loss", true);
  s.best_step = f.integer("best_step", 0);
  s.dropout_rng = f.rng_state("dropout_rng");
  s.optimizer_steps = f.integer("optimizer_steps", 0);
  s.elapsed_s = f.number("elapsed_s");
  const std::string seed = f.string("seed");
  s.seed = std::strtoull(seed.c_str(), nullptr, 10);
  s.batch = f.integer("batch", 1);
  s.valid_fraction = f.number("valid_fraction");
  s.optimizer = f.string("optimizer");
  s.valid_path = f.string("valid_path");
  s.train_examples = f.integer("train_examples", 0);
  const auto& w = f.raw("window");
  if (!w.is_array() || w.size() != 5 || !w[0].is_number() || !w[1].is_number() || !w[2].is_number_integer() ||
      !w[3].is_number_integer() || !w[4].is_number_integer())
    f.fail("window", "[loss_sum, grad_norm_sum, targets, steps, examples]");
  s.w_loss = w[0].get<double>();
  s.w_norm = w[1].get<double>();
  s.w_count = w[2].get<int64_t>();
  s.w_steps = w[3].get<int64_t>();
  s.w_examples = w[4].get<int64_t>();
  f.finish();
  return s;
}

}  // namespace

void TaskTrainOptions::validate() const {
  if (data_path.empty()) bad("DATA", "nothing", "a training file");
  if (out_dir.empty()) bad("--out", "nothing", "the run directory");
  if (!(valid_fraction >= 0 && valid_fraction < 1)) bad("--valid-fraction", std::to_string(valid_fraction), "a fraction in [0, 1)");
  if (batch < 1) bad("--batch", std::to_string(batch), "an integer >= 1");
  if (!(clip_norm >= 0)) bad("--clip-norm", std::to_string(clip_norm), "0 (off) or a norm > 0");
  if (!(lr_decay > 0 && lr_decay <= 1)) bad("--lr-decay", std::to_string(lr_decay), "a factor in (0, 1]");
  if (epochs < 0 || steps < 0 || time_limit < 0) bad("--epochs/--steps/--time", "a negative value", "values >= 0");
  if (log_every < 1) bad("--log-every", std::to_string(log_every), "an integer >= 1");
  if (model.embed < 1) bad("--embed", std::to_string(model.embed), "a size >= 1");
  if (!(model.dropout >= 0 && model.dropout < 1)) bad("--dropout", std::to_string(model.dropout), "a probability in [0, 1)");
  if (task.kind == TaskKind::generate && model.rnn.bidirectional)
    bad("--bidirectional", "on", "off for --task generate (a generator reads only the past)");
  if (task.condition_every_step && task.kind != TaskKind::generate)
    bad("--condition-every-step", "on", "only with --task generate");
  if (task.char_rnn && task.kind != TaskKind::tag) bad("--char-rnn", "on", "only with --task tag");
  if (task.binary && task.kind != TaskKind::classify) bad("--binary", "on", "only with --task classify");
  if (task.features && task.kind == TaskKind::generate) bad("--features", "on", "only with --task classify, tag or seq2seq");
  if (!embeddings_path.empty() && (task.features || task.kind == TaskKind::generate))
    bad("--embeddings", embeddings_path, "a word task (classify, tag, seq2seq) on tokens");
  optimizer.validate();
}

TaskTrainResult train_task(const TaskTrainOptions& opts, const TaskTrainObserver& obs, const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  opts.validate();
  auto note = [&](const std::string& s) {
    if (obs.on_note) obs.on_note(s);
  };
  const fs::path dir(opts.out_dir);
  const std::string last_path = (dir / "last.safetensors").string(), best_path = (dir / "best.safetensors").string();
  const bool resuming = !opts.resume_path.empty();
  detail::check_run_dir(opts.out_dir, resuming, opts.force);

  TaskCheckpoint ck;
  RunState rs;
  rs.seed = opts.seed;
  rs.batch = opts.batch;
  rs.valid_fraction = opts.valid_fraction;
  rs.optimizer = std::string(optimizer_name(opts.optimizer.type));
  if (resuming) {
    ck = load_task_checkpoint(opts.resume_path);
    if (ck.train_state.empty()) throw FormatError(opts.resume_path + ": metadata \"train_state\": missing; this model cannot be resumed");
    rs = state_from_json(ck.train_state, opts.resume_path);
  }
  const TaskSpec& task = resuming ? ck.model.task : opts.task;
  // A resumed run validates on what the run validated on (the same held-out split otherwise).
  std::string valid_path = opts.valid_path;
  if (resuming && valid_path.empty()) valid_path = rs.valid_path;
  if (resuming && valid_path != rs.valid_path)
    throw Error("--valid " + valid_path + " does not match the checkpoint's " +
                (rs.valid_path.empty() ? std::string("held-out split") : rs.valid_path) + " (" + opts.resume_path +
                "); a resumed run keeps its data layout");
  rs.valid_path = valid_path;

  // ---- data ----
  // Feature files: F comes from the training file (or the resumed model) and binds the others.
  int64_t F = 0;
  std::vector<RawExample> raw =
      read_task_file(task, opts.data_path, true, &F, resuming ? task_features_width(ck.model) : 0);
  std::vector<RawExample> raw_valid;
  std::string valid_origin = valid_path;
  if (!valid_path.empty()) {
    raw_valid = read_task_file(task, valid_path, true, nullptr, F);
  } else if (rs.valid_fraction > 0 && raw.size() >= 10) {
    // A seeded random hold-out (the same on resume: it depends only on the seed).
    Rng hr(rs.seed ^ kHoldoutSeed);
    std::vector<RawExample> keep;
    for (auto& e : raw) (hr.uniform() < rs.valid_fraction ? raw_valid : keep).push_back(std::move(e));
    raw = std::move(keep);
    valid_origin = opts.data_path + " (held-out " + std::to_string(raw_valid.size()) + " examples)";
  }
  std::vector<RawExample> raw_test;
  if (!opts.test_path.empty()) raw_test = read_task_file(task, opts.test_path, true, nullptr, F);

  // ---- model ----
  TaskModel& model = ck.model;
  if (!resuming) {
    Rng init_rng(opts.seed);
    TaskModelOptions mo = opts.model;
    if (!opts.embeddings_path.empty()) mo.embed = word_vectors_dim(opts.embeddings_path);
    model = build_task_model(opts.task, raw, opts.vocab, mo, F, init_rng);
    if (!opts.embeddings_path.empty()) {
      const std::string emb = opts.task.kind == TaskKind::seq2seq ? "src_emb" : "emb";
      Tensor<float>& w = model.params.layers[size_t(model.spec.layer_index(emb))].weight;
      const int64_t found = load_word_vectors(opts.embeddings_path, model.words, w);
      note(opts.embeddings_path + ": vectors for " + std::to_string(found) + " of " +
           std::to_string(model.words.size() - Vocab::num_special) + " words" +
           (opts.model.freeze_embeddings ? " (frozen)" : " (fine-tuned)"));
    }
  }
  const std::vector<TaskExample> train = encode_task_examples(model, raw, true, opts.data_path);
  const std::vector<TaskExample> valid = encode_task_examples(model, raw_valid, true, valid_origin);
  const std::vector<TaskExample> test = encode_task_examples(model, raw_test, true, opts.test_path);
  if (train.empty()) throw Error(opts.data_path + ": no training examples left after the hold-out");
  if (resuming && int64_t(train.size()) != rs.train_examples)
    throw Error(opts.data_path + ": " + std::to_string(train.size()) + " training examples, but " + opts.resume_path +
                " was trained on " + std::to_string(rs.train_examples) + "; resuming needs the same training data");
  rs.train_examples = int64_t(train.size());

  // ---- optimizer ----
  ModelGrads<float> grads = model_zero_grads<float>(model.spec);
  const std::vector<ParamRef<float>> refs = model_param_refs(model.spec, model.params, grads);
  OptimizerConfig oc = opts.optimizer;
  if (oc.lr <= 0) oc.lr = default_lr(oc.type);
  const double lr0 = oc.lr;
  Optimizer<float> optimizer(oc, refs);
  Rng dropout_rng(rs.seed ^ kDropoutSeed);
  if (resuming) {
    dropout_rng.set_state(rs.dropout_rng);
    if (rs.optimizer == optimizer_name(oc.type)) {
      optimizer.set_steps(rs.optimizer_steps);
      for (auto& [name, t] : optimizer.state_tensors()) {
        auto it = ck.tensors.find(name);
        if (it == ck.tensors.end() || it->second.shape != t->shape)
          throw FormatError(opts.resume_path + ": optimizer state tensor '" + name + "' missing or of another shape");
        t->data = it->second.data;
      }
    } else {
      note("optimizer changed from " + rs.optimizer + " to " + std::string(optimizer_name(oc.type)) + ": its state starts fresh");
      rs.optimizer = std::string(optimizer_name(oc.type));
    }
    note("resumed from " + opts.resume_path + " at step " + std::to_string(rs.step) + ", epoch " + std::to_string(rs.epoch));
  } else {
    note(task_model_summary(model) + "; " + std::to_string(train.size()) + " training and " +
         std::to_string(valid.size()) + " validation examples");
  }

  // ---- budget ----
  int64_t max_epochs = opts.epochs;
  if (max_epochs == 0 && opts.steps == 0 && opts.time_limit == 0) max_epochs = 10;
  auto run_s = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
  auto budget_done = [&] {
    return (opts.steps > 0 && rs.step >= opts.steps) || (max_epochs > 0 && rs.epoch >= max_epochs) ||
           (opts.time_limit > 0 && run_s() >= opts.time_limit);
  };
  TaskTrainResult result;
  result.last_path = last_path;
  if (resuming && budget_done()) {
    result.nothing_to_do = true;
    result.step = rs.step;
    result.epoch = rs.epoch;
    return result;
  }

  // ---- metrics ---- (the directory is created only now, so a bad input leaves nothing behind)
  std::ofstream metrics = detail::open_run_metrics(opts.out_dir, resuming, rs.step);
  auto write_log = [&](const TaskLog& l) {
    nlohmann::ordered_json j = {{"type", l.type}, {"step", l.step}, {"epoch", l.epoch}, {"loss", l.loss}};
    if (!l.metric_name.empty()) j[l.metric_name] = l.metric;
    if (l.type == "train") {
      j["grad_norm"] = l.grad_norm;
      j["examples_per_s"] = l.examples_per_s;
    }
    j["lr"] = l.lr;
    j["elapsed_s"] = l.elapsed_s;
    metrics << j.dump() << '\n';
    metrics.flush();
    if (obs.on_log) obs.on_log(l);
  };

  const double elapsed0 = rs.elapsed_s;
  std::vector<std::vector<int64_t>> batches = epoch_batches(train, rs.batch, rs.seed, rs.epoch);
  auto epoch_frac = [&] { return double(rs.epoch) + double(rs.batch_in_epoch) / double(batches.size()); };
  auto lr_now = [&] { return lr0 * std::pow(opts.lr_decay, double(rs.epoch)); };
  auto make_ck = [&] {
    TaskCheckpoint c;
    c.model = model;
    rs.dropout_rng = dropout_rng.state();
    rs.optimizer_steps = optimizer.steps();
    rs.elapsed_s = elapsed0 + run_s();
    c.train_state = state_json(rs);
    for (auto& [name, t] : optimizer.state_tensors()) c.tensors[name] = *t;
    return c;
  };
  TaskEvalOptions eo{.batch = opts.eval_batch, .decode = {}, .decode_outputs = false};
  int64_t last_eval = -1;
  auto eval_point = [&] {
    last_eval = rs.step;
    if (!valid.empty()) {
      const TaskEvalResult r = evaluate_task(model, valid, eo);
      if (!std::isfinite(r.loss.mean())) throw Error("training diverged: validation loss is not finite; try a lower --lr");
      write_log({.type = "valid", .step = rs.step, .epoch = epoch_frac(), .loss = r.loss.mean(), .metric = r.metric,
                 .metric_name = r.metric_name, .grad_norm = 0, .examples_per_s = 0, .lr = lr_now(),
                 .elapsed_s = elapsed0 + run_s()});
      result.metric_name = r.metric_name;
      // Ties (a small validation set at 100%) go to the lower loss.
      if (r.metric > rs.best_metric || (r.metric == rs.best_metric && r.loss.mean() < rs.best_loss)) {
        rs.best_loss = r.loss.mean();
        rs.best_metric = r.metric;
        rs.best_step = rs.step;
        save_task_checkpoint(best_path, make_ck());
        result.best_path = best_path;
      }
    }
    save_task_checkpoint(last_path, make_ck());
  };

  // ---- the loop ----
  ModelCache<float> cache;
  double& w_loss = rs.w_loss;
  double& w_norm = rs.w_norm;
  int64_t &w_count = rs.w_count, &w_steps = rs.w_steps, &w_examples = rs.w_examples;
  auto w_t0 = clock::now();
  std::vector<const TaskExample*> ptrs;
  while (!budget_done()) {
    if (rs.batch_in_epoch >= int64_t(batches.size())) {
      ++rs.epoch;
      rs.batch_in_epoch = 0;
      batches = epoch_batches(train, rs.batch, rs.seed, rs.epoch);
      if (opts.valid_every == 0) eval_point();
      continue;
    }
    ptrs.clear();
    for (int64_t i : batches[size_t(rs.batch_in_epoch)]) ptrs.push_back(&train[size_t(i)]);
    ++rs.batch_in_epoch;
    ++rs.step;
    const TaskBatch tb = make_task_batch(model, ptrs);
    grads.zero();
    const LossSum ls = task_forward_backward(model, tb, {.training = true, .rng = &dropout_rng, .wanted = {}}, cache, &grads);
    if (!std::isfinite(ls.sum)) throw Error("training diverged at step " + std::to_string(rs.step) + " (loss not finite); try a lower --lr");
    const double norm = opts.clip_norm > 0 ? clip_grad_norm(refs, opts.clip_norm) : grad_norm(refs);
    if (!std::isfinite(norm)) throw Error("training diverged at step " + std::to_string(rs.step) + " (gradient norm not finite)");
    optimizer.set_lr(lr_now());
    optimizer.step();
    w_loss += ls.sum;
    w_count += ls.count;
    w_norm += norm;
    ++w_steps;
    w_examples += int64_t(ptrs.size());
    if (rs.step % opts.log_every == 0) {
      const double secs = std::chrono::duration<double>(clock::now() - w_t0).count();
      write_log({.type = "train", .step = rs.step, .epoch = epoch_frac(), .loss = w_count ? w_loss / double(w_count) : 0.0,
                 .metric_name = "", .grad_norm = w_norm / double(w_steps), .examples_per_s = secs > 0 ? double(w_examples) / secs : 0.0,
                 .lr = lr_now(), .elapsed_s = elapsed0 + run_s()});
      w_loss = w_norm = 0;
      w_count = w_steps = w_examples = 0;
      w_t0 = clock::now();
    }
    if (opts.valid_every > 0 && rs.step % opts.valid_every == 0) eval_point();
    if (stop && stop->load()) {
      result.interrupted = true;
      break;
    }
  }
  if (last_eval != rs.step) eval_point();
  if (result.interrupted) note("stopped at step " + std::to_string(rs.step) + "; continue with --resume");
  if (!result.interrupted && !test.empty()) {
    const bool use_best = fs::exists(best_path) && rs.best_step > 0;
    const TaskModel tm = use_best ? load_task_checkpoint(best_path).model : model;
    TaskEvalOptions to = eo;
    to.decode_outputs = true;
    const TaskEvalResult r = evaluate_task(tm, test, to);
    write_log({.type = "test", .step = use_best ? rs.best_step : rs.step, .epoch = epoch_frac(), .loss = r.loss.mean(),
               .metric = r.metric, .metric_name = r.metric_name, .grad_norm = 0, .examples_per_s = 0, .lr = lr_now(),
               .elapsed_s = elapsed0 + run_s()});
  }
  result.step = rs.step;
  result.epoch = rs.epoch;
  result.best_metric = rs.best_metric;
  if (result.best_path.empty() && rs.best_step > 0 && fs::exists(best_path)) result.best_path = best_path;
  return result;
}

}  // namespace recur
