// apps/signals.cpp - see signals.h for why a watcher thread and not a handler.
#include "signals.h"

#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdlib>
#include <thread>

namespace recur::cli {
namespace {

std::atomic<std::atomic<bool>*> g_flag{nullptr};

sigset_t watched() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

[[noreturn]] void watch() {
  const sigset_t set = watched();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    std::atomic<bool>* flag = g_flag.exchange(nullptr);  // only the first signal is a request
    if (flag != nullptr) {
      flag->store(true);
      continue;
    }
    // The default action, delivered to this thread: it ends the whole process as it would have
    // without the watcher (the shell sees "killed by SIGINT").
    std::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    raise(sig);
    std::_Exit(128 + sig);  // not reached unless the default action was changed under us
  }
}

}  // namespace

void start_signal_watcher() {
  const sigset_t set = watched();
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return;  // then signals act as before
  try {
    std::thread(watch).detach();
  } catch (const std::exception&) {
    // No thread: unblock again, so Ctrl-C still ends the process (a run then cannot save first).
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
}

StopOnSignal::StopOnSignal(std::atomic<bool>& flag) { g_flag.store(&flag); }
StopOnSignal::~StopOnSignal() { g_flag.store(nullptr); }

}  // namespace recur::cli
