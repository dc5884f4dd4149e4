// libFuzzer main for the checkpoint reader; the work is in targets.cpp (fuzz_checkpoint).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_checkpoint(data, size); }
