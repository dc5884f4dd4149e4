#include "recur/tasks/model_info.h"

#include <nlohmann/json.hpp>

#include "recur/tasks/tasks.h"
#include "recur/train/checkpoint.h"
#include "recur/train/loop.h"
#include "recur/train/model_file.h"

namespace recur {
namespace {

// The train_state as saved; a state that is not JSON (never written by recur) stays a string
// rather than failing the whole report.
nlohmann::json state_json(const std::string& state) {
  if (state.empty()) return nullptr;
  const nlohmann::json j = nlohmann::json::parse(state, nullptr, false);
  return j.is_discarded() ? nlohmann::json(state) : j;
}

// An LM checkpoint's task record names music models ({"task": "music", ...}); plain text has none.
std::string lm_kind(const std::string& task_json) {
  if (task_json.empty()) return "lm";
  const nlohmann::json j = nlohmann::json::parse(task_json, nullptr, false);
  return !j.is_discarded() && j.is_object() && j.contains("task") && j["task"].is_string() ? j["task"].get<std::string>()
                                                                                              : "lm";
}

}  // namespace

std::string model_info_json(const std::string& path) {
  nlohmann::ordered_json j;
  const FileFormat ff = read_file_format(path);
  j["file"] = path;
  j["format"] = ff.format;
  j["format_version"] = ff.version;
  if (is_task_checkpoint(path)) {
    const TaskCheckpoint ck = load_task_checkpoint(path);
    j["kind"] = task_kind_name(ck.model.task.kind);
    j["parameters"] = model_param_count(ck.model.spec);
    j["labels"] = ck.model.labels;
    if (ck.model.task.kind == TaskKind::tag) {
      const TaskSpec& t = ck.model.task;
      j["tags"] = {{"file_scheme", tag_scheme_name(t.file_scheme)},
                   {"train_scheme", tag_scheme_name(t.train_scheme)},
                   {"crf", t.crf}};
    }
    j["train_state"] = state_json(ck.train_state);
  } else {
    const Checkpoint ck = load_checkpoint(path);
    j["kind"] = lm_kind(ck.model.task);
    j["parameters"] = lm_param_count(ck.model.spec);
    j["vocabulary"] = ck.model.vocab.size();
    j["train_state"] = state_json(ck.train_state);
  }
  return j.dump(2);
}

std::string train_state_brief(const std::string& state) {
  const nlohmann::json j = nlohmann::json::parse(state, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) return "";
  std::string s = "step " + std::to_string(j["step"].get<int64_t>());
  if (j.contains("epoch") && j["epoch"].is_number_integer())
    s += ", " + std::to_string(j["epoch"].get<int64_t>()) + " epoch(s) complete";
  if (j.contains("elapsed_s") && j["elapsed_s"].is_number()) s += ", " + format_duration(j["elapsed_s"].get<double>());
  return s + " (version-1 trainer)";
}

}  // namespace recur
