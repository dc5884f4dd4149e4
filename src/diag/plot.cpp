// Figures through gnuplot: data as whitespace-separated columns plus one generated script,
// run once per figure for both terminals (pngcairo, svg). See plot.h.
#include "recur/diag/plot.h"

#include "recur/core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/core/error.h"
#include "json_parse.h"
#include "run_program.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

// Line colours (a colour-blind-safe palette, Okabe and Ito) by series index.
const char* kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};
const char* color(size_t i) { return kColors[i % (sizeof kColors / sizeof kColors[0])]; }

// A gnuplot single-quoted string: '' stands for one quote inside.
std::string gq(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out + "'";
}

// One value of a data column. Log axes cannot show 0 or NaN: gnuplot skips "NaN" points.
std::string col(double x, bool positive_only = false) {
  if (!std::isfinite(x) || (positive_only && !(x > 0))) return "NaN";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw Error(path + ": cannot write plot data");
}

// Renders `body` (which starts with `reset`) to out_base.png and out_base.svg.
std::vector<std::string> render(const detail::TempDir& tmp, const std::string& name, const std::string& body,
                                const std::string& out_dir, int width, int height) {
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty()) require_gnuplot("plotting");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir + ": cannot create the plot directory: " + ec.message());
  const std::string base = fs::absolute(fs::path(out_dir) / name).string();
  // gnuplot draws into temporaries next to the figures (same file system, so renaming is atomic).
  const std::string suffix = ".tmp." + std::to_string(::getpid());
  const std::string png = base + ".png", svg = base + ".svg";
  std::ostringstream s;
  s << "set encoding utf8\n";
  // The same drawing twice: only the terminal differs. Fonts are fontconfig names.
  s << "set terminal pngcairo enhanced size " << width << "," << height
    << " font 'DejaVu Sans,11' linewidth 1.2 background '#ffffff'\n"
    << "set output " << gq(png + suffix) << "\n"
    << body << "\nunset multiplot\nset output\n";
  s << "set terminal svg enhanced size " << width << "," << height
    << " font 'DejaVu Sans,11' linewidth 1.2 background '#ffffff'\n"
    << "set output " << gq(svg + suffix) << "\n"
    << body << "\nunset multiplot\nset output\n";
  const std::string script = tmp.path() + "/" + name + ".gp";
  write_file(script, s.str());
  const std::string log = tmp.path() + "/" + name + ".log";
  const int rc = detail::run_program({gnuplot, script}, tmp.path(), log);
  if (rc != 0) {
    fs::remove(png + suffix, ec);
    fs::remove(svg + suffix, ec);
    std::string last = detail::last_log_line(log);
    throw Error("gnuplot failed on the " + name + " figure" + (last.empty() ? std::string() : ": " + last));
  }
  // gnuplot writes in place and does not sync: its output is committed like any recur file.
  commit_temporary(png + suffix, png, "the figure");
  commit_temporary(svg + suffix, svg, "the figure");
  return {png, svg};
}

struct TrainRow {
  double step, loss, grad_norm, clip_rate, lr;
};
struct EvalRow {
  double step, loss;
};
struct DiagLayer {
  std::vector<double> grad_h, grad_h_last;
  double saturated = NAN, keep_mean = NAN;
};
struct DiagRow {
  double step = 0, grad_norm = NAN, grad_norm_clipped = NAN, clip_rate = NAN;
  std::vector<DiagLayer> layers;
};

double num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}
std::vector<double> nums(const nlohmann::json& j, const char* key) {
  std::vector<double> v;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return v;
  for (const auto& x : *it) v.push_back(x.is_number() ? x.get<double>() : NAN);
  return v;
}

const char* kCommon =
    "reset\n"
    "set grid lc rgb '#dddddd' lw 1\n"
    "set border lc rgb '#444444'\n"
    "set key opaque box lt 1 lc rgb '#cccccc' lw 1 samplen 2.5\n"
    "set style line 1 lw 2\n";

// ---- plot_run: the run's metrics.jsonl, then one figure each -------------------------------------

struct RunMetrics {
  std::vector<TrainRow> train;
  std::vector<EvalRow> valid, test;
  std::vector<DiagRow> diag;
  bool chars = false;  // the run logged bits per character: the loss figure gets a bpc axis
};

DiagRow diag_row(const nlohmann::json& j, double step) {
  DiagRow d;
  d.step = step;
  d.grad_norm = num(j, "grad_norm");
  d.grad_norm_clipped = num(j, "grad_norm_clipped");
  d.clip_rate = num(j, "clip_rate");
  if (j.contains("layers") && j["layers"].is_array())
    for (const auto& l : j["layers"]) {
      if (!l.is_object()) continue;
      d.layers.push_back({nums(l, "grad_h"), nums(l, "grad_h_last"), num(l, "saturated"), num(l, "keep_mean")});
    }
  return d;
}

// Lines it cannot use are skipped: a torn last line from a killed run, other line types.
RunMetrics read_run_metrics(const std::string& metrics, const std::string& run_dir) {
  std::ifstream in(metrics);
  if (!in) throw Error(metrics + ": cannot open; expected the metrics of a `recur train` run in " + run_dir);
  RunMetrics m;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j;
    try {
      j = parse_json(line, metrics, "a metrics line");
    } catch (const FormatError&) {
      continue;  // a torn last line from a killed run
    }
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) continue;
    const std::string type = j["type"].get<std::string>();
    const double step = num(j, "step");
    if (!std::isfinite(step)) continue;
    if (type == "train") {
      m.train.push_back({step, num(j, "loss"), num(j, "grad_norm"), num(j, "clip_rate"), num(j, "lr")});
      m.chars = m.chars || std::isfinite(num(j, "bpc"));
    } else if (type == "valid") {
      m.valid.push_back({step, num(j, "loss")});
    } else if (type == "test") {
      m.test.push_back({step, num(j, "loss")});
    } else if (type == "diag") {
      m.diag.push_back(diag_row(j, step));
    }
  }
  if (m.train.empty()) throw Error(metrics + ": no training lines; expected a run that logged at least one step");
  return m;
}

// train.dat (step, loss, grad norm, clip rate %, lr), valid.dat and test.dat (step, loss).
void write_run_data(const std::string& td, const RunMetrics& m) {
  std::ostringstream t, v, te;
  for (const auto& r : m.train)
    t << col(r.step) << ' ' << col(r.loss) << ' ' << col(r.grad_norm, true) << ' ' << col(100 * r.clip_rate) << ' '
      << col(r.lr, true) << '\n';
  for (const auto& r : m.valid) v << col(r.step) << ' ' << col(r.loss) << '\n';
  for (const auto& r : m.test) te << col(r.step) << ' ' << col(r.loss) << '\n';
  write_file(td + "/train.dat", t.str());
  write_file(td + "/valid.dat", v.str());
  write_file(td + "/test.dat", te.str());
}

std::string loss_script(const RunMetrics& m, const std::string& run_name) {
  std::ostringstream s;
  s << kCommon << "set title " << gq("Learning curves — " + run_name) << " noenhanced\n"
    << "set xlabel 'training step'\nset ylabel 'cross-entropy loss (nats per token)'\n"
    << "set key top right\nset mxtics\nset mytics\n";
  // Explicit ranges, so the second axis (bits per character, the unit char-rnn papers
  // report) lines up exactly with the first.
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : m.train)
    if (std::isfinite(r.loss)) lo = std::min(lo, r.loss), hi = std::max(hi, r.loss);
  for (const auto* v : {&m.valid, &m.test})
    for (const auto& r : *v)
      if (std::isfinite(r.loss)) lo = std::min(lo, r.loss), hi = std::max(hi, r.loss);
  if (std::isfinite(lo) && std::isfinite(hi)) {
    const double pad = std::max(0.04 * (hi - lo), 1e-3);
    lo = std::max(0.0, lo - pad);
    hi += pad;
    s << "set yrange [" << col(lo) << ":" << col(hi) << "]\n";
    if (m.chars)
      s << "set y2range [" << col(lo / std::log(2.0)) << ":" << col(hi / std::log(2.0)) << "]\n"
        << "set y2tics\nset my2tics\nset ytics nomirror\nset y2label 'bits per character'\n";
  }
  s << "plot 'train.dat' using 1:2 with lines lw 1.5 lc rgb '" << color(0) << "' title 'training (mean over log window)'";
  if (!m.valid.empty())
    s << ", 'valid.dat' using 1:2 with linespoints lw 2.5 pt 7 ps 0.8 lc rgb '" << color(1) << "' title 'validation'";
  if (!m.test.empty())
    s << ", 'test.dat' using 1:2 with points pt 9 ps 2 lc rgb '" << color(2) << "' title 'test (best model)'";
  s << "\n";
  return s.str();
}

// Gradient norm, clipping rate and learning rate, stacked.
std::string grad_script(const RunMetrics& m, const std::string& run_name) {
  double lr_min = INFINITY, lr_max = 0;
  for (const auto& r : m.train)
    if (r.lr > 0) lr_min = std::min(lr_min, r.lr), lr_max = std::max(lr_max, r.lr);
  std::ostringstream s;
  s << kCommon << "set multiplot layout 3,1 title " << gq("Optimisation — " + run_name)
    << " noenhanced font ',13'\n"
    << "set lmargin 12\nset rmargin 4\nset key top right\n"
    << "set title 'Global gradient norm before clipping (mean over log window)'\n"
    << "set logscale y\nset format y '10^{%L}'\nset ylabel 'L2 norm'\nset xlabel ''\n"
    << "plot 'train.dat' using 1:3 with lines lw 1.5 lc rgb '" << color(0) << "' title 'gradient norm'\n"
    << "unset logscale y\nset format y '%g'\n"
    << "set title 'Share of steps where clipping fired'\nset ylabel 'clip rate (%)'\nset yrange [0:105]\n"
    << "plot 'train.dat' using 1:4 with steps lw 1.5 lc rgb '" << color(1) << "' title 'clip rate'\n"
    << "set autoscale y\nset title 'Learning rate'\nset ylabel 'lr'\nset xlabel 'training step'\n";
  if (lr_max > 10 * lr_min) s << "set logscale y\nset format y '10^{%L}'\n";
  else s << "set yrange [0:*]\n";
  s << "plot 'train.dat' using 1:5 with steps lw 2 lc rgb '" << color(2) << "' title 'learning rate'\n";
  return s.str();
}

// The diagnostics figure shows the gradient profiles of up to three diagnostics lines (first,
// middle, last): dash types tell these snapshots apart, colours tell layers apart.
struct DiagSnapshots {
  std::vector<size_t> rows;  // indices into RunMetrics::diag, distinct
  size_t layers = 0;         // the most layers of any diagnostics line

  explicit DiagSnapshots(const std::vector<DiagRow>& diag) : rows{0, diag.size() / 2, diag.size() - 1} {
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    for (const auto& d : diag) layers = std::max(layers, d.layers.size());
  }
  // Which of first/middle/last snapshot si is: one snapshot is the last, two are first and last.
  size_t kind(size_t si) const { return rows.size() == 1 ? 2 : (rows.size() == 2 ? (si == 0 ? 0 : 2) : si); }
  int dash(size_t si) const {
    const int dashes[] = {3, 2, 1};
    return dashes[kind(si)];
  }
  std::string label(size_t si, const std::vector<DiagRow>& diag) const {
    const char* names[] = {"first", "middle", "last"};
    return std::string(names[kind(si)]) + " (step " + col(diag[rows[si]].step) + ")";
  }
};

std::string layer_name(size_t l) { return "layer " + std::to_string(l + 1); }

// distN.dat / slotN.dat per snapshot N: k, then each layer's grad_h_last[k] / grad_h[k].
void write_profile_data(const std::string& td, const std::vector<DiagRow>& diag, const DiagSnapshots& snaps) {
  for (size_t si = 0; si < snaps.rows.size(); ++si) {
    const DiagRow& d = diag[snaps.rows[si]];
    std::ostringstream dist, slot;
    size_t n = 0, m = 0;
    for (const auto& l : d.layers) n = std::max(n, l.grad_h_last.size()), m = std::max(m, l.grad_h.size());
    for (size_t k = 0; k < n; ++k) {
      dist << k;
      for (const auto& l : d.layers) dist << ' ' << col(k < l.grad_h_last.size() ? l.grad_h_last[k] : NAN, true);
      dist << '\n';
    }
    for (size_t k = 0; k < m; ++k) {
      slot << k;
      for (const auto& l : d.layers) slot << ' ' << col(k < l.grad_h.size() ? l.grad_h[k] : NAN, true);
      slot << '\n';
    }
    write_file(td + "/dist" + std::to_string(si) + ".dat", dist.str());
    write_file(td + "/slot" + std::to_string(si) + ".dat", slot.str());
  }
}

// diag.dat: step, grad norm before and after clipping, clip rate %, then per layer saturated %
// and keep-gate mean. Returns whether any layer has a keep gate (LSTM f, GRU z).
bool write_diag_data(const std::string& td, const std::vector<DiagRow>& diag, size_t L) {
  bool has_keep = false;
  std::ostringstream s;
  for (const auto& d : diag) {
    s << col(d.step) << ' ' << col(d.grad_norm, true) << ' ' << col(d.grad_norm_clipped, true) << ' '
      << col(100 * d.clip_rate);
    for (size_t l = 0; l < L; ++l) {
      const bool ok = l < d.layers.size();
      s << ' ' << col(ok ? 100 * d.layers[l].saturated : NAN) << ' ' << col(ok ? d.layers[l].keep_mean : NAN);
      has_keep = has_keep || (ok && std::isfinite(d.layers[l].keep_mean));
    }
    s << '\n';
  }
  write_file(td + "/diag.dat", s.str());
  return has_keep;
}

// One line per snapshot and layer of `file`N.dat ("dist" or "slot").
void plot_profiles(std::ostringstream& s, const std::string& file, const std::vector<DiagRow>& diag,
                   const DiagSnapshots& snaps) {
  s << "plot ";
  bool first = true;
  for (size_t si = 0; si < snaps.rows.size(); ++si)
    for (size_t l = 0; l < snaps.layers; ++l) {
      if (!first) s << ", ";
      first = false;
      s << "'" << file << si << ".dat' using 1:" << (l + 2) << " with lines lw 2 dt " << snaps.dash(si) << " lc rgb '"
        << color(l) << "' title " << gq(layer_name(l) + ", " + snaps.label(si, diag));
    }
  s << "\n";
}

// One line per layer of diag.dat, from column first_col in steps of 2.
void plot_layers(std::ostringstream& s, size_t first_col, size_t L) {
  s << "plot ";
  for (size_t l = 0; l < L; ++l)
    s << (l ? ", " : "") << "'diag.dat' using 1:" << (first_col + 2 * l) << " with linespoints lw 2 pt 7 ps 0.5 lc rgb '"
      << color(l) << "' title " << gq(layer_name(l));
  s << "\n";
}

// Six panels (five without a keep gate): decay with distance, gradient by position, gradient
// norm before/after clipping, clip rate, saturation, keep gate.
std::string diagnostics_script(const std::vector<DiagRow>& diag, const DiagSnapshots& snaps, bool has_keep,
                               const std::string& run_name) {
  std::ostringstream s;
  s << kCommon << "set multiplot layout 2,3 title "
    << gq("Inside training — " + run_name + " (" + std::to_string(diag.size()) + " diagnostics points)")
    << " noenhanced font ',13'\n"
    << "set key top right font ',9'\n";
  // (1) decay with distance
  s << "set title 'Gradient of the last step''s loss w.r.t. earlier hidden states'\n"
    << "set xlabel 'distance back from the last step of the chunk (steps)'\nset ylabel '‖∂loss_T / ∂h_{T-k}‖'\n"
    << "set logscale y\nset format y '10^{%L}'\n";
  plot_profiles(s, "dist", diag, snaps);
  // (2) total gradient across the chunk
  s << "set title 'Total loss gradient at each position of the chunk'\n"
    << "set xlabel 'state position in the chunk (0 = carried-in state)'\nset ylabel '‖∂loss / ∂h_t‖'\n"
    << "set key bottom right\n";
  plot_profiles(s, "slot", diag, snaps);
  // (3) gradient norm before and after clipping
  s << "set key top right\nset title 'Global gradient norm at the diagnostics steps'\nset xlabel 'training step'\n"
    << "set ylabel 'L2 norm'\n"
    << "plot 'diag.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.5 lc rgb '" << color(0)
    << "' title 'before clipping', 'diag.dat' using 1:3 with linespoints lw 2 dt 2 pt 6 ps 0.5 lc rgb '" << color(1)
    << "' title 'after clipping'\n";
  s << "unset logscale y\nset format y '%g'\n";
  // (4) clip rate
  s << "set title 'Clipping rate between diagnostics points'\nset ylabel 'steps clipped (%)'\nset yrange [0:105]\n"
    << "plot 'diag.dat' using 1:4 with steps lw 2 lc rgb '" << color(1) << "' title 'clip rate'\n";
  // (5) saturation
  s << "set title 'Saturated gates (σ < 0.05 or > 0.95, |tanh| > 0.95)'\nset ylabel 'share of gate values (%)'\n"
    << "set yrange [0:*]\n";
  plot_layers(s, 5, snaps.layers);
  // (6) keep gate
  if (has_keep) {
    s << "set title 'Mean forget gate (LSTM f) / update gate (GRU z)'\nset ylabel 'mean gate value'\n"
      << "set yrange [0:1]\n";
    plot_layers(s, 6, snaps.layers);
  }
  return s.str();
}

// The run directory's name for the figure titles ("runs/x/" -> "x").
std::string run_title(const std::string& run_dir) {
  const std::string name = fs::path(run_dir).lexically_normal().filename().string();
  return name.empty() ? run_dir : name;
}

}  // namespace

std::string find_gnuplot() { return detail::find_program("gnuplot"); }

void require_gnuplot(const std::string& what) {
  if (find_gnuplot().empty())
    throw Error(what + " needs gnuplot, which is not installed; install it with 'apt-get install gnuplot-nox' "
                       "(or run scripts/setup.sh)");
}

std::vector<std::string> plot_run(const std::string& run_dir, const std::string& out_dir) {
  const RunMetrics m = read_run_metrics((fs::path(run_dir) / "metrics.jsonl").string(), run_dir);
  detail::TempDir tmp("recur-plot-");
  if (!tmp.ok()) throw Error("cannot create a temporary directory for the plot data");
  const std::string run_name = run_title(run_dir);
  std::vector<std::string> written;
  auto add = [&](const std::vector<std::string>& files) { written.insert(written.end(), files.begin(), files.end()); };
  write_run_data(tmp.path(), m);
  add(render(tmp, "loss", loss_script(m, run_name), out_dir, 1000, 600));
  add(render(tmp, "grad", grad_script(m, run_name), out_dir, 1000, 900));
  if (!m.diag.empty()) {
    const DiagSnapshots snaps(m.diag);
    write_profile_data(tmp.path(), m.diag, snaps);
    const bool has_keep = write_diag_data(tmp.path(), m.diag, snaps.layers);
    add(render(tmp, "diagnostics", diagnostics_script(m.diag, snaps, has_keep, run_name), out_dir, 1600, 950));
  }
  return written;
}

std::vector<std::string> plot_gradient_experiment(const std::vector<GradientProfile>& profiles,
                                                  const GradientExperimentOptions& opts, const std::string& out_dir) {
  detail::TempDir tmp("recur-plot-");
  if (!tmp.ok()) throw Error("cannot create a temporary directory for the plot data");
  const std::vector<std::string> cells = {"rnn_tanh", "gru", "lstm"};
  const std::map<std::string, std::string> label = {{"rnn_tanh", "basic RNN (tanh)"}, {"gru", "GRU"}, {"lstm", "LSTM"}};
  auto find = [&](const std::string& cell, const std::string& variant) -> const GradientProfile* {
    for (const auto& p : profiles)
      if (p.cell == cell && p.variant == variant) return &p;
    return nullptr;
  };
  // One file per variant: k, then per cell the absolute norm and the norm relative to k = 0.
  for (const char* variant : {"default", "trained", "large", "clipped"}) {
    std::ostringstream s;
    for (int64_t k = 0; k <= opts.gap; ++k) {
      s << k;
      for (const auto& c : cells) {
        const GradientProfile* p = find(c, variant);
        const double v = p && size_t(k) < p->norm.size() ? p->norm[size_t(k)] : NAN;
        const double v0 = p && !p->norm.empty() ? p->norm[0] : NAN;
        s << ' ' << col(v, true) << ' ' << col(v0 > 0 ? v / v0 : NAN, true);
      }
      s << '\n';
    }
    write_file(tmp.path() + "/" + variant + ".dat", s.str());
  }
  char scale[32], clip[32], thr[32];
  std::snprintf(scale, sizeof scale, "%g", opts.large_scale);
  std::snprintf(clip, sizeof clip, "%g", opts.clip_norm);
  std::snprintf(thr, sizeof thr, "%g", opts.threshold);
  std::ostringstream s;
  s << kCommon << "set multiplot layout 2,2 title "
    << gq("Vanishing and exploding gradients: the answer depends on a token " + std::to_string(opts.gap) +
          " steps back (hidden " + std::to_string(opts.hidden) + ", batch " + std::to_string(opts.batch) +
          ", seed " + std::to_string(opts.seed) + ")")
    << " noenhanced font ',13'\n"
    << "set logscale y\nset format y '10^{%L}'\nset key bottom left font ',10'\n"
    << "set xlabel 'distance k back from the answer step'\nset xrange [0:" << opts.gap << "]\n";
  auto rel_panel = [&](const char* variant, const std::string& title) {
    s << "set title " << gq(title) << "\nset ylabel '‖∂L/∂h_{T-k}‖ / ‖∂L/∂h_T‖'\n"
      << "set arrow 1 from graph 0, first " << thr << " to graph 1, first " << thr
      << " nohead dt 2 lc rgb '#888888'\n"
      << "set label 1 'vanished: " << thr << "' at graph 0.99, first " << thr
      << " right offset 0,0.6 textcolor rgb '#666666' font ',9'\nplot ";
    for (size_t i = 0; i < cells.size(); ++i)
      s << (i ? ", " : "") << "'" << variant << ".dat' using 1:" << (3 + 2 * i) << " with lines lw 2.5 lc rgb '"
        << color(i) << "' title " << gq(label.at(cells[i]));
    if (std::string_view(variant) == "default" && opts.train_steps > 0)
      for (size_t i = 0; i < cells.size(); ++i)
        s << ", 'trained.dat' using 1:" << (3 + 2 * i) << " with lines lw 1.5 dt 2 lc rgb '" << color(i) << "' title "
          << gq(label.at(cells[i]) + ", after " + std::to_string(opts.train_steps) + " training steps");
    s << "\nunset arrow 1\nunset label 1\n";
  };
  char kb[32];
  std::snprintf(kb, sizeof kb, "%g", opts.keep_bias);
  rel_panel("default", std::string("(a) default initialisation (LSTM forget / GRU update gate bias ") + kb + ")");
  rel_panel("large", std::string("(b) recurrent weights ×") + scale + ": explosion");
  s << "set title " << gq(std::string("(c) ×") + scale + " init: gradient used by the update, clip-norm " + clip)
    << "\nset ylabel '‖∂L/∂h_{T-k}‖ (absolute)'\nset key top left font ',10'\nplot ";
  for (size_t i = 0; i < cells.size(); ++i) {
    s << (i ? ", " : "") << "'large.dat' using 1:" << (2 + 2 * i) << " with lines lw 1.5 dt 2 lc rgb '" << color(i)
      << "' title " << gq(label.at(cells[i]) + ", no clipping") << ", 'clipped.dat' using 1:" << (2 + 2 * i)
      << " with lines lw 2.5 lc rgb '" << color(i) << "' title " << gq(label.at(cells[i]) + ", clipped");
  }
  s << "\n";
  // (d) the summary as a table of labels on an empty plot.
  s << "unset arrow\nunset label\nunset logscale y\nset format y '%g'\nunset xlabel\nunset ylabel\nunset title\nunset key\nunset border\n"
    << "unset tics\nunset grid\nset xrange [0:1]\nset yrange [0:1]\n"
    << "set label 10 " << gq(std::string("distance at which the gradient falls below ") + thr + " of its value at the answer step")
    << " at graph 0.02, graph 0.93 font ',11'\n";
  double y = 0.82;
  s << "set label 11 'cell' at graph 0.04, graph " << y << " font 'DejaVu Sans Bold,11'\n"
    << "set label 12 'default init' at graph 0.36, graph " << y << " font 'DejaVu Sans Bold,11'\n"
    << "set label 13 " << gq(std::string("×") + scale + " init (max growth)") << " at graph 0.62, graph " << y
    << " font 'DejaVu Sans Bold,11'\n";
  int id = 20;
  auto dist = [&](const GradientProfile* p) {
    if (!p) return std::string("-");
    return p->vanish_distance < 0 ? "> " + std::to_string(opts.gap) : std::to_string(p->vanish_distance);
  };
  for (size_t i = 0; i < cells.size(); ++i) {
    y -= 0.12;
    const GradientProfile* d = find(cells[i], "default");
    const GradientProfile* lg = find(cells[i], "large");
    char growth[48] = "";
    if (lg) std::snprintf(growth, sizeof growth, " (×%.3g)", lg->max_ratio);
    s << "set label " << id << " " << gq(label.at(cells[i])) << " at graph 0.04, graph " << y << " textcolor rgb '"
      << color(i) << "' font 'DejaVu Sans Bold,11'\n";
    s << "set label " << id + 1 << " " << gq(dist(d) + " steps") << " at graph 0.36, graph " << y << "\n";
    s << "set label " << id + 2 << " " << gq(dist(lg) + " steps" + growth) << " at graph 0.62, graph " << y << "\n";
    id += 3;
  }
  s << "set label " << id << " " << gq("Clipping rescales the whole gradient of a step, so it bounds")
    << " at graph 0.02, graph 0.22 font ',10' textcolor rgb '#555555'\n";
  s << "set label " << id + 1 << " " << gq("the update without changing the shape of the decay.")
    << " at graph 0.02, graph 0.16 font ',10' textcolor rgb '#555555'\n";
  s << "plot 2 notitle\n";
  return render(tmp, "diagnose_gradients", s.str(), out_dir, 1400, 1000);
}

std::vector<std::string> plot_attention(const std::vector<AttentionPlot>& sentences, const std::string& out_dir) {
  require_gnuplot("--attention-plot");
  detail::TempDir tmp("recur-plot-");
  if (!tmp.ok()) throw Error("cannot create a temporary directory for the plot data");
  std::vector<std::string> written;
  for (size_t n = 0; n < sentences.size(); ++n) {
    const AttentionPlot& a = sentences[n];
    const size_t rows = a.output.size(), cols = a.source.size();
    if (rows == 0 || cols == 0 || a.weights.size() != rows)
      throw Error("attention plot " + std::to_string(n + 1) + ": " + std::to_string(a.weights.size()) + " rows of weights for " +
                  std::to_string(rows) + " output words; expected one row per output word");
    // One cell per line: source position, output position, weight. Drawn as filled boxes, which
    // (unlike "matrix with image") also works for a single row or column.
    std::ostringstream data;
    for (size_t j = 0; j < rows; ++j) {
      const auto& row = a.weights[j];
      if (row.size() != cols)
        throw Error("attention plot " + std::to_string(n + 1) + ": a row of " + std::to_string(row.size()) +
                    " weights for " + std::to_string(cols) + " source words");
      for (size_t i = 0; i < cols; ++i) data << i << " " << j << " " << col(double(row[i])) << "\n";
    }
    const std::string name = "attention-" + std::to_string(n + 1);
    write_file(tmp.path() + "/" + name + ".dat", data.str());
    auto tics = [](const std::vector<std::string>& words) {
      std::string t = "(";
      for (size_t i = 0; i < words.size(); ++i) t += (i ? ", " : "") + gq(words[i]) + " " + std::to_string(i);
      return t + ")";
    };
    std::ostringstream s;
    s << "reset\n"
      << "set title " << gq("attention, sentence " + std::to_string(n + 1)) << " noenhanced\n"
      << "set xlabel 'source'\nset ylabel 'output'\n"
      << "set tics scale 0\n"
      << "set x2tics rotate by 60 left noenhanced " << tics(a.source) << "\nunset xtics\n"
      << "set ytics noenhanced " << tics(a.output) << "\n"
      << "set xrange [-0.5:" << double(cols) - 0.5 << "]\nset x2range [-0.5:" << double(cols) - 0.5 << "]\n"
      << "set yrange [" << double(rows) - 0.5 << ":-0.5]\n"  // the first output word at the top
      << "set cbrange [0:1]\nset cbtics 0.25\nset cblabel 'weight'\n"
      << "set palette defined (0 '#ffffff', 0.5 '#6baed6', 1 '#08306b')\n"
      << "plot " << gq(name + ".dat")
      << " using 1:2:(0.5):(0.5):3 with boxxyerror fillstyle solid 1.0 noborder fillcolor palette notitle\n";
    const int width = int(std::clamp<size_t>(260 + 44 * cols, 460, 2400));
    const int height = int(std::clamp<size_t>(230 + 34 * rows, 340, 2400));
    const auto files = render(tmp, name, s.str(), out_dir, width, height);
    written.insert(written.end(), files.begin(), files.end());
  }
  return written;
}

}  // namespace recur
