// libFuzzer main for the text reader; the work is in targets.cpp (fuzz_text).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_text(data, size); }
