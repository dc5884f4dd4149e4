// The one training loop (loop.h). A Loop object holds one run's state; each of its methods is
// one part of the run skeleton: restore, the step, logging, evaluation points, the final test.
#include "recur/train/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "json_fields.h"
#include "run_dir.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr uint64_t kDropoutSeed = 0x64726f70ULL;  // "drop": its own stream, so data order never moves with it

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The accumulators behind one train line; saved so a resumed run logs the same values.
struct Window {
  double loss_sum = 0;
  int64_t tokens = 0, examples = 0;
  double grad_norm_sum = 0;
  int64_t clipped = 0, steps = 0;
};

// Everything of a run's progress that is not a tensor.
struct LoopState {
  int64_t step = 0, epoch = 0, batch_in_epoch = 0;
  double lr = 0;
  // Selection: the score is the validation loss, or minus the metric where higher is better.
  double best_score = kInf, best_loss = kInf, best_metric = std::nan("");
  int64_t best_step = 0;
  // Early stopping (LoopOptions::patience): the best score of scheduled validations only (the
  // extra one at the end of an invocation must not change a resumed run), and how many
  // scheduled validations since it.
  double patience_best = kInf;
  int64_t bad_validations = 0;
  double first_loss = kInf;
  Rng::State dropout_rng{};
  std::string optimizer;
  int64_t optimizer_steps = 0;
  Window window;
  double elapsed_s = 0;
  int64_t tokens_seen = 0, examples_seen = 0;
};

nlohmann::ordered_json parse_object(const std::string& s) { return nlohmann::ordered_json::parse(s); }

std::string state_to_json(const LoopState& s, const LrSchedule& sched, const std::string& options,
                          const std::string& task) {
  const Window& w = s.window;
  nlohmann::ordered_json win = {{"loss_sum", w.loss_sum}, {"tokens", w.tokens},   {"examples", w.examples},
                                {"grad_norm_sum", w.grad_norm_sum}, {"clipped", w.clipped}, {"steps", w.steps}};
  nlohmann::ordered_json j = {{"format", kTrainStateFormat},
                              {"version", kTrainStateVersion},
                              {"step", s.step},
                              {"epoch", s.epoch},
                              {"batch_in_epoch", s.batch_in_epoch},
                              {"lr", s.lr},
                              {"schedule", parse_object(sched.state_json())},
                              {"best_score", number_or_null(s.best_score)},
                              {"best_loss", number_or_null(s.best_loss)},
                              {"best_metric", number_or_null(s.best_metric)},
                              {"best_step", s.best_step},
                              {"patience_best", number_or_null(s.patience_best)},
                              {"bad_validations", s.bad_validations},
                              {"first_loss", number_or_null(s.first_loss)},
                              {"dropout_rng", rng_state_json(s.dropout_rng)},
                              {"optimizer", s.optimizer},
                              {"optimizer_steps", s.optimizer_steps},
                              {"window", win},
                              {"elapsed_s", s.elapsed_s},
                              {"tokens_seen", s.tokens_seen},
                              {"examples_seen", s.examples_seen},
                              {"options", parse_object(options)},
                              {"task", parse_object(task)}};
  return j.dump();
}

// Reads the loop's fields; the schedule, options and task objects come back as JSON texts.
struct ParsedState {
  LoopState s;
  std::string schedule, options, task;
};

void check_format(JsonFields& f) {
  if (!f.has("format"))
    throw FormatError(f.where() +
                      ": written by recur's version-1 trainer, which this recur cannot resume (the model still "
                      "loads for sample, eval and info); start a fresh run");
  if (f.string("format") != kTrainStateFormat) f.fail("format", "\"recur-train\"");
  const int64_t v = f.integer("version", 1);
  if (v > kTrainStateVersion)
    throw FormatError(f.where() + ": \"version\": " + std::to_string(v) + " was written by a newer recur; expected <= " +
                      std::to_string(kTrainStateVersion));
}

ParsedState state_from_json(std::string_view json, std::string_view origin) {
  JsonFields f(json, std::string(origin) + ": metadata \"train_state\"");
  check_format(f);
  ParsedState p;
  LoopState& s = p.s;
  s.step = f.integer("step", 0);
  s.epoch = f.integer("epoch", 0);
  s.batch_in_epoch = f.integer("batch_in_epoch", 0);
  s.lr = f.number("lr");
  auto object = [&](const char* name) {
    const auto& v = f.raw(name);
    if (!v.is_object()) f.fail(name, "an object");
    return v.dump();
  };
  p.schedule = object("schedule");
  s.best_score = f.number("best_score", true);
  s.best_loss = f.number("best_loss", true);
  s.best_metric = f.number("best_metric", true);
  if (std::isinf(s.best_metric)) s.best_metric = std::nan("");
  s.best_step = f.integer("best_step", 0);
  if (f.has("patience_best")) {  // absent in states written before --patience: nothing counted yet
    s.patience_best = f.number("patience_best", true);
    s.bad_validations = f.integer("bad_validations", 0);
  }
  s.first_loss = f.number("first_loss", true);
  s.dropout_rng = f.rng_state("dropout_rng");
  s.optimizer = f.string("optimizer");
  s.optimizer_steps = f.integer("optimizer_steps", 0);
  {
    JsonFields w = f.object("window");
    s.window.loss_sum = w.number("loss_sum");
    s.window.tokens = w.integer("tokens", 0);
    s.window.examples = w.integer("examples", 0);
    s.window.grad_norm_sum = w.number("grad_norm_sum");
    s.window.clipped = w.integer("clipped", 0);
    s.window.steps = w.integer("steps", 0);
    w.finish();
  }
  s.elapsed_s = f.number("elapsed_s");
  s.tokens_seen = f.integer("tokens_seen", 0);
  s.examples_seen = f.integer("examples_seen", 0);
  p.options = object("options");
  p.task = object("task");
  f.finish();
  return p;
}

// A task's parameters, without ParamRef::rows when the gradients are summed over ranks: the
// sum fills rows this process's backward did not touch (TrainTask::zero_grads knows it too).
std::vector<ParamRef<float>> dense_if(std::vector<ParamRef<float>> refs, bool distributed) {
  if (distributed)
    for (ParamRef<float>& r : refs) r.rows = nullptr;
  return refs;
}

class Loop {
 public:
  Loop(TrainTask& task, const LoopOptions& o, const TrainObserver& obs, const std::atomic<bool>* stop)
      : task_(task), o_(o), obs_(obs), stop_(stop), comm_(o.comm ? *o.comm : Communicator::world()),
        refs_(dense_if(task.params(), comm_.distributed())), optimizer_(o.optimizer, refs_),
        dropout_(dropout_seed(o.seed, 0)) {
    task_.set_shard(comm_.rank(), comm_.size());
    if (comm_.distributed()) plan_buckets();
    sched_.opts = o.schedule;
    sched_.opts.lr0 = o.optimizer.lr;
    const fs::path dir(o.out_dir);
    last_path_ = (dir / "last.safetensors").string();
    best_path_ = (dir / "best.safetensors").string();
    result_.last_path = last_path_;
    s_.optimizer = std::string(optimizer_name(o.optimizer.type));
  }

  TrainResult run(ResumeState resume) {
    if (o_.resuming) restore(resume);
    if (comm_.distributed()) {
      check_same_run();
      note("data-parallel: " + std::to_string(comm_.size()) + " ranks (" + mpi_library_version() +
           "), each takes its share of every batch");
    }
    if (budget_done(0)) {
      if (o_.resuming) {
        result_.nothing_to_do = true;
        return finish();
      }
    }
    if (o_.resuming && stopped_early()) {  // a larger --patience continues it
      note("this run stopped early at step " + std::to_string(s_.step) + ": " + patience_reason());
      result_.early_stopped = result_.nothing_to_do = true;
      return finish();
    }
    if (leader()) metrics_ = detail::open_run_metrics(o_.out_dir, o_.resuming, s_.step);
    elapsed0_ = s_.elapsed_s;
    window_t0_ = Clock::now();
    while (!budget_done(agreed_seconds())) {
      if (!task_.next_batch()) {  // an epoch end: the task is at the start of the next epoch
        s_.epoch = task_.epoch();
        s_.batch_in_epoch = 0;
        if (o_.valid_every == 0) eval_point(true);
        if (stopped_early()) break;
        continue;
      }
      step();
      if (o_.valid_every > 0 && s_.step % o_.valid_every == 0) eval_point(true);
      if (stopped_early()) break;
      if (comm_.distributed() ? stop_requested_ : stop_ && stop_->load()) {
        result_.interrupted = true;
        break;
      }
    }
    // The extra evaluation at the end of a run does not drive the plateau rule, or a run split in
    // two would train differently from one in a piece.
    if (last_eval_step_ != s_.step) eval_point(false);
    // The caller prints how to continue (trainer.h resume_hint): it knows the command line.
    if (result_.interrupted) note("stopped at step " + std::to_string(s_.step));
    if (stopped_early()) {
      result_.early_stopped = true;
      note("stopped early at step " + std::to_string(s_.step) + ": " + patience_reason());
    }
    result_.out_of_time =
        !result_.interrupted && !result_.early_stopped && o_.time_limit > 0 && !budget_done_without_time();
    if (result_.out_of_time)
      note("stopped at step " + std::to_string(s_.step) + ": the --time budget of " + num(o_.time_limit) +
           " s of this invocation is spent");
    if (!result_.interrupted && task_.has_split(EvalSplit::test) && leader()) final_test();
    return finish();
  }

 private:
  // Rank 0 writes the run directory and talks to the user; the others compute.
  bool leader() const { return comm_.rank() == 0; }
  void note(const std::string& s) const {
    if (obs_.on_note && leader()) obs_.on_note(s);
  }
  double run_seconds() const { return seconds_since(t_start_); }
  // The time budget as all ranks see it: the largest clock of the last step (one process: now),
  // so every rank stops after the same step.
  double agreed_seconds() const { return comm_.distributed() ? agreed_seconds_ : run_seconds(); }

  // The dropout stream of a rank. Rank 0's is the one-process stream, saved in checkpoints; the
  // others are derived from the seed, the rank and the step, so a resume with any rank count
  // recreates them without saving one per rank.
  static uint64_t dropout_seed(uint64_t seed, int rank, int64_t step = 0) {
    if (rank == 0) return seed ^ kDropoutSeed;
    return seed ^ kDropoutSeed ^ (uint64_t(rank) * 0x9e3779b97f4a7c15ULL) ^ (uint64_t(step) * 0xbf58476d1ce4e5b9ULL);
  }

  // Every rank must train the same model on the same data with the same settings: a hash of the
  // options, the task's data position and the initial parameters, compared at the start.
  void check_same_run() const {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a
    auto mix = [&h](const void* p, size_t n) {
      const auto* b = static_cast<const unsigned char*>(p);
      for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
    };
    const std::string what = o_.options_json + task_.state_json();
    mix(what.data(), what.size());
    for (const auto& r : refs_) {
      mix(r.name.data(), r.name.size());
      mix(r.value, size_t(r.size) * sizeof(float));
    }
    const std::vector<uint64_t> all = comm_.allgather(h);
    for (size_t r = 1; r < all.size(); ++r)
      if (all[r] != all[0])
        throw Error("rank " + std::to_string(r) + " of " + std::to_string(all.size()) +
                    " differs from rank 0 in its options, training data or initial model; every rank must be "
                    "started with the same flags and the same files");
  }
  bool stopped_early() const { return o_.patience > 0 && s_.bad_validations >= o_.patience; }
  std::string patience_reason() const {
    return std::to_string(s_.bad_validations) + " validations without improvement (--patience " +
           std::to_string(o_.patience) + "); the best model, from step " + std::to_string(s_.best_step) + ", is " +
           best_path_;
  }
  int64_t max_epochs() const { return o_.epochs == 0 && o_.steps == 0 && o_.time_limit == 0 ? 10 : o_.epochs; }
  bool budget_done_without_time() const {
    return (o_.steps > 0 && s_.step >= o_.steps) || (max_epochs() > 0 && s_.epoch >= max_epochs());
  }
  bool budget_done(double run_s) const {
    return (o_.steps > 0 && s_.step >= o_.steps) || (max_epochs() > 0 && s_.epoch >= max_epochs()) ||
           (o_.time_limit > 0 && run_s >= o_.time_limit);
  }
  double epoch_frac() const {
    const int64_t bpe = task_.batches_per_epoch();
    return double(s_.epoch) + (bpe > 0 ? double(s_.batch_in_epoch) / double(bpe) : 0.0);
  }

  void restore(ResumeState& r) {
    const ParsedState p = state_from_json(r.train_state, o_.resume_path);
    const std::string saved_optimizer = p.s.optimizer;
    s_ = p.s;
    sched_.set_state_json(p.schedule, o_.resume_path + ": metadata \"train_state\": \"schedule\"");
    task_.set_state_json(p.task, o_.resume_path + ": metadata \"train_state\": \"task\"");
    if (leader()) dropout_.set_state(s_.dropout_rng);
    else dropout_ = Rng(dropout_seed(o_.seed, comm_.rank(), s_.step));
    task_.restore_tensors(r.tensors, o_.resume_path);
    s_.optimizer = std::string(optimizer_name(o_.optimizer.type));
    const bool same_optimizer = saved_optimizer == s_.optimizer;
    if (same_optimizer) {
      optimizer_.set_steps(s_.optimizer_steps);
      for (auto& [name, t] : optimizer_.state_tensors()) {
        auto it = r.tensors.find(name);
        if (it == r.tensors.end())
          throw FormatError(o_.resume_path + ": missing tensor '" + name + "' (optimizer state of " + s_.optimizer + ")");
        if (it->second.shape != t->shape)
          throw FormatError(o_.resume_path + ": tensor '" + name + "': expected shape " + shape_str(t->shape) +
                            ", got " + shape_str(it->second.shape));
        t->data = std::move(it->second.data);
        r.tensors.erase(it);
      }
    } else {
      note("optimizer changed from " + saved_optimizer + " to " + s_.optimizer + ": its state starts fresh");
    }
    for (const auto& [name, t] : r.tensors) {
      (void)t;
      if (!same_optimizer && name.rfind("optim.", 0) == 0) continue;
      throw FormatError(o_.resume_path + ": unexpected tensor '" + name + "' for this run");
    }
    note("resumed from " + o_.resume_path + " at step " + std::to_string(s_.step) + ", epoch " +
         std::to_string(s_.epoch));
  }

  [[noreturn]] void diverged(const std::string& what) const {
    const std::string kept =
        fs::exists(last_path_) ? "last good checkpoint " + last_path_ + " kept" : "no checkpoint was written";
    throw Error("training diverged at step " + std::to_string(s_.step) + " (" + what + "); " + kept +
                "; try a lower --lr or --clip-norm");
  }

  void step() {
    ++s_.step;
    ++s_.batch_in_epoch;
    ++steps_this_run_;
    s_.lr = sched_.lr(s_.epoch, s_.step);
    task_.zero_grads();
    // The loss is the mean over the global batch's targets: each rank scales by the total.
    double targets = double(task_.batch_targets());
    comm_.allreduce_sum(std::span<double>(&targets, 1));
    StepResult sr = comm_.distributed() ? task_.forward_backward(dropout_, int64_t(targets), ready_)
                                        : task_.forward_backward(dropout_, int64_t(targets), {});
    if (comm_.distributed()) sum_over_ranks(sr);
    if (sr.loss.count <= 0) throw Error("internal: a training batch without target tokens");
    const double loss = sr.loss.mean();
    char lbuf[48];
    std::snprintf(lbuf, sizeof lbuf, "loss=%.6g", loss);
    if (!std::isfinite(loss)) diverged(lbuf);
    if (!std::isfinite(s_.first_loss)) s_.first_loss = loss;
    if (o_.diverge_factor > 0 && loss > o_.diverge_factor * s_.first_loss)
      diverged(std::string(lbuf) + ", above " + num(o_.diverge_factor) + "x the first step's " + num(s_.first_loss));
    bool clipped = false;
    double norm;
    if (o_.clip_norm > 0) {
      norm = clip_grad_norm(refs_, o_.clip_norm);
      clipped = norm > o_.clip_norm;
    } else {
      norm = grad_norm(refs_);
    }
    if (!std::isfinite(norm)) diverged("gradient norm " + num(norm));
    if (o_.clip_value > 0 && clip_grad_value(refs_, o_.clip_value) > 0) clipped = true;
    if (o_.diagnostics_every > 0) diagnostics(norm, clipped);  // before the update: this step's weights
    optimizer_.set_lr(s_.lr);
    optimizer_.step();

    Window& w = s_.window;
    w.loss_sum += sr.loss.sum;
    w.tokens += sr.loss.count;
    w.examples += sr.examples;
    w.grad_norm_sum += norm;
    w.clipped += clipped;
    w.steps += 1;
    s_.tokens_seen += sr.loss.count;
    s_.examples_seen += sr.examples;
    log_train();
  }

  // Gradient buckets, as PyTorch's DDP: parameters [begin, end) of refs_, about 4 MiB each,
  // planned once from the last parameter back (backward finishes the last layers first). A
  // bucket's sum starts as soon as backward has made all its gradients final (ready_), so
  // communication overlaps the lower layers' backward. The plan is fixed, so every step reduces
  // the same messages in the same order and a repeated run gives the same bits.
  struct Bucket {
    size_t begin = 0, end = 0;
    std::vector<float> data;  // the packed gradients while their sum is in flight
    bool started = false;
  };
  void plan_buckets() {
    constexpr size_t kBucketFloats = size_t(1) << 20;
    size_t end = refs_.size(), n = 0;
    for (size_t i = refs_.size(); i-- > 0;) {
      n += size_t(refs_[i].size);
      if (n >= kBucketFloats || i == 0) {
        buckets_.push_back({.begin = i, .end = end, .data = {}, .started = false});
        end = i;
        n = 0;
      }
    }
    ready_ = [this](size_t first) {
      for (Bucket& b : buckets_)
        if (!b.started && b.begin >= first) start_bucket(b);
      comm_.progress();
    };
  }
  void start_bucket(Bucket& b) {
    b.data.clear();
    for (size_t i = b.begin; i < b.end; ++i) b.data.insert(b.data.end(), refs_[i].grad, refs_[i].grad + refs_[i].size);
    comm_.start_allreduce_sum(std::span<float>(b.data));
    b.started = true;
  }

  // Gradients, loss and counts summed over ranks (the buckets backward did not start are started
  // now); the stop request and the clock agreed at the same time.
  void sum_over_ranks(StepResult& sr) {
    const auto t0 = Clock::now();
    for (Bucket& b : buckets_)
      if (!b.started) start_bucket(b);
    comm_.wait_all();
    comm_wait_s_ += seconds_since(t0);
    for (Bucket& b : buckets_) {
      size_t off = 0;
      for (size_t i = b.begin; i < b.end; ++i) {
        std::copy_n(b.data.data() + off, size_t(refs_[i].size), refs_[i].grad);
        off += size_t(refs_[i].size);
      }
      b.started = false;
    }
    double sums[3] = {sr.loss.sum, double(sr.loss.count), double(sr.examples)};
    comm_.allreduce_sum(std::span<double>(sums, 3));
    sr.loss.sum = sums[0];
    sr.loss.count = int64_t(sums[1]);
    sr.examples = int64_t(sums[2]);
    double agree[2] = {run_seconds(), stop_ && stop_->load() ? 1.0 : 0.0};
    comm_.allreduce_max(std::span<double>(agree, 2));
    agreed_seconds_ = agree[0];
    stop_requested_ = agree[1] > 0;
  }

  void diagnostics(double norm, bool clipped) {
    ++diag_steps_;
    diag_clipped_ += clipped;
    if (s_.step % o_.diagnostics_every != 0 || !leader()) return;  // rank 0's rows
    const DiagContext ctx{.step = s_.step, .epoch = epoch_frac(), .grad_norm = norm,
                          .grad_norm_clipped = grad_norm(refs_), .clipped = clipped,
                          .clip_rate = double(diag_clipped_) / double(diag_steps_)};
    write_metrics_line(task_.diagnostics_json(ctx));
    diag_steps_ = diag_clipped_ = 0;
  }

  double eta() const {
    const double run_s = run_seconds();
    if (steps_this_run_ <= 0 || run_s <= 0) return -1;
    const double rate = double(steps_this_run_) / run_s;  // steps per second
    double remaining = kInf;
    if (o_.steps > 0) remaining = std::min(remaining, double(o_.steps - s_.step) / rate);
    if (max_epochs() > 0)
      remaining = std::min(
          remaining, double((max_epochs() - s_.epoch) * task_.batches_per_epoch() - s_.batch_in_epoch) / rate);
    if (o_.time_limit > 0) remaining = std::min(remaining, o_.time_limit - run_s);
    return std::isfinite(remaining) ? std::max(0.0, remaining) : -1;
  }

  TrainLog loss_log(const char* type, const LossSum& l) const {
    TrainLog g;
    g.type = type;
    g.step = s_.step;
    g.epoch = epoch_frac();
    g.loss = l.mean();
    g.ppl = std::exp(g.loss);
    g.bpc = task_.loss_per_char() ? g.loss / std::log(2.0) : std::nan("");
    g.grad_norm = g.clip_rate = std::nan("");
    g.lr = s_.lr;
    g.elapsed_s = elapsed0_ + run_seconds();
    g.ranks = comm_.size();
    return g;
  }

  void log_train() {
    const bool log_now = s_.step % o_.log_every == 0;
    if (!leader() || (!obs_.on_progress && !log_now)) return;
    Window& w = s_.window;
    TrainLog l = loss_log("train", LossSum{w.loss_sum, w.tokens});
    const double secs = seconds_since(window_t0_);
    l.grad_norm = w.grad_norm_sum / double(w.steps);
    l.clip_rate = double(w.clipped) / double(w.steps);
    l.tokens_per_s = secs > 0 ? double(w.tokens) / secs : 0.0;
    l.examples_per_s = secs > 0 ? double(w.examples) / secs : 0.0;
    l.eta_s = eta();
    if (comm_.distributed()) l.comm_wait_s = comm_wait_s_ / double(w.steps);
    if (obs_.on_progress) obs_.on_progress(l);
    if (log_now) {
      write_log(l);
      w = Window();
      window_t0_ = Clock::now();
      comm_wait_s_ = 0;
    }
  }

  void write_log(const TrainLog& l) {
    nlohmann::ordered_json j = {{"type", l.type}, {"step", l.step}, {"epoch", l.epoch},
                                {"loss", l.loss}, {"ppl", l.ppl},   {"bpc", l.bpc}};
    if (!l.metric_name.empty()) j[l.metric_name] = l.metric;
    j["grad_norm"] = l.grad_norm;
    j["clip_rate"] = l.clip_rate;
    j["tokens_per_s"] = l.tokens_per_s;
    j["examples_per_s"] = l.examples_per_s;
    j["lr"] = l.lr;
    j["elapsed_s"] = l.elapsed_s;
    if (std::isfinite(l.comm_wait_s)) j["comm_wait_s"] = l.comm_wait_s;
    write_metrics_line(j.dump());
    if (obs_.on_log && leader()) obs_.on_log(l);
  }

  void save(const std::string& path) {
    s_.dropout_rng = dropout_.state();
    s_.optimizer_steps = optimizer_.steps();
    s_.elapsed_s = elapsed0_ + run_seconds();
    std::map<std::string, Tensor<float>> tensors;
    for (auto& [name, t] : optimizer_.state_tensors()) tensors[name] = *t;
    task_.gather_for_checkpoint(comm_);
    if (!leader()) return;
    task_.write_checkpoint(path, state_to_json(s_, sched_, o_.options_json, task_.state_json()), std::move(tensors));
  }

  TrainLog eval_log(const char* type, const EvalSummary& e, double secs) const {
    TrainLog l = loss_log(type, e.loss);
    l.metric = e.metric;
    l.metric_name = e.metric_name;
    l.tokens_per_s = secs > 0 ? double(e.loss.count) / secs : 0.0;
    l.examples_per_s = secs > 0 ? double(e.examples) / secs : 0.0;
    return l;
  }

  // Validation, best/last checkpoints. `scheduled` points (epoch ends, --valid-every) drive the
  // plateau rule.
  void eval_point(bool scheduled) {
    last_eval_step_ = s_.step;
    if (task_.has_split(EvalSplit::valid)) {
      const auto t0 = Clock::now();
      const EvalSummary e = task_.evaluate(EvalSplit::valid, "");
      const double vl = e.loss.mean();
      if (!std::isfinite(vl)) diverged("validation loss=" + num(vl));
      write_log(eval_log("valid", e, seconds_since(t0)));
      result_.metric_name = e.metric_name;
      const double score = e.metric_name.empty() ? vl : (e.higher_is_better ? -e.metric : e.metric);
      if (scheduled && sched_.on_validation(score))
        note("validation did not improve: learning rate now " + num(sched_.lr(s_.epoch)));
      if (scheduled) {
        if (score < s_.patience_best) {
          s_.patience_best = score;
          s_.bad_validations = 0;
        } else {
          ++s_.bad_validations;
        }
      }
      // Ties (a small validation set at 100%) go to the lower loss.
      if (score < s_.best_score || (score == s_.best_score && vl < s_.best_loss)) {
        s_.best_score = score;
        s_.best_loss = vl;
        s_.best_metric = e.metric;
        s_.best_step = s_.step;
        save(best_path_);
        result_.best_path = best_path_;
      }
    }
    save(last_path_);
  }

  void final_test() {
    const bool use_best = fs::exists(best_path_) && s_.best_step > 0;
    const EvalSummary e = task_.evaluate(EvalSplit::test, use_best ? best_path_ : "");
    TrainLog l = eval_log("test", e, 0);
    l.step = use_best ? s_.best_step : s_.step;
    l.tokens_per_s = l.examples_per_s = 0;
    write_log(l);
  }

  TrainResult finish() {
    result_.step = s_.step;
    result_.epoch = s_.epoch;
    result_.best_valid_loss = s_.best_loss;
    result_.best_metric = s_.best_metric;
    if (result_.best_path.empty() && s_.best_step > 0 && fs::exists(best_path_)) result_.best_path = best_path_;
    return result_;
  }

  TrainTask& task_;
  const LoopOptions& o_;
  const TrainObserver& obs_;
  const std::atomic<bool>* stop_;
  const Communicator& comm_;
  std::vector<ParamRef<float>> refs_;
  std::vector<Bucket> buckets_;  // data parallelism: plan_buckets()
  GradsReadyFn ready_;
  double comm_wait_s_ = 0;  // this logging window's waits for gradient sums
  double agreed_seconds_ = 0;
  bool stop_requested_ = false;
  Optimizer<float> optimizer_;
  Rng dropout_;
  LrSchedule sched_;
  LoopState s_;
  TrainResult result_;
  std::string last_path_, best_path_;
  std::ofstream metrics_;
  // Appends one line and checks it reached the file: a full disk or a file-size limit is an
  // error naming the file, not a run whose metrics silently stop.
  void write_metrics_line(const std::string& line) {
    if (!leader()) return;
    metrics_ << line << '\n';
    metrics_.flush();
    if (!metrics_)
      throw Error((std::filesystem::path(o_.out_dir) / "metrics.jsonl").string() + ": cannot write the metrics");
  }
  Clock::time_point t_start_ = Clock::now(), window_t0_ = Clock::now();
  double elapsed0_ = 0;
  int64_t steps_this_run_ = 0, last_eval_step_ = -1;
  int64_t diag_steps_ = 0, diag_clipped_ = 0;  // --diagnostics: clip rate since its last line
};

}  // namespace

TrainResult train(TrainTask& task, const LoopOptions& opts, ResumeState resume, const TrainObserver& obs,
                  const std::atomic<bool>* stop) {
  if (!(opts.optimizer.lr > 0)) throw Error("internal: train() needs the resolved learning rate");
  Loop loop(task, opts, obs, stop);
  return loop.run(std::move(resume));
}

bool is_loop_train_state(std::string_view train_state) {
  try {
    const auto j = nlohmann::json::parse(train_state.begin(), train_state.end());
    return j.is_object() && j.contains("format") && j["format"] == kTrainStateFormat;
  } catch (const std::exception&) {
    return false;
  }
}

TrainStateSummary train_state_summary(std::string_view train_state, std::string_view origin) {
  const ParsedState p = state_from_json(train_state, origin);
  TrainStateSummary t;
  t.step = p.s.step;
  t.epoch = p.s.epoch;
  t.lr = p.s.lr;
  t.best_valid_loss = p.s.best_loss;
  t.best_step = p.s.best_step;
  t.elapsed_s = p.s.elapsed_s;
  t.tokens_seen = p.s.tokens_seen;
  t.options_json = p.options;
  return t;
}

// ---- the progress line ----

std::string format_duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "?";
  char buf[32];
  const long t = long(std::llround(s));
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string format_count(double x) {
  char buf[32];
  if (x >= 1e6) std::snprintf(buf, sizeof buf, "%.1fM", x / 1e6);
  else if (x >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", x / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", x);
  return buf;
}

std::string format_train_log(const TrainLog& l) {
  char buf[512];
  const bool chars = std::isfinite(l.bpc);
  const char* lm = chars ? "bpc" : "ppl";
  const double mv = chars ? l.bpc : l.ppl;
  if (l.type != "train") {
    int n = std::snprintf(buf, sizeof buf, "%-5s step %lld | epoch %.2f | loss %.4f | %s %.4f", l.type.c_str(),
                          (long long)l.step, l.epoch, l.loss, lm, mv);
    if (!l.metric_name.empty() && n > 0 && size_t(n) < sizeof buf)
      std::snprintf(buf + n, sizeof buf - size_t(n), " | %s %.4f", l.metric_name.c_str(), l.metric);
    return buf;
  }
  // Examples/s only where an example is not a token stream row per step (it then differs).
  std::string ex;
  if (l.examples_per_s > 0 && std::fabs(l.examples_per_s - l.tokens_per_s) > 1e-9 * l.tokens_per_s)
    ex = " | " + format_count(l.examples_per_s) + " ex/s";
  std::snprintf(buf, sizeof buf,
                "step %lld | epoch %.2f | loss %.4f | %s %.4f | grad %.3g | clip %.0f%% | %s tok/s%s%s | lr %.3g | ETA %s",
                (long long)l.step, l.epoch, l.loss, lm, mv, l.grad_norm, 100.0 * l.clip_rate,
                format_count(l.tokens_per_s).c_str(), ex.c_str(),
                l.ranks > 1 ? (" on " + std::to_string(l.ranks) + " ranks").c_str() : "", l.lr,
                l.eta_s < 0 ? "?" : format_duration(l.eta_s).c_str());
  return buf;
}

}  // namespace recur
