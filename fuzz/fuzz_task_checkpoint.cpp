// libFuzzer main for the task_checkpoint reader; the work is in targets.cpp (fuzz_task_checkpoint).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return recur::fuzz::fuzz_task_checkpoint(data, size); }
