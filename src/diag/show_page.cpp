// The activation page of `recur show` (show_page.h): the model's pass over the text, the values
// and predictions the page shows, and the page itself (inline CSS, script and data).
#include "recur/diag/show_page.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "recur/core/error.h"
#include "recur/data/text_data.h"
#include "recur/data/utf8.h"
#include "recur/diag/diagnostics.h"
#include "recur/model/lm.h"
#include "recur/core/file_io.h"

namespace recur {

namespace {

using json = nlohmann::json;

constexpr const char* kPageHead = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>recur show</title>
<style>
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;background:#fafafa;color:#222}
header{background:#fff;border-bottom:1px solid #ddd;padding:10px 18px;position:sticky;top:0;z-index:2}
h1{font-size:17px;margin:0 0 4px 0}
.meta{font-size:12px;color:#666}
.controls{margin-top:8px;display:flex;gap:10px;align-items:center;flex-wrap:wrap;font-size:13px}
.controls input[type=range]{width:260px}
button{font-size:13px;padding:2px 9px}
.legend{display:flex;align-items:center;gap:6px;font-size:12px;color:#555}
.bar{width:160px;height:12px;border:1px solid #ccc}
#text{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:15px;line-height:1.75;white-space:pre-wrap;
  padding:16px 18px;background:#fff;margin:14px 18px;border:1px solid #e3e3e3;border-radius:4px}
.tok{border-radius:2px;cursor:default}
.tok:hover{outline:1px solid #333}
.nl{color:#999}
#tip{position:fixed;display:none;background:#fff;border:1px solid #999;border-radius:4px;padding:8px 10px;
  font-size:12px;box-shadow:0 2px 8px rgba(0,0,0,.2);z-index:3;min-width:190px;pointer-events:none}
#tip table{border-collapse:collapse;margin-top:4px}
#tip td{padding:1px 4px;font-family:"DejaVu Sans Mono",monospace}
#tip .p{color:#555;text-align:right}
#tip .pb{height:8px;background:#4393c3;display:inline-block}
#status{font-size:11px;color:#888;margin:0 18px 12px 18px}
#script-error{background:#fdd;color:#900;padding:8px 18px;font-family:monospace}
</style></head><body>
<header>
<h1 id="title">recur show</h1>
<div class="meta" id="meta"></div>
<div class="controls">
  <label for="unit">unit</label><select id="unit"></select>
  <button id="prev" title="previous unit (left arrow)">&#9664;</button>
  <input type="range" id="slider" min="0" value="0" aria-label="unit">
  <button id="next" title="next unit (right arrow)">&#9654;</button>
  <span class="legend"><span id="lo"></span><span class="bar" id="bar"></span><span id="hi"></span></span>
</div>
</header>
<div id="text"></div>
<div id="status"></div>
<div id="tip"></div>
<script>
window.onerror = function (msg, src, line) {
  var e = document.getElementById('script-error');
  if (!e) { e = document.createElement('div'); e.id = 'script-error'; document.body.insertBefore(e, document.body.firstChild); }
  e.textContent = 'script error: ' + msg + ' (line ' + line + ')';
};
</script>
<script type="application/json" id="recur-data">)HTML";

constexpr const char* kPageTail = R"HTML(</script>
<script>
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('recur-data').textContent);
  var units = D.values.length, n = D.tokens.length;
  var text = document.getElementById('text'), tip = document.getElementById('tip');
  var select = document.getElementById('unit'), slider = document.getElementById('slider');
  document.getElementById('title').textContent = 'recur show: ' + D.quantity;
  document.getElementById('meta').textContent = D.model + ' | ' + D.source + ' | ' + n + ' tokens, ' + units + ' units';
  var signed = D.lo < 0;
  var POS = [214, 96, 77], NEG = [67, 147, 195], ONE = [26, 152, 80];
  function mix(c, t) {
    return 'rgb(' + Math.round(255 + (c[0] - 255) * t) + ',' + Math.round(255 + (c[1] - 255) * t) + ',' +
           Math.round(255 + (c[2] - 255) * t) + ')';
  }
  function colour(v) {
    if (signed) {
      var m = Math.max(Math.abs(D.lo), Math.abs(D.hi)) || 1, x = Math.max(-1, Math.min(1, v / m));
      return x >= 0 ? mix(POS, x) : mix(NEG, -x);
    }
    var t = D.hi > D.lo ? (v - D.lo) / (D.hi - D.lo) : 0;
    return mix(ONE, Math.max(0, Math.min(1, t)));
  }
  document.getElementById('lo').textContent = D.lo.toFixed(2);
  document.getElementById('hi').textContent = D.hi.toFixed(2);
  document.getElementById('bar').style.background = signed
      ? 'linear-gradient(to right,' + mix(NEG, 1) + ',#fff,' + mix(POS, 1) + ')'
      : 'linear-gradient(to right,#fff,' + mix(ONE, 1) + ')';
  function shown(t) { return t === '\n' ? '\\n' : t === ' ' ? '\u2423' : t === '\t' ? '\\t' : t; }

  var spans = [];
  for (var i = 0; i < n; ++i) {
    var tok = D.tokens[i], s = document.createElement('span');
    s.className = 'tok';
    s.dataset.i = i;
    if (tok === '\n') {
      s.textContent = '\u21b5';
      s.classList.add('nl');
      text.appendChild(s);
      text.appendChild(document.createTextNode('\n'));
    } else {
      s.textContent = tok;
      text.appendChild(s);
      if (D.words) text.appendChild(document.createTextNode(' '));
    }
    spans.push(s);
  }
  for (var u = 0; u < units; ++u) {
    var o = document.createElement('option');
    o.value = u;
    o.textContent = u + (u === D.best_unit ? ' (most variable)' : '');
    select.appendChild(o);
  }
  slider.max = units - 1;

  var unit = 0;
  function render(u) {
    unit = Math.max(0, Math.min(units - 1, u | 0));
    select.value = unit;
    slider.value = unit;
    var vals = D.values[unit], h = 5381;
    for (var i = 0; i < n; ++i) {
      var c = colour(vals[i] / D.scale);
      spans[i].style.background = c;
      for (var k = 0; k < c.length; ++k) h = ((h * 33) ^ c.charCodeAt(k)) >>> 0;
    }
    document.getElementById('status').textContent = 'unit=' + unit + ' signature=' + h.toString(16);
  }
  function from_hash() {
    var m = /unit=(\d+)/.exec(location.hash);
    return m ? parseInt(m[1], 10) : D.best_unit;
  }
  select.addEventListener('change', function () { render(+select.value); });
  slider.addEventListener('input', function () { render(+slider.value); });
  document.getElementById('prev').addEventListener('click', function () { render(unit - 1); });
  document.getElementById('next').addEventListener('click', function () { render(unit + 1); });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'ArrowLeft') render(unit - 1);
    else if (e.key === 'ArrowRight') render(unit + 1);
  });
  window.addEventListener('hashchange', function () { render(from_hash()); });

  text.addEventListener('mouseover', function (e) {
    var s = e.target.closest ? e.target.closest('.tok') : null;
    if (!s) return;
    var i = +s.dataset.i, rows = '';
    D.preds[i].forEach(function (p) {
      rows += '<tr><td>' + esc(shown(p[0])) + '</td><td class="p">' + (100 * p[1]).toFixed(1) + '%</td>' +
              '<td><span class="pb" style="width:' + Math.max(1, Math.round(80 * p[1])) + 'px"></span></td></tr>';
    });
    tip.innerHTML = '<b>' + esc(shown(D.tokens[i])) + '</b> &nbsp; ' + esc(D.symbol) + '[' + unit + '] = ' +
        (D.values[unit][i] / D.scale).toFixed(3) + '<br>next token:<table>' + rows + '</table>';
    tip.style.display = 'block';
  });
  text.addEventListener('mousemove', function (e) {
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = e.clientX - tip.offsetWidth - 10;
    if (y + tip.offsetHeight > window.innerHeight) y = e.clientY - tip.offsetHeight - 10;
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  });
  text.addEventListener('mouseout', function () { tip.style.display = 'none'; });
  function esc(t) {
    return String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  }
  render(from_hash());
  document.body.dataset.rendered = '1';
})();
</script>
</body></html>
)HTML";

// JSON inside a <script> element: "<" escaped so no "</script>" or "<!--" can appear.
std::string script_safe(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

// --layer 1..L (0 = the last) as a 0-based index.
int64_t resolve_layer(const RnnConfig& rc, int64_t layer) {
  const int64_t L = rc.num_layers;
  if (layer < 0 || layer > L)
    throw Error("--layer: got " + std::to_string(layer) + ", expected 1.." + std::to_string(L) + " (0 = the last)");
  return layer == 0 ? L - 1 : layer - 1;
}

// --gate as an index into the cell's gate order; -1 for "none" (the hidden state).
int64_t resolve_gate(const RnnConfig& rc, const std::string& gate) {
  if (gate == "none") return -1;
  const std::vector<std::string> names = gate_names(rc.cell);
  const auto it = std::find(names.begin(), names.end(), gate);
  if (it == names.end() || rc.cell == CellType::rnn_tanh || rc.cell == CellType::rnn_relu) {
    std::string list;
    for (const auto& nm : names) list += (list.empty() ? "" : ", ") + nm;
    throw Error("--gate: got " + gate + ", expected none or a gate of this " + std::string(cell_name(rc.cell)) +
                " model" + (rc.cell == CellType::lstm || rc.cell == CellType::gru ? " (" + list + ")" : " (it has none)"));
  }
  return it - names.begin();
}

// The text as the model reads a stream: lines with a line-break token between them; the text
// follows a line break (a fresh start, as `recur sample` begins).
struct ShowTokens {
  std::vector<int32_t> input;      // [n + 1] ids fed: the break, then one per shown token
  std::vector<std::string> shown;  // [n] the tokens on the page ("\n" for a line break)
  bool nl_token = false;           // the model has a "\n" token (stream chars), else <eos> breaks lines
};

ShowTokens show_tokens(const LmModel& model, const std::string& text, const ShowPageOptions& opts) {
  const Vocab& vocab = model.vocab;
  const bool words = model.spec.level == TokenLevel::words;
  ShowTokens st;
  st.nl_token = !words && model.spec.mode == TextMode::stream && vocab.contains("\n");
  const int32_t brk = st.nl_token ? vocab.id("\n") : Vocab::eos_id;
  st.input.push_back(brk);
  const std::vector<std::string_view> lines = split_lines(text);
  for (size_t li = 0; li < lines.size(); ++li) {
    for_each_token(
        model.spec.level, lines[li],
        [&](std::string_view tok) {
          st.input.push_back(vocab.id(tok));
          st.shown.emplace_back(tok);
        },
        opts.file.empty() ? "TEXT" : opts.file);
    const bool last = li + 1 == lines.size();
    if (!last || (!text.empty() && text.back() == '\n')) {
      st.input.push_back(brk);
      st.shown.emplace_back("\n");
    }
  }
  if (st.shown.empty()) throw Error("show: the text has no tokens");
  if (int64_t(st.shown.size()) > opts.max_tokens) {
    if (opts.note)
      opts.note("showing the first " + std::to_string(opts.max_tokens) + " of " + std::to_string(st.shown.size()) +
                " tokens (--max-tokens)");
    st.shown.resize(size_t(opts.max_tokens));
    st.input.resize(size_t(opts.max_tokens) + 1);
  }
  return st;
}

// values[u][i]: unit u of the shown quantity after reading shown token i (input position i + 1).
//   dc.h [T+1, B=1, R] (slot 0 the initial state), dc.gates [T, B=1, G*H]
std::vector<std::vector<float>> unit_values(const RnnConfig& rc, const DirectionCache<float>& dc, int64_t gate,
                                            int64_t n) {
  const int64_t H = rc.hidden_size, R = rc.state_size(), GH = rc.gates() * H;
  const int64_t units = gate < 0 ? R : H;
  std::vector<std::vector<float>> values(static_cast<size_t>(units), std::vector<float>(static_cast<size_t>(n)));
  for (int64_t i = 0; i < n; ++i) {
    const float* src = gate < 0 ? dc.h.ptr() + (i + 2) * R : dc.gates.ptr() + (i + 1) * GH + gate * H;
    for (int64_t u = 0; u < units; ++u) values[size_t(u)][size_t(i)] = src[u];
  }
  return values;
}

// Range of the colour scale: what the activation can reach, so colours compare across units;
// the observed range only where the activation is unbounded (ReLU, LSTM projection).
std::pair<float, float> colour_range(const RnnConfig& rc, int64_t gate, const std::vector<std::vector<float>>& values) {
  if (gate >= 0) {
    const bool tanh_gate = (rc.cell == CellType::lstm && gate == 2) || (rc.cell == CellType::gru && gate == 2);
    return {tanh_gate ? -1.f : 0.f, 1.f};
  }
  if (rc.cell != CellType::rnn_relu && rc.proj_size == 0) return {-1.f, 1.f};
  float lo = 0, hi = 0;
  for (const auto& v : values)
    for (float x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  const float m = std::max(std::abs(lo), std::abs(hi));
  return {rc.cell == CellType::rnn_relu && rc.proj_size == 0 ? 0.f : -m, m > 0 ? m : 1.f};
}

// The unit the page opens on: the one whose value varies most over the text.
int64_t most_variable_unit(const std::vector<std::vector<float>>& values) {
  int64_t best = 0;
  double best_var = -1;
  for (size_t u = 0; u < values.size(); ++u) {
    const auto& v = values[u];
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
    double var = 0;
    for (float x : v) var += (double(x) - mean) * (double(x) - mean);
    if (var > best_var) best_var = var, best = int64_t(u);
  }
  return best;
}

// preds[i]: the `top` most likely next tokens after shown token i, as [token, probability]
// pairs (probability rounded to 4 places), from the logits of input position i + 1.
//   logits [n+1, V]
json top_predictions(const LmModel& model, const Tensor<float>& logits, const ShowTokens& st, int64_t top) {
  const int64_t V = model.spec.lm.vocab_size, K = std::min<int64_t>(top, V), n = int64_t(st.shown.size());
  json preds = json::array();
  std::vector<int32_t> order(static_cast<size_t>(V));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.ptr() + (i + 1) * V;
    const float mx = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - double(mx));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&](int32_t x, int32_t y) { return row[x] > row[y]; });
    json p = json::array();
    for (int64_t k = 0; k < K; ++k) {
      const int32_t id = order[size_t(k)];
      // <eos> is the line break of a model without a "\n" token.
      const std::string tok = id == Vocab::eos_id ? (st.nl_token ? std::string(Vocab::eos_token) : std::string("\n"))
                                                   : model.vocab.token(id);
      const double prob = std::exp(double(row[id]) - double(mx)) / sum;
      p.push_back(json::array({tok, std::round(prob * 1e4) / 1e4}));
    }
    preds.push_back(std::move(p));
  }
  return preds;
}

// Values as integers in thousandths: a third of the size of printed floats.
constexpr double kValueScale = 1000;

json scaled_values(const std::vector<std::vector<float>>& values) {
  json vals = json::array();
  for (const auto& v : values) {
    json row = json::array();
    for (float x : v) row.push_back(int64_t(std::lround(double(x) * kValueScale)));
    vals.push_back(std::move(row));
  }
  return vals;
}

}  // namespace

void ShowPageOptions::validate() const {
  if (max_tokens < 1) throw Error("--max-tokens: got " + std::to_string(max_tokens) + ", expected >= 1");
  if (top < 1) throw Error("--top: got " + std::to_string(top) + ", expected >= 1");
}

ShowPageSummary write_show_page(const LmModel& model, const std::string& text, const std::string& out_path,
                                const ShowPageOptions& opts) {
  opts.validate();
  utf8_validate(text, opts.file.empty() ? "TEXT" : opts.file);
  const LmConfig& cfg = model.spec.lm;
  const RnnConfig& rc = cfg.rnn;
  const int64_t layer = resolve_layer(rc, opts.layer);
  const int64_t gate = resolve_gate(rc, opts.gate);
  const ShowTokens st = show_tokens(model, text, opts);

  // The last input token's prediction is of a token after the text: fed anyway, so every shown
  // token has its state and its prediction of what follows.
  const int64_t Tn = int64_t(st.input.size()), n = Tn - 1;
  const std::vector<int32_t> no_target(size_t(Tn), -1);
  LmBatch batch{.input = st.input, .target = no_target, .mask = {}, .lengths = {}, .steps = Tn, .batch = 1};
  RnnState<float> state;
  ModelCache<float> cache;
  const ModelSpec graph = model.graph();
  // The page shows every step's gates: the reference path keeps them in the rnn layer's cache.
  lm_forward_backward<float>(graph, model.params, batch, state, {.backend = RnnBackend::reference}, cache, nullptr, 0.0);

  const DirectionCache<float>& dc = cache.layers[size_t(graph.layer_index("rnn"))].rnn.dirs[size_t(layer)];
  const std::vector<std::vector<float>> values = unit_values(rc, dc, gate, n);
  const auto [lo, hi] = colour_range(rc, gate, values);
  ShowPageSummary summary;
  summary.tokens = n;
  summary.units = int64_t(values.size());
  summary.best_unit = most_variable_unit(values);
  const std::string symbol = gate < 0 ? "h" : gate_names(rc.cell)[size_t(gate)];
  summary.quantity = (gate < 0 ? "hidden state h of layer " : "gate " + symbol + " of layer ") + std::to_string(layer + 1);
  const json data = {{"model", lm_spec_summary(model.spec)},
                     {"source", opts.file.empty() ? std::string("text argument") : opts.file},
                     {"quantity", summary.quantity},
                     {"symbol", symbol},
                     {"words", model.spec.level == TokenLevel::words},
                     {"tokens", st.shown},
                     {"preds", top_predictions(model, model_output(graph, cache, graph.layers.back().name), st, opts.top)},
                     {"values", scaled_values(values)},
                     {"scale", kValueScale},
                     {"lo", lo},
                     {"hi", hi},
                     {"best_unit", summary.best_unit}};
  const std::string page =
      std::string(kPageHead) + script_safe(data.dump(-1, ' ', true, json::error_handler_t::replace)) + kPageTail;
  if (!out_path.empty()) write_file_atomic(out_path, page, "the page");
  summary.html = page;
  return summary;
}

}  // namespace recur
