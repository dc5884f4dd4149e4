// recur/tasks/tag_scheme.h - chunk tag schemes of tagging data (IOB1, BIO, BIOES), detected
// from a file's tags, converted between one another, and the transitions each one allows
// (the constraints of a CRF, model/crf.h).
//
//   iob1   CoNLL-2003's own: I-X inside a chunk, B-X only to start a chunk right after another
//          chunk of the same type (Ramshaw & Marcus 1995)
//   bio    IOB2: B-X starts every chunk, I-X continues it
//   bioes  IOBES: S-X a one-token chunk, B-X / I-X / E-X the first, inner and last tokens
//   none   tags that are not chunk tags (part-of-speech tags): never converted, no constraints
//
// Conversion goes through the chunks conlleval reads (metrics.h conll_chunks), so a converted
// sentence has the same entities as the original, and converting back gives the original tags
// whenever they were well formed in their scheme.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "recur/model/crf.h"

namespace recur {

enum class TagScheme { none, iob1, bio, bioes };
const char* tag_scheme_name(TagScheme s);       // "none", "iob1", "bio", "bioes"
// "iob1", "bio", "bioes", "none"; Error naming the flag's choices on anything else.
TagScheme parse_tag_scheme(std::string_view name);

// The scheme a set of sentences is written in: none when some tag is neither O nor a
// one-letter prefix (B, I, E, S) and a type; bioes when an E- or S- tag occurs; iob1 when a
// chunk starts with I- (after O, another type or the sentence start); else bio.
TagScheme detect_tag_scheme(const std::vector<std::vector<std::string>>& sentences);

// One sentence's tags rewritten from scheme `from` into `to`, through its chunks: ill-formed
// input (such as "O I-X" in BIO) comes out well formed, as the chunks conlleval reads in it,
// also when from == to. Unchanged when either scheme is none.
std::vector<std::string> convert_tags(const std::vector<std::string>& tags, TagScheme from, TagScheme to);

// What a CRF over `labels` (tag strings in scheme `s`) may do: for bio, I-X only after B-X or
// I-X; for iob1, B-X only after B-X or I-X; for bioes, B-X and I-X must go on with I-X or E-X
// and every other tag must be followed by O, B- or S- (and the sentence must start and end
// outside a chunk). none allows everything (empty constraints).
CrfConstraints tag_scheme_constraints(const std::vector<std::string>& labels, TagScheme s);

}  // namespace recur
