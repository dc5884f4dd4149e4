// recur/diag/show_page.h - the activation page of `recur show`: one self-contained HTML file that
// colours every token of a text by a hidden unit's activation or a gate's value (as in
// Karpathy's char-rnn visualisations), with a unit picker and the model's top next-token
// predictions on hover. Everything (CSS, script, data) is inline, so the page opens without
// network access; tests/test_cli_diag.cpp opens it in headless Chromium.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "recur/train/checkpoint.h"

namespace recur {

struct ShowPageOptions {
  int64_t layer = 0;          // 1-based; 0 = the last layer
  std::string gate = "none";  // "none" = the hidden state h; or a gate of the cell: i f g o (LSTM), r z n (GRU)
  int64_t max_tokens = 3000;  // tokens shown; a longer text is cut (and `note` says so)
  int64_t top = 5;            // next-token predictions per token
  // Where the text came from: a file path, or "" for text given on the command line. Names
  // the text in errors ("TEXT" when empty) and on the page ("text argument").
  std::string file;
  // Receives one-line notes (the text was cut to max_tokens); may be empty.
  std::function<void(const std::string&)> note;

  // Throws Error naming the option (--max-tokens, --top) for a value out of range. Checks only
  // what needs no model, so a command can fail before loading one.
  void validate() const;
};

// What the page shows, for the command's one-line report.
struct ShowPageSummary {
  int64_t tokens = 0;     // tokens on the page
  int64_t units = 0;      // units of the picker: R for h, H for a gate
  int64_t best_unit = 0;  // the unit the page opens on: the one that varies most over the text
  std::string quantity;   // "hidden state h of layer 2", "gate f of layer 1"
  std::string html;       // the page itself (what was written)
};

// Reads `text` as the model reads a stream (lines with a line-break token between them, after
// a line break), runs the model over it on the reference path (which keeps every step's gates)
// and writes the page to out_path atomically (temporary file, fsync, rename); with an empty
// out_path nothing is written and the caller takes the page from the summary's `html`
// (`recur show -o -` prints it).
// Throws Error naming the option (--layer, --gate, --max-tokens, --top) for a value that does
// not fit the model, the text (invalid UTF-8, no tokens) or out_path when it cannot be written.
ShowPageSummary write_show_page(const LmModel& model, const std::string& text, const std::string& out_path,
                                const ShowPageOptions& opts);

}  // namespace recur
