// The linear-chain CRF (model/crf.h) and the tag schemes (tasks/tag_scheme.h): PyTorch goldens
// (tools/gen_crf_golden.py), brute-force enumeration of every path for tiny T and C, finite
// differences in double, constraints giving forbidden paths zero probability, scheme round trips,
// and a CRF tagger trained, saved and used through the CLI.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_run.h"
#include "recur/core/error.h"
#include "recur/core/random.h"
#include "recur/model/crf.h"
#include "recur/model/model.h"
#include "recur/tasks/metrics.h"
#include "recur/tasks/tag_scheme.h"
#include "recur/tasks/tasks.h"

namespace recur {
namespace {

nlohmann::json read_golden(const std::string& name) {
  const std::string path = std::string(RECUR_GOLDEN_DIR) + "/crf/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

Tensor<double> tensor_of(const nlohmann::json& j, const char* key, Shape shape) {
  Tensor<double> t(shape);
  t.data = j.at(key).get<std::vector<double>>();
  EXPECT_EQ(int64_t(t.data.size()), shape_numel(shape)) << key;
  return t;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << "[" << i << "]";
}

void check_golden(const std::string& name) {
  const nlohmann::json g = read_golden(name);
  const int64_t T = g.at("T"), B = g.at("B"), C = g.at("C");
  const Tensor<double> em = tensor_of(g, "emissions", {T, B, C});
  const Tensor<double> tr = tensor_of(g, "transitions", {C, C});
  const Tensor<double> se = tensor_of(g, "start_end", {2, C});
  const auto lengths = g.at("lengths").get<std::vector<int64_t>>();
  const auto tags = g.at("tags").get<std::vector<int32_t>>();
  CrfConstraints k;
  if (g.contains("allowed_transitions")) {
    k.transitions = g.at("allowed_transitions").get<std::vector<uint8_t>>();
    k.start = g.at("allowed_start").get<std::vector<uint8_t>>();
    k.end = g.at("allowed_end").get<std::vector<uint8_t>>();
  }
  Tensor<double> ge, gt({C, C}), gs({2, C});
  const LossSum l = crf_nll<double>(em, lengths, tags, {tr, se}, k, {&ge, &gt, &gs}, g.at("grad_scale").get<double>());
  EXPECT_NEAR(l.sum, g.at("sum").get<double>(), 1e-10 * std::abs(g.at("sum").get<double>()));
  EXPECT_EQ(l.count, g.at("count").get<int64_t>());
  expect_near_all(ge.data, g.at("grad_emissions").get<std::vector<double>>(), 1e-10, "grad_emissions");
  expect_near_all(gt.data, g.at("grad_transitions").get<std::vector<double>>(), 1e-10, "grad_transitions");
  expect_near_all(gs.data, g.at("grad_start_end").get<std::vector<double>>(), 1e-10, "grad_start_end");
  const auto paths = crf_viterbi<double>(em, lengths, {tr, se}, k);
  EXPECT_EQ(paths, (g.at("viterbi").get<std::vector<std::vector<int32_t>>>()));
  // float agrees with double within float's precision
  Tensor<float> emf(em.shape), trf(tr.shape), sef(se.shape);
  for (size_t i = 0; i < em.data.size(); ++i) emf.data[i] = float(em.data[i]);
  for (size_t i = 0; i < tr.data.size(); ++i) trf.data[i] = float(tr.data[i]);
  for (size_t i = 0; i < se.data.size(); ++i) sef.data[i] = float(se.data[i]);
  const LossSum lf = crf_nll<float>(emf, lengths, tags, {trf, sef}, k, {}, 1.0);
  EXPECT_NEAR(lf.sum, l.sum, 1e-4 * std::abs(l.sum));
}

TEST(CrfGolden, FreeMatchesPyTorch) { check_golden("free.json"); }
TEST(CrfGolden, ConstrainedMatchesPyTorch) { check_golden("constrained.json"); }

// Random scores for a sentence of L steps and C tags (one batch column).
struct Tiny {
  Tensor<double> em, tr, se;
};
Tiny random_tiny(int64_t L, int64_t C, uint64_t seed) {
  Rng rng(seed);
  Tiny t{Tensor<double>({L, 1, C}), Tensor<double>({C, C}), Tensor<double>({2, C})};
  for (auto* x : {&t.em, &t.tr, &t.se})
    for (double& v : x->data) v = rng.uniform(-2, 2);
  return t;
}

// Every path of length L over C tags, in order.
void for_each_path(int64_t L, int64_t C, const std::function<void(const std::vector<int32_t>&)>& f) {
  std::vector<int32_t> y(size_t(L), 0);
  while (true) {
    f(y);
    int64_t i = L - 1;
    while (i >= 0 && y[size_t(i)] == C - 1) y[size_t(i--)] = 0;
    if (i < 0) return;
    ++y[size_t(i)];
  }
}

double path_score(const Tiny& t, const std::vector<int32_t>& y, const CrfConstraints& k) {
  const int64_t C = t.tr.dim(0), L = int64_t(y.size());
  auto allowed = [&](const std::vector<uint8_t>& v, size_t i) { return v.empty() || v[i]; };
  if (!allowed(k.start, size_t(y[0])) || !allowed(k.end, size_t(y.back()))) return -std::numeric_limits<double>::infinity();
  double s = t.se.data[size_t(y[0])] + t.se.data[size_t(C + y.back())];
  for (int64_t i = 0; i < L; ++i) s += t.em.data[size_t(i * C + y[size_t(i)])];
  for (int64_t i = 1; i < L; ++i) {
    const size_t c = size_t(y[size_t(i - 1)] * C + y[size_t(i)]);
    if (!allowed(k.transitions, c)) return -std::numeric_limits<double>::infinity();
    s += t.tr.data[c];
  }
  return s;
}

// BIO constraints over O, B-A, I-A.
CrfConstraints bio3() { return tag_scheme_constraints({"O", "B-A", "I-A"}, TagScheme::bio); }

TEST(CrfBruteForce, PartitionViterbiAndLossMatchEnumeration) {
  for (const bool constrained : {false, true}) {
    const CrfConstraints k = constrained ? bio3() : CrfConstraints{};
    for (int64_t L : {1, 2, 4}) {
      const int64_t C = 3;
      const Tiny t = random_tiny(L, C, 7 + uint64_t(L));
      double z = 0, best = -std::numeric_limits<double>::infinity();
      std::vector<int32_t> arg;
      for_each_path(L, C, [&](const std::vector<int32_t>& y) {
        const double s = path_score(t, y, k);
        z += std::exp(s);
        if (s > best) best = s, arg = y;
      });
      Tensor<double> e2({L, C});
      e2.data = t.em.data;
      EXPECT_NEAR(crf_log_partition<double>(e2, {t.tr, t.se}, k), std::log(z), 1e-12) << L << constrained;
      const std::vector<int64_t> len = {L};
      EXPECT_EQ(crf_viterbi<double>(t.em, len, {t.tr, t.se}, k)[0], arg);
      const LossSum l = crf_nll<double>(t.em, len, arg, {t.tr, t.se}, k, {}, 1.0);
      EXPECT_NEAR(l.sum, std::log(z) - best, 1e-12);
      EXPECT_EQ(l.count, L);
    }
  }
}

TEST(CrfConstraints, ForbiddenPathsHaveZeroProbabilityAndAreNeverDecoded) {
  const Tiny t = random_tiny(4, 3, 3);
  const CrfConstraints k = bio3();
  // Probabilities of the allowed paths sum to one; O -> I-A and a start with I-A never occur.
  double total = 0;
  Tensor<double> e2({4, 3});
  e2.data = t.em.data;
  const double lz = crf_log_partition<double>(e2, {t.tr, t.se}, k);
  for_each_path(4, 3, [&](const std::vector<int32_t>& y) { total += std::exp(path_score(t, y, k) - lz); });
  EXPECT_NEAR(total, 1.0, 1e-12);
  // Even when I-A has by far the best emissions, the decoded path is allowed.
  Tiny big = t;
  for (int64_t s = 0; s < 4; ++s) big.em.data[size_t(s * 3 + 2)] = 50;
  const std::vector<int64_t> len = {4};
  const auto y = crf_viterbi<double>(big.em, len, {big.tr, big.se}, k)[0];
  EXPECT_NE(y[0], 2);
  for (size_t s = 1; s < y.size(); ++s) EXPECT_FALSE(y[s - 1] == 0 && y[s] == 2);
  // A forbidden gold path is refused by name, not scored as an infinite loss.
  const std::vector<int32_t> bad = {0, 2, 2, 0};
  EXPECT_THROW(crf_nll<double>(t.em, len, bad, {t.tr, t.se}, k, {}, 1.0), Error);
}

TEST(CrfGradient, FiniteDifferencesInDouble) {
  const int64_t T = 4, B = 2, C = 3;
  Rng rng(11);
  Tensor<double> em({T, B, C}), tr({C, C}), se({2, C});
  for (auto* x : {&em, &tr, &se})
    for (double& v : x->data) v = rng.uniform(-1.5, 1.5);
  const std::vector<int64_t> len = {4, 3};
  const std::vector<int32_t> tags = {0, 1, 1, 2, 2, 2, 0, -1};  // [T*B], BIO-valid for bio3
  for (const bool constrained : {false, true}) {
    const CrfConstraints k = constrained ? bio3() : CrfConstraints{};
    const double scale = 0.5;
    Tensor<double> ge, gt({C, C}), gs({2, C});
    crf_nll<double>(em, len, tags, {tr, se}, k, {&ge, &gt, &gs}, scale);
    auto loss = [&] { return scale * crf_nll<double>(em, len, tags, {tr, se}, k, {}, 1.0).sum; };
    const double h = 1e-6;
    for (auto [x, g] : {std::pair{&em, &ge}, std::pair{&tr, &gt}, std::pair{&se, &gs}})
      for (size_t i = 0; i < x->data.size(); ++i) {
        const double v = x->data[i];
        x->data[i] = v + h;
        const double up = loss();
        x->data[i] = v - h;
        const double down = loss();
        x->data[i] = v;
        EXPECT_NEAR(g->data[i], (up - down) / (2 * h), 1e-7) << i << " constrained " << constrained;
      }
    // Padding beyond a sentence's length gets no gradient.
    for (int64_t j = 0; j < C; ++j) EXPECT_EQ(ge.data[size_t((3 * B + 1) * C + j)], 0.0);
  }
}

TEST(CrfErrors, ShapesAndTags) {
  Tensor<double> em({2, 1, 3}), tr({3, 3}), se({2, 3}), bad_tr({3, 2});
  const std::vector<int64_t> len = {2}, long_len = {3};
  EXPECT_THROW(crf_nll<double>(em, len, std::vector<int32_t>{0, 3}, {tr, se}, {}, {}, 1.0), Error);
  EXPECT_THROW(crf_nll<double>(em, long_len, std::vector<int32_t>{0, 1}, {tr, se}, {}, {}, 1.0), ShapeError);
  EXPECT_THROW(crf_viterbi<double>(em, len, {bad_tr, se}, {}), ShapeError);
}

// ---------------------------------------------------------------- tag schemes

using Tags = std::vector<std::string>;

TEST(TagScheme, ConvertsBetweenSchemesAndBack) {
  const Tags iob1 = {"I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "O", "I-MISC"};
  const Tags bio = {"B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "O", "B-MISC"};
  const Tags bioes = {"B-PER", "E-PER", "S-PER", "O", "S-LOC", "B-ORG", "E-ORG", "O", "S-MISC"};
  const std::vector<std::pair<TagScheme, Tags>> all = {{TagScheme::iob1, iob1}, {TagScheme::bio, bio}, {TagScheme::bioes, bioes}};
  for (const auto& [from, a] : all)
    for (const auto& [to, b] : all) EXPECT_EQ(convert_tags(a, from, to), b) << tag_scheme_name(from) << "->" << tag_scheme_name(to);
  // Three-token chunks keep I- inside in BIOES.
  EXPECT_EQ(convert_tags({"I-X", "I-X", "I-X"}, TagScheme::iob1, TagScheme::bioes), (Tags{"B-X", "I-X", "E-X"}));
  // Ill-formed BIO comes out as the chunks conlleval reads.
  EXPECT_EQ(convert_tags({"O", "I-X", "I-X"}, TagScheme::bio, TagScheme::bio), (Tags{"O", "B-X", "I-X"}));
  // Not chunk tags: left alone.
  EXPECT_EQ(convert_tags({"NN", "VB"}, TagScheme::none, TagScheme::bioes), (Tags{"NN", "VB"}));
}

TEST(TagScheme, DetectsTheFilesScheme) {
  EXPECT_EQ(detect_tag_scheme({{"O", "I-PER", "I-PER"}, {"O"}}), TagScheme::iob1);
  EXPECT_EQ(detect_tag_scheme({{"B-PER", "I-PER", "O", "B-LOC"}}), TagScheme::bio);
  EXPECT_EQ(detect_tag_scheme({{"B-PER", "E-PER", "S-LOC"}}), TagScheme::bioes);
  EXPECT_EQ(detect_tag_scheme({{"NN", "VBZ"}}), TagScheme::none);
  EXPECT_EQ(parse_tag_scheme("bioes"), TagScheme::bioes);
  EXPECT_THROW(parse_tag_scheme("iobes2"), Error);
}

// Every converted sentence is allowed by its scheme's constraints, and the constraints forbid
// the textbook ill-formed transitions.
TEST(TagScheme, ConstraintsAllowConvertedTagsAndForbidIllFormedOnes) {
  const Tags iob1 = {"I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "O", "I-MISC"};
  for (TagScheme s : {TagScheme::iob1, TagScheme::bio, TagScheme::bioes}) {
    const Tags t = convert_tags(iob1, TagScheme::iob1, s);
    std::vector<std::string> labels = {"O"};
    for (const char* p : {"B-", "I-", "E-", "S-"})
      for (const char* ty : {"PER", "LOC", "ORG", "MISC"}) labels.push_back(std::string(p) + ty);
    const CrfConstraints k = tag_scheme_constraints(labels, s);
    auto id = [&](const std::string& x) { return size_t(std::find(labels.begin(), labels.end(), x) - labels.begin()); };
    const size_t C = labels.size();
    EXPECT_TRUE(k.start[id(t.front())]) << tag_scheme_name(s);
    EXPECT_TRUE(k.end[id(t.back())]) << tag_scheme_name(s);
    for (size_t i = 1; i < t.size(); ++i) EXPECT_TRUE(k.transitions[id(t[i - 1]) * C + id(t[i])]) << t[i - 1] << " " << t[i];
    auto ok = [&](const char* a, const char* b) { return bool(k.transitions[id(a) * C + id(b)]); };
    if (s == TagScheme::bio) {
      EXPECT_FALSE(ok("O", "I-PER"));
      EXPECT_FALSE(ok("B-LOC", "I-PER"));
      EXPECT_FALSE(k.start[id("I-PER")]);
    }
    if (s == TagScheme::iob1) {
      EXPECT_FALSE(ok("O", "B-PER"));
      EXPECT_TRUE(ok("I-PER", "B-PER"));
      EXPECT_FALSE(k.start[id("B-PER")]);
    }
    if (s == TagScheme::bioes) {
      EXPECT_FALSE(ok("B-PER", "O"));
      EXPECT_FALSE(ok("O", "E-PER"));
      EXPECT_FALSE(ok("I-PER", "E-LOC"));
      EXPECT_FALSE(ok("S-PER", "I-PER"));
      EXPECT_TRUE(ok("E-PER", "B-PER"));
      EXPECT_FALSE(k.end[id("B-PER")]);
      EXPECT_FALSE(k.start[id("E-PER")]);
    }
  }
}

// ---------------------------------------------------------------- model graph and CLI

TEST(CrfModel, LayerRoundTripsThroughJsonAndCountsItsParameters) {
  ModelSpec s;
  s.tokens("words", 10);
  s.embedding("emb", "words", 4);
  s.linear("out", "emb", 5);
  s.crf("crf", "out");
  const ModelSpec back = model_spec_from_json(model_spec_to_json(s), "test");
  ASSERT_EQ(back.layers.size(), 3u);
  EXPECT_EQ(back.layers[2].kind, LayerKind::crf);
  EXPECT_EQ(back.layers[2].size, 5);
  Rng rng(1);
  const auto p = model_init_params<float>(back, rng);
  std::vector<std::string> names;
  model_for_each_param(back, p, [&](const std::string& n, const Tensor<float>& t, bool) {
    names.push_back(n);
    if (n == "crf.transitions") {
      EXPECT_EQ(t.shape, (Shape{5, 5}));
    }
    if (n == "crf.start_end") {
      EXPECT_EQ(t.shape, (Shape{2, 5}));
    }
  });
  EXPECT_NE(std::find(names.begin(), names.end(), "crf.transitions"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "crf.start_end"), names.end());
  EXPECT_EQ(model_param_count(back), 10 * 4 + 5 * 4 + 5 + 5 * 5 + 2 * 5);
  // A crf must sit on a layer's sequence of the same width.
  ModelSpec bad = s;
  bad.layers[2].size = 4;
  EXPECT_THROW(bad.validate(), Error);
}

TEST(CrfCli, TrainsSavesAndTagsInTheFilesScheme) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(testing::TempDir()) / "crf_cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // IOB1 data (the first tag of a chunk is I-, B- only between same-type chunks).
  std::ofstream f(dir / "train.txt");
  for (int i = 0; i < 30; ++i)
    f << "John I-PER\nSmith I-PER\nvisited O\nParis I-LOC\n.\tO\n\nMary I-PER\nlives O\nin O\nRome I-LOC\n\n";
  f.close();
  using test::run_recur;
  const std::string data = "'" + (dir / "train.txt").string() + "'";
  const std::string run = "'" + (dir / "run").string() + "'", model = "'" + (dir / "run" / "last.safetensors").string() + "'";
  auto r = run_recur("train " + data + " --task tag --crf --out " + run + " --epochs 6 --hidden 16 --embed 8 --lr 0.05 --valid-fraction 0",
                     dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("crf(crf"), std::string::npos) << r.err;
  r = run_recur("tag " + model + " " + data + " --json", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  // Output is IOB1, as the file: no B-/E-/S- tags from the BIOES training labels.
  EXPECT_EQ(r.out.find("\"S-"), std::string::npos) << r.out.substr(0, 400);
  EXPECT_EQ(r.out.find("\"E-"), std::string::npos);
  EXPECT_NE(r.out.find("I-PER"), std::string::npos);
  r = run_recur("eval " + model + " " + data, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  // The saved model records its CRF and schemes, so a reload decodes the same way.
  const TaskCheckpoint ck = load_task_checkpoint((dir / "run" / "last.safetensors").string());
  EXPECT_TRUE(ck.model.task.crf);
  EXPECT_EQ(ck.model.task.file_scheme, TagScheme::iob1);
  EXPECT_EQ(ck.model.task.train_scheme, TagScheme::bioes);
  EXPECT_GE(ck.model.spec.layer_index("crf"), 0);
  // --crf belongs to taggers only, and the scheme must be a known one.
  r = run_recur("train " + data + " --task classify --crf --out " + run + "2", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--crf"), std::string::npos) << r.err;
  r = run_recur("train " + data + " --task tag --tag-scheme iobes9 --out " + run + "3", dir);
  EXPECT_NE(r.rc, 0);
}

}  // namespace
}  // namespace recur
