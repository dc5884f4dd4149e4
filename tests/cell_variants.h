// tests/cell_variants.h - the eight cell variants of the recurrent core (cell.h), for tests that
// sweep every one of them: RNN tanh and ReLU, GRU with the reset after and before the product,
// and LSTM plain, with peepholes, with a projection and with both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recur/core/rnn.h"

namespace recur::test {

struct CellVariant {
  std::string name;
  CellType cell;
  GruReset reset = GruReset::after;
  bool peephole = false;
  bool projection = false;

  // `cfg` with this variant's cell, GRU form and peepholes, and proj_size = `proj` if it projects.
  RnnConfig applied_to(RnnConfig cfg, int64_t proj) const {
    cfg.cell = cell;
    cfg.gru_reset = reset;
    cfg.peephole = peephole;
    cfg.proj_size = projection ? proj : 0;
    return cfg;
  }
};

inline const std::vector<CellVariant>& cell_variants() {
  static const std::vector<CellVariant> v{
      {"rnn_tanh", CellType::rnn_tanh},
      {"rnn_relu", CellType::rnn_relu},
      {"gru_after", CellType::gru, GruReset::after},
      {"gru_before", CellType::gru, GruReset::before},
      {"lstm", CellType::lstm},
      {"lstm_peephole", CellType::lstm, GruReset::after, true},
      {"lstm_proj", CellType::lstm, GruReset::after, false, true},
      {"lstm_peephole_proj", CellType::lstm, GruReset::after, true, true},
  };
  return v;
}

}  // namespace recur::test
