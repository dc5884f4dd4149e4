// libFuzzer main for the conll reader; the work is in targets.cpp (fuzz_conll).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_conll(data, size); }
