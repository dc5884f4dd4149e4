// Skip-gram with negative sampling: see word_vectors.h.
#include "recur/tasks/word_vectors.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "recur/core/error.h"
#include "recur/core/file_io.h"
#include "recur/core/random.h"
#include "recur/data/task_data.h"
#include "recur/data/text_data.h"

namespace recur {

namespace {

template <typename T>
T sigmoid(T x) {
  return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}

// The loss of one pair and its gradients on raw rows (sgns_loss's body; training calls it with
// preallocated scratch rows): u[0] is the context's output vector, u[1..K-1] the noise words'.
template <typename T>
double sgns_rows(const T* v, const T* const* u, int64_t K, int64_t D, T* gv, T* const* gu) {
  double loss = 0;
  std::fill(gv, gv + D, T(0));
  for (int64_t k = 0; k < K; ++k) {
    T dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += u[k][d] * v[d];
    const T label = k == 0 ? T(1) : T(0);
    // d/dx of -log s(x) is s(x) - 1; of -log s(-x) is s(x).
    const T s = sigmoid(dot);
    const T g = s - label;
    loss += k == 0 ? -std::log(std::max(double(s), 1e-300)) : -std::log(std::max(1.0 - double(s), 1e-300));
    for (int64_t d = 0; d < D; ++d) {
      gv[d] += g * u[k][d];
      gu[k][d] = g * v[d];
    }
  }
  return loss;
}

}  // namespace

void WordVectorOptions::validate() const {
  auto bad = [](const char* flag, const std::string& got, const char* want) {
    throw Error(std::string(flag) + ": got " + got + ", expected " + want);
  };
  if (dim < 1 || dim > (int64_t(1) << 16)) bad("--dim", std::to_string(dim), "a size in [1, 65536]");
  if (window < 1) bad("--window", std::to_string(window), "a distance >= 1");
  if (negatives < 1) bad("--negatives", std::to_string(negatives), "a count >= 1");
  if (min_count < 1) bad("--min-count", std::to_string(min_count), "a count >= 1");
  if (epochs < 1) bad("--epochs", std::to_string(epochs), "a count >= 1");
  if (!(lr > 0) || !std::isfinite(lr)) bad("--lr", std::to_string(lr), "a rate > 0");
  if (!(subsample >= 0) || !std::isfinite(subsample)) bad("--subsample", std::to_string(subsample), "0 (off) or a threshold > 0");
}

template <typename T>
double sgns_loss(std::span<const T> v, const std::vector<std::span<const T>>& u, std::span<T> grad_v,
                 const std::vector<std::span<T>>& grad_u) {
  const int64_t D = int64_t(v.size()), K = int64_t(u.size());
  if (K < 1 || int64_t(grad_u.size()) != K || int64_t(grad_v.size()) != D)
    throw ShapeError("sgns_loss: expected a context vector and its gradients");
  std::vector<const T*> up;
  std::vector<T*> gp;
  for (int64_t k = 0; k < K; ++k) {
    if (int64_t(u[size_t(k)].size()) != D || int64_t(grad_u[size_t(k)].size()) != D)
      throw ShapeError("sgns_loss: every vector must have " + std::to_string(D) + " values");
    up.push_back(u[size_t(k)].data());
    gp.push_back(grad_u[size_t(k)].data());
  }
  return sgns_rows(v.data(), up.data(), K, D, grad_v.data(), gp.data());
}

std::vector<std::vector<std::string>> read_embedding_corpus(const std::vector<std::string>& paths,
                                                            const EmbeddingCorpusOptions& opts) {
  const bool conll = opts.conll, lowercase = opts.lowercase;
  std::vector<std::vector<std::string>> out;
  for (const std::string& path : paths) {
    const std::string text = read_input(path);
    std::vector<std::string> sent;
    for (std::string_view line : split_lines(text)) {
      if (opts.task_words && !conll) {
        std::vector<std::string> tokens = split_words(line, lowercase);  // the model's own lower-casing
        if (!tokens.empty()) out.push_back(std::move(tokens));
        continue;
      }
      std::vector<std::string> tokens;
      size_t i = 0;
      while (i < line.size()) {
        while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
        size_t j = i;
        while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
        if (j > i) {
          tokens.push_back(lowercase ? ascii_lower(line.substr(i, j - i)) : std::string(line.substr(i, j - i)));
          if (conll) break;  // the token column only
        }
        i = j;
      }
      if (!conll) {
        if (!tokens.empty()) out.push_back(std::move(tokens));
        continue;
      }
      if (tokens.empty()) {  // a blank line ends the sentence
        if (!sent.empty()) out.push_back(std::move(sent));
        sent.clear();
      } else if (tokens[0] != "-DOCSTART-" && tokens[0] != "-docstart-") {
        sent.push_back(std::move(tokens[0]));
      }
    }
    if (!sent.empty()) out.push_back(std::move(sent));
  }
  return out;
}

WordVectors train_word_vectors(const std::vector<std::vector<std::string>>& sentences, const WordVectorOptions& o) {
  o.validate();
  WordVectors out;
  // Vocabulary: counts, then the words at or above min_count, most frequent first.
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& s : sentences)
    for (const auto& w : s) ++counts[w];
  for (const auto& s : sentences) out.tokens += int64_t(s.size());
  std::vector<std::pair<std::string, int64_t>> kept;
  for (const auto& [w, c] : counts)
    if (c >= o.min_count) kept.emplace_back(w, c);
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  if (kept.empty())
    throw Error("no word occurs " + std::to_string(o.min_count) + " times or more in " + std::to_string(out.tokens) +
                " tokens; expected more text or a lower --min-count");
  const int64_t V = int64_t(kept.size()), D = o.dim, N = o.negatives;
  std::unordered_map<std::string, int32_t> id;
  int64_t total = 0;  // tokens of kept words
  for (int64_t i = 0; i < V; ++i) {
    id.emplace(kept[size_t(i)].first, int32_t(i));
    out.words.push_back(kept[size_t(i)].first);
    out.counts.push_back(kept[size_t(i)].second);
    total += kept[size_t(i)].second;
  }
  // The corpus as ids (rare words dropped, as word2vec drops them when reading).
  std::vector<std::vector<int32_t>> corpus;
  corpus.reserve(sentences.size());
  for (const auto& s : sentences) {
    std::vector<int32_t> ids;
    for (const auto& w : s)
      if (auto it = id.find(w); it != id.end()) ids.push_back(it->second);
    if (ids.size() >= 2) corpus.push_back(std::move(ids));
  }
  // Noise distribution: counts^0.75, drawn by binary search over the cumulative sums.
  std::vector<double> cum(static_cast<size_t>(V));
  double acc = 0;
  for (int64_t i = 0; i < V; ++i) cum[size_t(i)] = acc += std::pow(double(out.counts[size_t(i)]), 0.75);
  for (auto& c : cum) c /= acc;
  // Keep probabilities of subsampling.
  std::vector<double> keep(static_cast<size_t>(V), 1.0);
  if (o.subsample > 0)
    for (int64_t i = 0; i < V; ++i) {
      const double f = double(out.counts[size_t(i)]) / double(total), t = o.subsample;
      keep[size_t(i)] = std::min(1.0, (std::sqrt(f / t) + 1) * t / f);
    }

  Rng rng(o.seed);
  out.vectors = Tensor<float>({V, D});  // v
  for (auto& x : out.vectors.data) x = float(rng.uniform(-0.5, 0.5) / double(D));
  Tensor<float> outputs({V, D});        // u, zero
  std::vector<float> gv(static_cast<size_t>(D)), gu(static_cast<size_t>((N + 1) * D));
  std::vector<const float*> up(static_cast<size_t>(N + 1));
  std::vector<float*> gp(static_cast<size_t>(N + 1));
  for (int64_t k = 0; k <= N; ++k) gp[size_t(k)] = gu.data() + k * D;
  const double planned = double(o.epochs) * double(total);
  double done = 0;
  std::vector<int32_t> sent, rows(static_cast<size_t>(N + 1));  // rows: context, then noise words
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch)
    for (size_t si = 0; si < corpus.size(); ++si) {
      const auto& full = corpus[si];
      done += double(full.size());
      sent.clear();
      for (int32_t w : full)
        if (keep[size_t(w)] >= 1.0 || rng.uniform() < keep[size_t(w)]) sent.push_back(w);
      const float lr = float(o.lr * std::max(1e-4, 1.0 - done / planned));
      const int64_t L = int64_t(sent.size());
      for (int64_t c = 0; c < L; ++c) {
        const int64_t b = 1 + int64_t(rng.below(uint64_t(o.window)));
        float* v = out.vectors.ptr() + int64_t(sent[size_t(c)]) * D;
        for (int64_t j = std::max<int64_t>(0, c - b); j <= std::min<int64_t>(L - 1, c + b); ++j) {
          if (j == c) continue;
          rows[0] = sent[size_t(j)];
          for (int64_t k = 1; k <= N; ++k) {
            const int64_t r = std::upper_bound(cum.begin(), cum.end(), rng.uniform()) - cum.begin();
            rows[size_t(k)] = int32_t(std::min(r, V - 1));  // r = V only through rounding of the last sum
          }
          for (int64_t k = 0; k <= N; ++k) up[size_t(k)] = outputs.ptr() + int64_t(rows[size_t(k)]) * D;
          sgns_rows(v, up.data(), N + 1, D, gv.data(), gp.data());
          for (int64_t k = 0; k <= N; ++k) {
            float* u = outputs.ptr() + int64_t(rows[size_t(k)]) * D;
            for (int64_t d = 0; d < D; ++d) u[d] -= lr * gp[size_t(k)][d];
          }
          for (int64_t d = 0; d < D; ++d) v[d] -= lr * gv[size_t(d)];
        }
      }
      if (o.progress && (si % 1024 == 0)) o.progress(done / planned);
    }
  if (o.progress) o.progress(1.0);
  return out;
}

std::string word_vectors_text(const WordVectors& v) {
  std::string s;
  const int64_t D = v.vectors.dim(1);
  char buf[32];
  for (size_t i = 0; i < v.words.size(); ++i) {
    s += v.words[i];
    for (int64_t d = 0; d < D; ++d) {
      std::snprintf(buf, sizeof buf, " %.9g", double(v.vectors.data[i * size_t(D) + size_t(d)]));
      s += buf;
    }
    s += '\n';
  }
  return s;
}

template double sgns_loss<float>(std::span<const float>, const std::vector<std::span<const float>>&, std::span<float>,
                                 const std::vector<std::span<float>>&);
template double sgns_loss<double>(std::span<const double>, const std::vector<std::span<const double>>&,
                                  std::span<double>, const std::vector<std::span<double>>&);

}  // namespace recur
