// libFuzzer main for the vocab reader; the work is in targets.cpp (fuzz_vocab).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_vocab(data, size); }
