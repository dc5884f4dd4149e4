// libFuzzer main for the pairs reader; the work is in targets.cpp (fuzz_pairs).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_pairs(data, size); }
