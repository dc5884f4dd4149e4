// libFuzzer main for the json_config reader; the work is in targets.cpp (fuzz_json_config).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_json_config(data, size); }
