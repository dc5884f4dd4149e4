// libFuzzer main for the generate reader; the work is in targets.cpp (fuzz_generate).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_generate(data, size); }
