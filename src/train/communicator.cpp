#include "recur/train/communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "recur/core/error.h"

#ifdef RECUR_HAVE_MPI
// The C API only: Open MPI and MPICH would otherwise pull in their deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace recur {

namespace {

const Communicator* g_world = nullptr;  // the world once world() has run

// The variables MPI launchers set in each process they start: Open MPI's mpirun, MPICH's hydra
// (PMI), PMIx (Open MPI 4+, Slurm's srun --mpi=pmix). Size 0: not launched by one.
int launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"}) {
    if (const char* v = std::getenv(name)) {
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (end != v && n > 0 && n < std::numeric_limits<int>::max()) return int(n);
    }
  }
  if (std::getenv("PMIX_RANK") || std::getenv("PMI_RANK")) return 1;  // a launcher, size unknown
  return 0;
}

#ifdef RECUR_HAVE_MPI
bool g_finalize = true;  // cleared by abort(): MPI_Finalize waits for the other ranks

void finalize_mpi() {
  int done = 0;
  MPI_Finalized(&done);
  if (!done && g_finalize) MPI_Finalize();
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("MPI: ") + what + " failed: " + std::string(msg, size_t(len)));
}

int count_of(size_t n) {
  if (n > size_t(std::numeric_limits<int>::max())) throw Error("MPI: message of " + std::to_string(n) + " values is too large");
  return int(n);
}
#endif

}  // namespace

Communicator& Communicator::single() {
  static Communicator one(0, 1, false);
  return one;
}

Communicator& Communicator::world() {
  static Communicator w = [] {
    const int n = launcher_size();
    if (n == 0) return Communicator(0, 1, false);
#ifdef RECUR_HAVE_MPI
    int provided = 0;
    // Only the main thread calls MPI; OpenMP threads compute between the calls.
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit(finalize_mpi);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return Communicator(rank, size, true);
#else
    if (n > 1)
      throw Error("started as one of " + std::to_string(n) +
                  " processes by an MPI launcher, but this recur was built without MPI; each would train alone. "
                  "Install libopenmpi-dev (scripts/setup.sh test) and rebuild (CMake option RECUR_MPI)");
    return Communicator(0, 1, false);
#endif
  }();
  g_world = &w;
  return w;
}

void Communicator::allreduce_sum(std::span<float> v) const {
  if (!mpi_ || size_ == 1 || v.empty()) return;
#ifdef RECUR_HAVE_MPI
  check(MPI_Allreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
}

void Communicator::allreduce_sum(std::span<double> v) const {
  if (!mpi_ || size_ == 1 || v.empty()) return;
#ifdef RECUR_HAVE_MPI
  check(MPI_Allreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
}

void Communicator::allreduce_max(std::span<double> v) const {
  if (!mpi_ || size_ == 1 || v.empty()) return;
#ifdef RECUR_HAVE_MPI
  check(MPI_Allreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
}

#ifdef RECUR_HAVE_MPI
namespace {
std::vector<MPI_Request> g_pending;  // started by start_allreduce_sum, finished by wait_all
}  // namespace
#endif

void Communicator::start_allreduce_sum(std::span<float> v) const {
  if (!mpi_ || size_ == 1 || v.empty()) return;
#ifdef RECUR_HAVE_MPI
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r),
        "MPI_Iallreduce");
  g_pending.push_back(r);
#endif
}

void Communicator::progress() const {
#ifdef RECUR_HAVE_MPI
  if (g_pending.empty()) return;
  int done = 0;
  check(MPI_Testall(int(g_pending.size()), g_pending.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  if (done) g_pending.clear();
#endif
}

void Communicator::wait_all() const {
#ifdef RECUR_HAVE_MPI
  if (g_pending.empty()) return;
  check(MPI_Waitall(int(g_pending.size()), g_pending.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  g_pending.clear();
#endif
}

std::vector<uint64_t> Communicator::allgather(uint64_t v) const {
  std::vector<uint64_t> all(size_t(size_), v);
  if (!mpi_ || size_ == 1) return all;
#ifdef RECUR_HAVE_MPI
  static_assert(sizeof(unsigned long long) == sizeof(uint64_t));
  check(MPI_Allgather(&v, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD),
        "MPI_Allgather");
#endif
  return all;
}

std::vector<float> Communicator::allgatherv(std::span<const float> local) const {
  if (!mpi_ || size_ == 1) return std::vector<float>(local.begin(), local.end());
  std::vector<float> all;
#ifdef RECUR_HAVE_MPI
  const int n = count_of(local.size());
  std::vector<int> counts(static_cast<size_t>(size_), 0), offsets(static_cast<size_t>(size_), 0);
  check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
  size_t total = 0;
  for (int r = 0; r < size_; ++r) {
    offsets[size_t(r)] = count_of(total);
    total += size_t(counts[size_t(r)]);
  }
  all.resize(total);
  check(MPI_Allgatherv(local.data(), n, MPI_FLOAT, all.data(), counts.data(), offsets.data(), MPI_FLOAT, MPI_COMM_WORLD),
        "MPI_Allgatherv");
#endif
  return all;
}

void Communicator::abort(const std::string& message, int code) const {
  if (!mpi_) return;
#ifdef RECUR_HAVE_MPI
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  g_finalize = false;
  MPI_Abort(MPI_COMM_WORLD, code);
#else
  (void)message;
  (void)code;
#endif
}

void abort_job_if_distributed(const std::string& message, int code) {
  if (g_world && g_world->distributed()) g_world->abort(message, code);
}

std::string job_rank_prefix() {
  if (!g_world || !g_world->distributed()) return "";
  return "rank " + std::to_string(g_world->rank()) + " of " + std::to_string(g_world->size()) + ": ";
}

bool built_with_mpi() {
#ifdef RECUR_HAVE_MPI
  return true;
#else
  return false;
#endif
}

std::string mpi_library_version() {
#ifdef RECUR_HAVE_MPI
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, size_t(len));
  // The first line (Open MPI: "Open MPI v4.1.4, package: ..."; MPICH: "MPICH Version:\t4.0.2"
  // then its build options), up to a comma, with tabs made spaces for a one-line note.
  s = s.substr(0, s.find_first_of("\r\n,"));
  std::replace(s.begin(), s.end(), '\t', ' ');
  return s;
#else
  return "";
#endif
}

Shard shard_of(int64_t n, int rank, int size) {
  const int64_t q = n / size, r = n % size;
  const int64_t begin = rank * q + std::min<int64_t>(rank, r);
  return {begin, begin + q + (rank < r ? 1 : 0)};
}

}  // namespace recur
