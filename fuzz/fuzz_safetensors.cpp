// libFuzzer main for the safetensors reader; the work is in targets.cpp (fuzz_safetensors).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_safetensors(data, size); }
