// libFuzzer main for the table reader; the work is in targets.cpp (fuzz_table).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_table(data, size); }
