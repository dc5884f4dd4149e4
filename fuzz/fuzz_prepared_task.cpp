// libFuzzer main for the prepared task-corpus shard reader; the work is in targets.cpp (fuzz_prepared_task).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_prepared_task(data, size); }
