// libFuzzer main for the model_file reader; the work is in targets.cpp (fuzz_model_file).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_model_file(data, size); }
