// libFuzzer main for the word_vectors reader; the work is in targets.cpp (fuzz_word_vectors).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_word_vectors(data, size); }
