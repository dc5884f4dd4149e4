// recur/core/rnn_io.h - a recurrent network's parameters in a safetensors file, under PyTorch's
// state_dict names (weight_ih_l0, bias_hh_l1_reverse, weight_hr_l0, ...), so a file written
// here loads into nn.RNN/nn.GRU/nn.LSTM with load_state_dict(strict=True) and back.
//
// `prefix` selects one module of a larger state_dict, e.g. "encoder.rnn." for the tensor
// "encoder.rnn.weight_ih_l0"; tensors outside the prefix are ignored.
#pragma once

#include <string>

#include "recur/core/rnn.h"
#include "recur/core/safetensors.h"

namespace recur {

// Reads every parameter the config needs as T (any float dtype in the file is converted).
// Throws FormatError("<file>: ...") when a tensor is missing, has another shape (expected and
// got are named), or when the file holds RNN parameters under `prefix` that the config has no
// place for (e.g. "weight_ih_l0_reverse" with a unidirectional config): loading only the
// expected subset would silently run a different network than the one saved.
// Throws Error if the config itself is invalid.
template <typename T>
RnnParams<T> rnn_load_params(const RnnConfig& cfg, const SafetensorsReader& reader, const std::string& prefix = "");

// Adds every parameter under prefix + its state_dict name. Throws ShapeError naming the tensor
// if params do not match the config, Error if the config is invalid or a name is taken.
template <typename T>
void rnn_add_params(SafetensorsWriter& writer, const RnnConfig& cfg, const RnnParams<T>& params,
                    const std::string& prefix = "");

// Recovers the config from the names and shapes of a PyTorch state_dict: input, hidden and
// projection sizes, layers, directions, bias and peepholes. The cell type cannot be told from
// shapes alone (a GRU with H=4 and an LSTM with H=3 both have 12 rows), so it is given; GRU
// reset placement and dropout are not stored and keep their defaults. Throws FormatError if
// no parameters are found or they do not form one consistent network.
RnnConfig rnn_infer_config(const SafetensorsReader& reader, CellType cell, const std::string& prefix = "");

// One line describing the config as used in error messages, e.g.
// "lstm I=3 H=5 P=2 L=2 D=2 bias=yes peephole=no".
std::string rnn_config_summary(const RnnConfig& cfg);

}  // namespace recur
