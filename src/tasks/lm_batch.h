// src/lm_batch.h - the view of a text batch that lm_forward_backward takes. Internal.
#pragma once

#include "recur/model/lm.h"
#include "recur/data/text_data.h"

namespace recur {

// Stream batches are full (every position valid), so no mask or lengths are passed and the
// recurrent layers take their all-valid fast path; lines batches are padded and need both.
inline LmBatch lm_batch_of(const TextBatch& b, TextMode mode) {
  LmBatch out;
  out.input = b.input.data;
  out.target = b.target.data;
  if (mode == TextMode::lines) {
    out.mask = b.mask.data;
    out.lengths = b.lengths;
  }
  out.steps = b.steps();
  out.batch = b.batch();
  return out;
}

}  // namespace recur
