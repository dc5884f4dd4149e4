// libFuzzer main for the prepared-corpus manifest reader; the work is in targets.cpp (fuzz_prepared_manifest).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_prepared_manifest(data, size); }
