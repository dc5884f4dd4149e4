// recur/core/cell.h - what a recurrent cell is: its kind, its formulation options and its gates.
//
// Gate order is PyTorch's, written down here once and used everywhere (weights, caches,
// golden files):
//   RNN  (G=1): h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu
//   GRU  (G=3): r, z, n
//     reset after  (PyTorch/cuDNN, default):
//       n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//     reset before (Cho et al. 2014, the course's candidate = tanh(W [r * h, x] + b)):
//       n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
//     r = sigma(W_ir x + b_ir + W_hr h + b_hr), z likewise, h' = (1 - z) * n + z * h
//   LSTM (G=4): i, f, g, o
//     i = sigma(W_ii x + b_ii + W_hi h + b_hi [+ w_ci * c])
//     f = sigma(W_if x + b_if + W_hf h + b_hf [+ w_cf * c])
//     g = tanh (W_ig x + b_ig + W_hg h + b_hg)
//     c' = f * c + i * g
//     o = sigma(W_io x + b_io + W_ho h + b_ho [+ w_co * c'])
//     h' = o * tanh(c')            then, with projection (P > 0), h' = W_hr h'  (PyTorch LSTMP)
//   The bracketed peephole terms are diagonal (Gers et al. 2002, oneDNN's peephole LSTM);
//   i and f see c_{t-1}, o sees c_t.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace recur {

enum class CellType { rnn_tanh, rnn_relu, gru, lstm };
enum class GruReset { after, before };

int64_t gate_count(CellType cell);  // G
std::string_view cell_name(CellType cell);  // "rnn_tanh", "rnn_relu", "gru", "lstm"
CellType parse_cell(std::string_view name);   // inverse of cell_name; also "rnn" = rnn_tanh
std::string_view gru_reset_name(GruReset r);  // "after", "before"
GruReset parse_gru_reset(std::string_view name);

}  // namespace recur
