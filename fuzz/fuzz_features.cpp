// libFuzzer main for the features reader; the work is in targets.cpp (fuzz_features).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_features(data, size); }
