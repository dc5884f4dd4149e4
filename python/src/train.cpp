// python/src/train.cpp - recur.train(data, out=..., **options): `recur train` from Python. The
// options are the CLI's flags in snake_case filling the same TrainOptions (tasks/trainer.h) the
// way apps/cmd_train.cpp fills them, so the same options and seed train bit-identically; the
// library validates them per task, resumes and runs the one loop (train/loop.h).
//
// Progress goes to Python callbacks (the loop's TrainObserver). Ctrl-C: Python's own SIGINT
// handler only flags the signal while recur runs; the calling thread, waiting for the run, runs
// PyErr_CheckSignals every 50 ms, and a KeyboardInterrupt (or any exception a callback raises)
// asks the loop to stop: it writes last.safetensors and returns, and the exception is raised then.
//
// The run itself goes on a thread of its own with SIGINT and SIGTERM blocked. Linux gives a
// process's signal to its main thread when that thread does not block it, so Python's C handler
// runs on the waiting thread's stack, never on the computing one: a signal frame written below
// the stack pointer of oneDNN's JIT code corrupted the heap (apps/signals.h tells the story).
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <exception>
#include <functional>
#include <future>
#include <initializer_list>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.h"
#include "recur/core/threads.h"
#include "recur/diag/plot.h"
#include "recur/tasks/trainer.h"

namespace recur::python {
namespace {

// What recur.train takes besides TrainOptions' own fields: the CLI's string-valued flags and the
// flags cmd_train.cpp handles itself.
struct TrainArgs {
  TrainOptions o;
  bool resume_last = false;
  int64_t diagnostics = 0;  // 0 = off
  int threads = 0;
  bool deterministic = false;  // the same bits at any thread count (core/threads.h)
  bool plots = false;
};

std::string type_name(py::handle v) { return py::str(py::type::of(v).attr("__name__")); }

// Python values of one option, with recur's one-line error for the wrong type.
template <typename T>
T as(py::handle v, const std::string& name, const char* expected) {
  // bool is an int in Python; an int option given True is a mistake, not 1.
  if constexpr (!std::is_same_v<T, bool>)
    if (py::isinstance<py::bool_>(v)) throw Error(name + ": got " + std::string(py::repr(v)) + ", expected " + expected);
  if constexpr (std::is_same_v<T, bool>) {
    if (!py::isinstance<py::bool_>(v)) throw Error(name + ": got " + std::string(py::repr(v)) + ", expected True or False");
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!py::isinstance<py::str>(v) && !py::hasattr(v, "__fspath__"))
      throw Error(name + ": got " + type_name(v) + " " + std::string(py::repr(v)) + ", expected " + expected);
    return py::str(py::module_::import("os").attr("fspath")(v));
  } else if constexpr (std::is_integral_v<T>) {
    // Python ints and numpy's integer scalars (which have __index__).
    if (!py::isinstance<py::int_>(v) && !PyIndex_Check(v.ptr()))
      throw Error(name + ": got " + std::string(py::repr(v)) + ", expected " + expected);
  } else {
    if (!py::isinstance<py::int_>(v) && !py::isinstance<py::float_>(v) && !PyIndex_Check(v.ptr()))
      throw Error(name + ": got " + std::string(py::repr(v)) + ", expected " + expected);
  }
  try {
    return v.cast<T>();
  } catch (const py::cast_error&) {
    throw Error(name + ": got " + std::string(py::repr(v)) + ", expected " + expected);
  }
}

std::string one_of(py::handle v, const std::string& name, std::initializer_list<const char*> allowed) {
  const std::string s = as<std::string>(v, name, "a str");
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return s;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw Error(name + ": got '" + s + "', expected one of " + list);
}

using Setter = std::function<void(TrainArgs&, py::handle, const std::string&)>;

// Every option: the CLI flag's snake_case name and how it fills TrainArgs (cmd_train.cpp and
// cmd_tasks.cpp's add_task_train_options). Music's own flags are not here: --task music is the
// CLI's (its corpus options live in the app).
const std::vector<std::pair<std::string, Setter>>& option_table() {
  static const std::vector<std::pair<std::string, Setter>> table = [] {
    std::vector<std::pair<std::string, Setter>> t;
    auto str = [&](const char* name, std::string TrainOptions::*f) {
      t.emplace_back(name, [f](TrainArgs& a, py::handle v, const std::string& n) { a.o.*f = as<std::string>(v, n, "a str or path"); });
    };
    auto i64 = [&](const char* name, int64_t TrainOptions::*f) {
      t.emplace_back(name, [f](TrainArgs& a, py::handle v, const std::string& n) { a.o.*f = as<int64_t>(v, n, "an int"); });
    };
    auto f64 = [&](const char* name, double TrainOptions::*f) {
      t.emplace_back(name, [f](TrainArgs& a, py::handle v, const std::string& n) { a.o.*f = as<double>(v, n, "a number"); });
    };
    auto flag = [&](const char* name, bool TrainOptions::*f) {
      t.emplace_back(name, [f](TrainArgs& a, py::handle v, const std::string& n) { a.o.*f = as<bool>(v, n, "a bool"); });
    };
    t.emplace_back("task", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.o.task = one_of(v, n, {"lm", "music", "classify", "tag", "seq2seq", "generate"});
    });
    t.emplace_back("resume", [](TrainArgs& a, py::handle v, const std::string& n) {
      // resume=True: the run directory's last.safetensors (the CLI's bare --resume); a path: that file.
      if (py::isinstance<py::bool_>(v)) a.resume_last = v.cast<bool>();
      else a.o.resume_path = as<std::string>(v, n, "True or a checkpoint path");
    });
    flag("force", &TrainOptions::force);
    str("valid", &TrainOptions::valid_path);
    str("test", &TrainOptions::test_path);
    f64("valid_fraction", &TrainOptions::valid_fraction);
    t.emplace_back("level", [](TrainArgs& a, py::handle v, const std::string& n) {
      const std::string s = one_of(v, n, {"char", "word", "chars", "words"});
      a.o.level = s == "char" || s == "chars" ? TokenLevel::chars : TokenLevel::words;
    });
    t.emplace_back("mode", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.o.mode = parse_text_mode(one_of(v, n, {"stream", "lines"}));
    });
    i64("max_vocab", &TrainOptions::max_vocab);
    i64("min_count", &TrainOptions::min_count);
    t.emplace_back("cell", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.o.cell = parse_cell(one_of(v, n, {"lstm", "gru", "rnn", "rnn_tanh", "rnn_relu"}));
    });
    t.emplace_back("gru_reset", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.o.gru_reset = parse_gru_reset(one_of(v, n, {"after", "before"}));
    });
    i64("layers", &TrainOptions::layers);
    i64("hidden", &TrainOptions::hidden);
    i64("embed", &TrainOptions::embed);
    i64("proj", &TrainOptions::proj);
    flag("peephole", &TrainOptions::peephole);
    flag("tie_weights", &TrainOptions::tie_weights);
    flag("bidirectional", &TrainOptions::bidirectional);
    f64("dropout", &TrainOptions::dropout);
    f64("init_scale", &TrainOptions::init_scale);
    t.emplace_back("precision", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.o.precision = parse_precision(one_of(v, n, {"f32", "bf16"}), n);
    });
    t.emplace_back("optimizer", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.o.optimizer.type = parse_optimizer(one_of(v, n, {"sgd", "adam", "adagrad", "rmsprop"}));
    });
    t.emplace_back("lr", [](TrainArgs& a, py::handle v, const std::string& n) { a.o.optimizer.lr = as<double>(v, n, "a number"); });
    t.emplace_back("momentum",
                   [](TrainArgs& a, py::handle v, const std::string& n) { a.o.optimizer.momentum = as<double>(v, n, "a number"); });
    t.emplace_back("weight_decay", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.o.optimizer.weight_decay = as<double>(v, n, "a number");
    });
    i64("batch", &TrainOptions::batch);
    i64("seq_len", &TrainOptions::seq_len);
    f64("clip_norm", &TrainOptions::clip_norm);
    f64("clip_value", &TrainOptions::clip_value);
    f64("lr_decay", &TrainOptions::lr_decay);
    i64("decay_after", &TrainOptions::decay_after);
    f64("plateau_decay", &TrainOptions::plateau_decay);
    i64("plateau_patience", &TrainOptions::plateau_patience);
    i64("warmup", &TrainOptions::warmup);
    i64("patience", &TrainOptions::patience);
    i64("epochs", &TrainOptions::epochs);
    i64("steps", &TrainOptions::steps);
    f64("time", &TrainOptions::time_limit);
    t.emplace_back("seed", [](TrainArgs& a, py::handle v, const std::string& n) {
      const int64_t s = as<int64_t>(v, n, "an int >= 0");
      if (s < 0) throw Error(n + ": got " + std::to_string(s) + ", expected an int >= 0");
      a.o.seed = uint64_t(s);
    });
    f64("diverge_factor", &TrainOptions::diverge_factor);
    i64("valid_every", &TrainOptions::valid_every);
    i64("log_every", &TrainOptions::log_every);
    i64("eval_batch", &TrainOptions::eval_batch);
    t.emplace_back("diagnostics", [](TrainArgs& a, py::handle v, const std::string& n) {
      // diagnostics=True: every 100 steps (the CLI's bare --diagnostics); an int N: every N steps.
      if (py::isinstance<py::bool_>(v)) {
        a.diagnostics = v.cast<bool>() ? 100 : 0;
        return;
      }
      a.diagnostics = as<int64_t>(v, n, "True or a step interval >= 1");
      if (a.diagnostics < 1) throw Error(n + ": got " + std::to_string(a.diagnostics) + ", expected a step interval >= 1");
    });
    t.emplace_back("plots", [](TrainArgs& a, py::handle v, const std::string& n) { a.plots = as<bool>(v, n, "a bool"); });
    t.emplace_back("threads", [](TrainArgs& a, py::handle v, const std::string& n) {
      const int64_t k = as<int64_t>(v, n, "an int in 0..1024");
      if (k < 0 || k > 1024) throw Error(n + ": got " + std::to_string(k) + ", expected an int in 0..1024 (0 = the libraries' defaults)");
      a.threads = int(k);
    });
    t.emplace_back("deterministic", [](TrainArgs& a, py::handle v, const std::string& n) {
      a.deterministic = as<bool>(v, n, "a bool");
    });
    flag("char_rnn", &TrainOptions::char_rnn);
    flag("crf", &TrainOptions::crf);
    str("tag_scheme", &TrainOptions::tag_scheme);
    str("attention", &TrainOptions::attention);
    str("pool", &TrainOptions::pool);
    f64("word_dropout", &TrainOptions::word_dropout);
    flag("input_feed", &TrainOptions::input_feed);
    i64("char_embed", &TrainOptions::char_embed);
    i64("char_hidden", &TrainOptions::char_hidden);
    flag("condition_every_step", &TrainOptions::condition_every_step);
    flag("binary", &TrainOptions::binary);
    flag("features", &TrainOptions::features);
    flag("keep_case", &TrainOptions::keep_case);
    flag("lower_words", &TrainOptions::lower_words);
    str("embeddings", &TrainOptions::embeddings_path);
    str("init_from", &TrainOptions::init_from);
    flag("extend_vocab", &TrainOptions::extend_vocab);
    flag("freeze_embeddings", &TrainOptions::freeze_embeddings);
    flag("embeddings_vocab", &TrainOptions::embeddings_vocab);
    i64("text_column", &TrainOptions::text_column);
    i64("label_column", &TrainOptions::label_column);
    i64("token_column", &TrainOptions::token_column);
    i64("tag_column", &TrainOptions::tag_column);
    t.emplace_back("header", [](TrainArgs& a, py::handle v, const std::string& n) {
      const int64_t h = as<int64_t>(v, n, "1, 0 or -1");
      if (h < -1 || h > 1) throw Error(n + ": got " + std::to_string(h) + ", expected 1 (header), 0 (none) or -1 (guess)");
      a.o.header = h;
    });
    return t;
  }();
  return table;
}

// The defaults recur.train starts from: the CLI's (cmd_train.cpp: adam, lr 0 = the optimizer's
// default; everything else TrainOptions' own).
TrainArgs default_args() {
  TrainArgs a;
  a.o.optimizer.type = OptimizerType::adam;
  a.o.optimizer.lr = 0;
  return a;
}

py::dict log_dict(const TrainLog& l) {
  py::dict d;
  d["type"] = l.type;
  d["step"] = l.step;
  d["epoch"] = l.epoch;
  d["loss"] = l.loss;
  d["ppl"] = l.ppl;
  d["bpc"] = l.bpc;
  if (!l.metric_name.empty()) d[py::str(l.metric_name)] = l.metric;
  d["grad_norm"] = l.grad_norm;
  d["clip_rate"] = l.clip_rate;
  d["tokens_per_s"] = l.tokens_per_s;
  d["examples_per_s"] = l.examples_per_s;
  d["lr"] = l.lr;
  d["elapsed_s"] = l.elapsed_s;
  d["eta_s"] = l.eta_s;
  d["line"] = format_train_log(l);
  return d;
}

py::dict run_train(const py::object& data, const std::string& out, const py::object& on_progress, const py::object& on_log,
               const py::object& on_note, const py::kwargs& options) {
  TrainArgs a = default_args();
  a.o.out_dir = out;
  a.o.given.insert("--out");
  const auto& table = option_table();
  for (const auto& item : options) {
    const std::string name = py::str(item.first);
    auto it = std::find_if(table.begin(), table.end(), [&](const auto& e) { return e.first == name; });
    if (it == table.end()) {
      if (name == "encoding" || name == "transpose" || name == "keep_drums" || name == "channels" ||
          name == "jsb_steps_per_quarter")
        throw Error(name + ": a --task music option; music training is the CLI's (recur train --task music)");
      throw py::type_error("train() got an unexpected keyword argument '" + name + "' (recur.train_options() lists them)");
    }
    it->second(a, item.second, name);
    // As the CLI's given flags (cmd_train.cpp to_options): a flag is given when it is on the
    // command line, and a boolean flag can only be given as on.
    if (!py::isinstance<py::bool_>(item.second) || item.second.cast<bool>()) {
      std::string flag = "--" + name;
      std::replace(flag.begin(), flag.end(), '_', '-');
      a.o.given.insert(flag);
    }
  }
  TrainOptions& o = a.o;
  const std::string data_path = as<std::string>(data, "data", "a path (str or os.PathLike)");
  if (a.resume_last) {
    o.resume_path = (std::filesystem::path(o.out_dir) / "last.safetensors").string();
    if (!std::filesystem::exists(o.resume_path))
      throw Error(o.out_dir + ": no last.safetensors to resume from; start a fresh run without resume");
  }
  if (a.diagnostics > 0) o.diagnostics_every = a.diagnostics;
  // A resumed run takes its settings (the task too) from the checkpoint; options given again override.
  if (!o.resume_path.empty()) o = resume_options(o);
  if (o.task == "music")
    throw Error("--task music: not available from Python; train music models with recur train --task music "
                "(docs/music.md), then use them with the CLI");
  o.data_path = data_path;
  set_num_threads(a.threads);
  set_deterministic(a.deterministic);
  if (a.plots) require_gnuplot("plots");

  // Callbacks run with the GIL; the first exception (a callback's, or KeyboardInterrupt from
  // PyErr_CheckSignals on the waiting thread) is kept, stops the loop at the end of its step and
  // is raised after the checkpoint is written.
  std::atomic<bool> stop{false};
  std::optional<py::error_already_set> pending;
  auto guarded = [&](const std::function<void()>& f) {
    py::gil_scoped_acquire gil;
    if (pending) return;
    try {
      f();
    } catch (py::error_already_set& e) {
      pending.emplace(std::move(e));
      stop.store(true);
    }
  };
  TrainObserver obs;
  obs.on_progress = [&](const TrainLog& l) {
    guarded([&] {
      if (!on_progress.is_none()) on_progress(log_dict(l));
    });
  };
  if (!on_log.is_none()) obs.on_log = [&](const TrainLog& l) { guarded([&] { on_log(log_dict(l)); }); };
  if (!on_note.is_none()) obs.on_note = [&](const std::string& s) { guarded([&] { on_note(s); }); };

  TrainResult r;
  std::exception_ptr failed;
  {
    py::gil_scoped_release nogil;
    std::promise<void> done;
    std::future<void> finished = done.get_future();
    std::thread run([&] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);  // its OpenMP workers inherit the mask
      try {
        r = train_run(o, obs, &stop);
      } catch (...) {
        failed = std::current_exception();
      }
      done.set_value();
    });
    while (finished.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
      py::gil_scoped_acquire gil;
      if (!pending && PyErr_CheckSignals() != 0) {
        pending.emplace();  // takes the KeyboardInterrupt Python has set
        stop.store(true);
      }
    }
    run.join();
  }
  if (pending) throw std::move(*pending);
  if (failed) std::rethrow_exception(failed);
  if (r.nothing_to_do && obs.on_note) obs.on_note(nothing_to_do_message(o, r));
  py::dict d;
  d["step"] = r.step;
  d["epoch"] = r.epoch;
  d["out_of_time"] = r.out_of_time;
  d["nothing_to_do"] = r.nothing_to_do;
  d["early_stopped"] = r.early_stopped;
  d["best_valid_loss"] = r.best_valid_loss;
  d["best_metric"] = r.best_metric;
  d["metric_name"] = r.metric_name;
  d["last_path"] = r.last_path;
  d["best_path"] = r.best_path.empty() ? py::object(py::none()) : py::object(py::str(r.best_path));
  if (a.plots) d["plots"] = plot_run(o.out_dir, o.out_dir);
  return d;
}

}  // namespace

void register_train(py::module_& m) {
  m.def("_train", &run_train, py::arg("data"), py::kw_only(), py::arg("out"), py::arg("on_progress") = py::none(),
        py::arg("on_log") = py::none(), py::arg("on_note") = py::none(),
        "The compiled recur.train; call recur.train (python/recur/__init__.py documents the options).");
  m.def(
      "train_options",
      [] {
        std::vector<std::string> names;
        for (const auto& e : option_table()) names.push_back(e.first);
        return names;
      },
      "train_options() -> list of str\n\nEvery option recur.train takes besides data, out and the callbacks: the CLI's `recur train`\n"
      "flags in snake_case (--seq-len is seq_len).");
}

}  // namespace recur::python
