// libFuzzer main for the midi reader; the work is in targets.cpp (fuzz_midi).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_midi(data, size); }
