// Cell vocabulary (cell.h) and the parts of rnn.h that only describe a configuration, so that
// file I/O and the CLI need not link the compute kernels.
#include "recur/core/cell.h"

#include <cmath>

#include "recur/core/error.h"
#include "recur/core/rnn.h"

namespace recur {

int64_t gate_count(CellType cell) {
  switch (cell) {
    case CellType::rnn_tanh:
    case CellType::rnn_relu: return 1;
    case CellType::gru: return 3;
    case CellType::lstm: return 4;
  }
  throw Error("gate_count: invalid CellType " + std::to_string(int(cell)));
}

std::string_view cell_name(CellType cell) {
  switch (cell) {
    case CellType::rnn_tanh: return "rnn_tanh";
    case CellType::rnn_relu: return "rnn_relu";
    case CellType::gru: return "gru";
    case CellType::lstm: return "lstm";
  }
  throw Error("cell_name: invalid CellType " + std::to_string(int(cell)));
}

CellType parse_cell(std::string_view name) {
  if (name == "rnn" || name == "rnn_tanh") return CellType::rnn_tanh;
  if (name == "rnn_relu") return CellType::rnn_relu;
  if (name == "gru") return CellType::gru;
  if (name == "lstm") return CellType::lstm;
  throw Error("unknown cell '" + std::string(name) + "' (expected rnn, rnn_tanh, rnn_relu, gru or lstm)");
}

std::string_view gru_reset_name(GruReset r) {
  switch (r) {
    case GruReset::after: return "after";
    case GruReset::before: return "before";
  }
  throw Error("gru_reset_name: invalid GruReset " + std::to_string(int(r)));
}

GruReset parse_gru_reset(std::string_view name) {
  if (name == "after") return GruReset::after;
  if (name == "before") return GruReset::before;
  throw Error("unknown GRU reset '" + std::string(name) + "' (expected after or before)");
}

void RnnConfig::validate() const {
  const std::string cell_str(cell_name(cell));  // also rejects an out-of-range enum value
  (void)gru_reset_name(gru_reset);
  if (input_size <= 0) throw Error("RnnConfig: input_size must be positive, got " + std::to_string(input_size));
  if (hidden_size <= 0) throw Error("RnnConfig: hidden_size must be positive, got " + std::to_string(hidden_size));
  if (num_layers <= 0) throw Error("RnnConfig: num_layers must be positive, got " + std::to_string(num_layers));
  if (proj_size < 0) throw Error("RnnConfig: proj_size must be >= 0, got " + std::to_string(proj_size));
  if (proj_size > 0 && cell != CellType::lstm)
    throw Error("RnnConfig: proj_size is for lstm only, got proj_size " + std::to_string(proj_size) + " with cell " +
                cell_str);
  // Same rule as PyTorch: a projection is meant to shrink the recurrent state.
  if (proj_size >= hidden_size && proj_size > 0)
    throw Error("RnnConfig: proj_size must be smaller than hidden_size, got proj_size " + std::to_string(proj_size) +
                " with hidden_size " + std::to_string(hidden_size));
  if (peephole && cell != CellType::lstm) throw Error("RnnConfig: peephole is for lstm only, got cell " + cell_str);
  if (!(dropout >= 0.0 && dropout < 1.0))  // also catches NaN
    throw Error("RnnConfig: dropout must be in [0, 1), got " + std::to_string(dropout));
}

std::string rnn_param_name(std::string_view kind, int64_t layer, int64_t direction) {
  if (kind != "weight_ih" && kind != "weight_hh" && kind != "bias_ih" && kind != "bias_hh" && kind != "weight_hr" &&
      kind != "weight_peep")
    throw Error("rnn_param_name: unknown parameter kind '" + std::string(kind) + "'");
  if (layer < 0 || direction < 0 || direction > 1)
    throw Error("rnn_param_name: invalid layer " + std::to_string(layer) + " or direction " +
                std::to_string(direction));
  std::string name(kind);
  name += "_l" + std::to_string(layer);
  if (direction == 1) name += "_reverse";
  return name;
}

}  // namespace recur
