#include "recur/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "json_fields.h"

namespace recur {

double LrSchedule::lr(int64_t completed_epochs, int64_t step) const {
  const int64_t epoch = completed_epochs + 1;
  const double warm = opts.warmup > 0 && step > 0 && step < opts.warmup ? double(step) / double(opts.warmup) : 1.0;
  return opts.lr0 * std::pow(opts.decay, double(std::max<int64_t>(0, epoch - opts.decay_after))) * plateau_scale * warm;
}

bool LrSchedule::on_validation(double score) {
  if (score < plateau_best) {
    plateau_best = score;
    plateau_bad = 0;
    return false;
  }
  if (opts.plateau_decay > 0 && ++plateau_bad > opts.plateau_patience) {
    plateau_scale *= opts.plateau_decay;
    plateau_bad = 0;
    return true;
  }
  return false;
}

std::string LrSchedule::state_json() const {
  nlohmann::ordered_json j = {{"plateau_scale", plateau_scale},
                              {"plateau_bad", plateau_bad},
                              {"plateau_best", number_or_null(plateau_best)}};
  return j.dump();
}

void LrSchedule::set_state_json(std::string_view json, std::string_view origin) {
  JsonFields f(json, std::string(origin));
  plateau_scale = f.number("plateau_scale");
  plateau_bad = f.integer("plateau_bad", 0);
  plateau_best = f.number("plateau_best", true);
  f.finish();
}

}  // namespace recur
