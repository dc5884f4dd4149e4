// apps/signals.h - Ctrl-C (SIGINT) and SIGTERM, taken by one watcher thread instead of a handler.
//
// A signal handler runs on the stack of whichever thread the signal lands on, and the kernel
// writes its frame (several KiB with the AVX-512 state) just below that thread's stack pointer.
// oneDNN's JIT kernels keep live data there: Ctrl-C during a training step corrupted the heap in
// about one interrupted step in three (found by interrupting `recur train --task music`; the abort
// came from free() inside dnnl_primitive_execute of the LSTM backward). So no thread of ours ever
// runs a handler: both signals are blocked in every thread (the mask is set in main before any
// thread exists, and threads inherit it) and one watcher thread receives them with sigwait.
//
// While a stop flag is registered (recur train), the first signal sets it and the run finishes its
// step, saves and exits with 130; a second signal, or any signal with no flag registered, ends the
// process by the signal's default action, as it would without the watcher.
#pragma once

#include <atomic>

namespace recur::cli {

// Blocks SIGINT and SIGTERM in the calling thread and starts the watcher. Call first in main,
// before anything starts a thread (OpenMP, oneDNN, MPI).
void start_signal_watcher();

// While alive, the first SIGINT or SIGTERM sets `flag` instead of ending the process.
class StopOnSignal {
 public:
  explicit StopOnSignal(std::atomic<bool>& flag);
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
};

}  // namespace recur::cli
