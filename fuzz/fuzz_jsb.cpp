// libFuzzer main for the jsb reader; the work is in targets.cpp (fuzz_jsb).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_jsb(data, size); }
